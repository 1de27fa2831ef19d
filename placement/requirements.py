"""What /mutate stamps on pod templates and the extender reads back (design.md, "Annotations stamped by
/mutate"), and the hash that tells an UPDATE whether anything GPU-related changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from placement.checks.settings import CheckContext
from placement.engines.defaults import setup_for
from placement.memory import estimate
from placement.native_affinity import NODE_AFFINITY, user_node_affinity
from placement.serving import Serving, resolve
from placement.workload import ANNOTATION_PREFIX, Workload

GPU_MEMORY_MIN = ANNOTATION_PREFIX + "gpu-memory-min"
MODEL_RESOLVED = ANNOTATION_PREFIX + "model-resolved"
NVLINK = ANNOTATION_PREFIX + "nvlink"
GROUP = ANNOTATION_PREFIX + "group"
INPUTS_HASH = ANNOTATION_PREFIX + "inputs-hash"
# NODE_AFFINITY: written by /mutate only with native constraints on (placement/native_affinity.py).
STAMPED = (GPU_MEMORY_MIN, MODEL_RESOLVED, NVLINK, GROUP, INPUTS_HASH, NODE_AFFINITY)

_MIB = 2**20


def min_gpu_memory_mib(s: Serving) -> int | None:
    """Smallest GPU (MiB CUDA reports) on which this container fits at its parallelism, found by bisection
    on the estimator itself so every engine's own budget rule applies."""
    if s.arch is None or s.precision is None:
        return None
    lo, hi = 1.0, 4096.0
    if not _fits(s, hi):
        return None
    for _ in range(30):
        mid = (lo + hi) / 2
        if _fits(s, mid):
            hi = mid
        else:
            lo = mid
    return int(hi * 1024) + 1


def _fits(s: Serving, usable_gib: float) -> bool:
    assert s.arch is not None and s.precision is not None
    setup = setup_for(s.engine, s.precision, usable_gib, s.max_model_len(), s.explicit_max_num_seqs)
    # Batch defaults of vLLM V1 jump at 70 GiB; judge the need with the small-GPU defaults throughout so
    # the answer is monotonic in memory.
    setup = setup._replace(max_num_batched_tokens=min(setup.max_num_batched_tokens, 8192))
    return estimate(s.arch, setup).fits


def requirements(workload: Workload, ctx: CheckContext) -> dict[str, str]:
    """Annotations for the pod template of this workload (empty when it requests no GPUs)."""
    servings = [resolve(workload, c, ctx.models) for c in workload.gpu_containers]
    if not servings:
        return {}
    out: dict[str, str] = {INPUTS_HASH: gpu_spec_hash(workload)}
    needs = [m for m in (min_gpu_memory_mib(s) for s in servings) if m is not None]
    if needs:
        out[GPU_MEMORY_MIN] = str(max(needs))
    models = sorted({s.arch.id for s in servings if s.arch is not None})
    if models:
        out[MODEL_RESOLVED] = ",".join(models)
    spans = any(s.engine.tp > 1 and s.gpus_per_pod > 1 for s in servings)
    # A user's own `required` stands when gpuplace cannot tell (no engine it reads, e.g. a custom server).
    declared = workload.annotations.get(NVLINK) == "required"
    unread = any(s.container.engine is None for s in servings)
    out[NVLINK] = "required" if spans or (declared and unread) else "none"
    if workload.group_size > 1:
        out[GROUP] = f"{workload.ref.kind.lower()}/{workload.ref.name}"
    return out


def gpu_spec_hash(workload: Workload) -> str:
    """Stable hash of everything the checks read: containers, tier pinning, gpuplace.io annotations.
    Labels, replicas and unrelated annotations are left out: editing labels or scaling a running workload
    does not re-judge it."""
    template = workload.raw_template
    spec: Mapping[str, Any] = template.get("spec") or {} if template else {}
    inputs = {
        "containers": [
            {
                "name": c.name,
                "image": c.container.image,
                "command": list(c.container.command),
                "args": list(c.container.args),
                "env": dict(sorted(c.container.env.items())),
                "gpus": c.gpus,
                "mig": c.mig_profile,
            }
            for c in [*workload.containers, *workload.other_containers]
        ],
        "nodeSelector": spec.get("nodeSelector") or {},
        "affinity": _node_affinity(spec, (template.get("metadata") or {}) if template else {}),
        "annotations": {
            k: v
            for k, v in sorted(workload.annotations.items())
            if k.startswith(ANNOTATION_PREFIX) and k not in STAMPED
        },
        "group": workload.group_size,
    }
    if workload.group_gpus is not None:  # only LeaderWorkerSets with a leader template: old hashes stay
        inputs["group_gpus"] = workload.group_gpus
        # The tier may come from the workers' nodeSelector, which raw_template (the leader's) lacks.
        inputs["group_tier"] = [*(g.id for g in workload.tier.gpus), *workload.tier.unknown_values]
    blob = json.dumps(inputs, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _node_affinity(spec: Mapping[str, Any], meta: Mapping[str, Any]) -> Any:
    # A CRD's pod template is not always validated by the apiserver: a wrong shape hashes as it is.
    affinity = spec.get("affinity")
    if not isinstance(affinity, Mapping) or not isinstance(affinity.get("nodeAffinity") or {}, Mapping):
        return (affinity.get("nodeAffinity") or {}) if isinstance(affinity, Mapping) else (affinity or {})
    # Without what native constraints added: a template /mutate constrained hashes as it did before.
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return user_node_affinity(spec, annotations if isinstance(annotations, Mapping) else {})
