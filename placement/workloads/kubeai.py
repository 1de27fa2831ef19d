"""KubeAI `Model` (kubeai.org/v1, https://www.kubeai.org/reference/kubernetes-api/).

`spec.url` names the model (`hf://org/model`, `ollama://...`, `s3://...`), `spec.engine` the server
(VLLM, OLlama, FasterWhisper, Infinity), `spec.args` and `spec.env` go to it, `spec.resourceProfile` is
`<profile>:<count>` (KubeAI's default GPU profiles are named `nvidia-gpu-<gpu>`, e.g. `nvidia-gpu-l4:1`:
count GPUs of that kind per pod), and `minReplicas` (0 allowed, the default) / `maxReplicas` scale it.
Only vLLM is an engine gpuplace sizes; the others are GPU workloads judged without a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from placement.catalog import GpuCatalog
from placement.workload import (
    TierPin,
    Workload,
    WorkloadError,
    field_int,
    field_list,
    field_map,
    pod_workload,
    str_map,
)
from placement.workloads.base import engine_container, hf_model

# Profile name prefixes of accelerators that are not NVIDIA GPUs (KubeAI's default profiles): no
# nvidia.com/gpu, nothing for gpuplace to judge.
NON_NVIDIA = ("cpu", "google-tpu", "amd-gpu", "intel-gpu", "aws-neuron")
GPU_PROFILE_PREFIX = "nvidia-gpu-"


def model(obj: Mapping[str, Any], catalog: GpuCatalog) -> Workload | None:
    spec = field_map(obj.get("spec"), "spec")
    profile = str(spec.get("resourceProfile") or "")
    name, _, count = profile.partition(":")
    if not name or name.lower().startswith(NON_NVIDIA):
        return None
    try:
        gpus = int(count or 1)
    except ValueError as exc:
        raise WorkloadError(f"spec.resourceProfile must be <profile>:<count>, got {profile!r}") from exc
    engine = str(spec.get("engine") or "")
    args = [str(a) for a in field_list(spec.get("args") or [], "spec.args")]
    env = str_map(spec.get("env"))
    url = spec.get("url")
    if engine == "VLLM":
        container = engine_container("server", "vllm", hf_model(url), args, gpus, env)
        if spec.get("image"):
            container["image"] = str(spec["image"])
    else:  # an engine gpuplace does not size: a GPU container, judged without a model
        container = {
            "name": "server",
            "image": str(spec.get("image") or engine.lower()),
            "args": args,
            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
        }
    template = {"metadata": {}, "spec": {"containers": [container]}}
    # The replicas that always run: minReplicas (0, KubeAI's default, when left out), or spec.replicas
    # when autoscalingDisabled leaves the count to the user.
    scaled = spec.get("autoscalingDisabled") is not True
    replicas = field_int(spec, ("minReplicas",), 0) if scaled else field_int(spec, ("replicas",), 1)
    workload = pod_workload(obj, template, ("spec",), catalog, replicas=replicas)
    if not workload.tier.source.startswith("annotation"):
        workload.tier = _profile_tier(name, catalog)
    return workload


def _profile_tier(name: str, catalog: GpuCatalog) -> TierPin:
    """The GPU a profile names. Profiles are KubeAI's system config, which gpuplace does not read: the
    name is taken at its word (`nvidia-gpu-h100`, `L4`), and a name that names no catalog GPU pins none
    (gpuplace.io/tier on the Model pins it)."""
    bare = name[len(GPU_PROFILE_PREFIX) :] if name.lower().startswith(GPU_PROFILE_PREFIX) else name
    gpu = catalog.resolve(bare) or catalog.resolve(name)
    return TierPin((gpu,), (), f"resourceProfile {name}") if gpu is not None else TierPin()
