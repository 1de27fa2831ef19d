"""JSONPatch for native constraints (webhook.native_constraints; what they are and why:
placement/native_affinity.py): the pod spec's required node affinity made to hold the merged terms,
and the gpuplace.io/node-affinity annotation that records what gpuplace added."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from placement.native_affinity import NODE_AFFINITY, REQUIRED, Expr, alternatives, merge_terms, recorded
from placement.requirements import GPU_MEMORY_MIN
from placement.workload import GPU_RESOURCE, MIG_PREFIX, TierPin
from webhook.jsonpatch import pointer


def affinity_patch(
    template: Mapping[str, Any], spec_path: Sequence[str], alts: list[list[Expr]]
) -> list[dict[str, Any]]:
    """JSONPatch ops that make the pod spec at `spec_path` require the merged terms (none when it already
    does). `template` is the object holding `metadata` and `spec` at `spec_path[:-1]`."""
    meta = template.get("metadata")
    previous = recorded((meta.get("annotations") if isinstance(meta, Mapping) else None) or {})
    spec = template.get("spec")
    if not isinstance(spec, Mapping):
        return []
    affinity = spec.get("affinity")
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
    required = node_affinity.get(REQUIRED) if isinstance(node_affinity, Mapping) else None
    terms = required.get("nodeSelectorTerms") if isinstance(required, Mapping) else None
    current = [dict(t) for t in terms or [] if isinstance(t, Mapping)]
    merged = merge_terms(current, previous, alts)
    if merged == current:
        return []
    levels = ["affinity", "nodeAffinity", REQUIRED, "nodeSelectorTerms"]
    if not merged:  # only gpuplace's own old terms were there
        return [{"op": "remove", "path": pointer([*spec_path, *levels[:3]])}]
    # Add at the shallowest level that is missing (or replace the terms when all levels exist).
    value: Any = merged
    have = [isinstance(x, Mapping) for x in (affinity, node_affinity, required)]
    depth = have.index(False) if False in have else 3
    for key in reversed(levels[depth + 1 :]):
        value = {key: value}
    return [{"op": "add", "path": pointer([*spec_path, *levels[: depth + 1]]), "value": value}]


def requests_gpus(template: Mapping[str, Any] | None) -> bool:
    """Whether a container of this pod template has a GPU limit (a LeaderWorkerSet's leader may not: it
    gets the stamps, but no GPU-memory affinity that would keep a CPU-only pod off CPU nodes). DRA pods
    (GPUs by resourceClaims) are left to `dra_memory_floor`: their nodes need not carry GFD labels."""
    spec = template.get("spec") if isinstance(template, Mapping) else None
    containers = spec.get("containers") if isinstance(spec, Mapping) else None
    for c in containers if isinstance(containers, list) else []:
        limits = ((c.get("resources") or {}).get("limits") or {}) if isinstance(c, Mapping) else {}
        if isinstance(limits, Mapping) and any(
            k == GPU_RESOURCE or str(k).startswith(MIG_PREFIX) for k in limits
        ):
            return True
    return False


def native_constraints(
    template: Mapping[str, Any] | None,
    path: Sequence[str],
    stamps: Mapping[str, str],
    tier: TierPin,
    families: Sequence[str],
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """(annotation to stamp, affinity ops) for the pod template at `path`: the floor comes from the
    gpu-memory-min stamp this same /mutate writes."""
    if template is None or not families:
        return {}, []
    floor = stamps.get(GPU_MEMORY_MIN, "")
    alts = alternatives(int(floor) if floor.isdigit() else None, tier, families)
    ops = affinity_patch(template, [*path, "spec"], alts)
    meta = template.get("metadata")
    had = (meta.get("annotations") or {}).get(NODE_AFFINITY) if isinstance(meta, Mapping) else None
    if not alts and had is None:
        return {}, ops
    return {NODE_AFFINITY: json.dumps(alts, separators=(",", ":"))}, ops
