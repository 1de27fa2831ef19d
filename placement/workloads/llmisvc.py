"""KServe `LLMInferenceService` (serving.kserve.io/v1alpha1 and v1alpha2; llm-d's vLLM underneath,
https://kserve.github.io/website/docs/model-serving/generative-inference/llmisvc/llmisvc-configuration).

`spec.model.uri` (`hf://org/model`, else `spec.model.name`) is the model, `spec.replicas` the serving
instances, `spec.parallelism` {tensor, pipeline, data, dataLocal, expert} the engine's parallelism,
`spec.template` the (leader) pod *spec* and `spec.worker` the worker pod spec of a multi-node instance
(a LeaderWorkerSet: data / dataLocal pods, else enough pods for tensor x pipeline). `spec.prefill` has
the same fields for the prefill side of a disaggregated service: a component of its own. vLLM flags come
from the main container's args and VLLM_ADDITIONAL_ARGS. Fields a `baseRefs` config supplies are not
read: without GPUs in the template the service is not judged.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from typing import Any

from placement.catalog import GpuCatalog
from placement.engines import Container, parse_container
from placement.workload import Workload, field_int, field_list, field_map, pod_workload
from placement.workloads.base import combine, engine_container, hf_model, not_judged, spec_gpus, words

MAIN_CONTAINER = "main"  # the container KServe's configs fill in (image, command) and users amend


def read(obj: Mapping[str, Any], catalog: GpuCatalog) -> Workload | None:
    spec = field_map(obj.get("spec"), "spec")
    model_spec = field_map(spec.get("model") or {}, "spec.model")
    model = hf_model(model_spec.get("uri")) or (str(model_spec["name"]) if model_spec.get("name") else None)
    parts = [_component(obj, spec, ("spec",), model, catalog)]
    if isinstance(spec.get("prefill"), Mapping):
        parts.append(_component(obj, spec["prefill"], ("spec", "prefill"), model, catalog, "prefill"))
    judged = [p for p in parts if p is not None]
    if judged:
        return combine(judged)
    if _sets_resources(spec.get("template")):
        return None  # resources set, none of them GPUs: a CPU service
    refs = [str(r.get("name")) for r in spec.get("baseRefs") or [] if isinstance(r, Mapping)]
    source = (
        f"LLMInferenceServiceConfig {', '.join(refs)}"
        if refs
        else "KServe's default LLMInferenceServiceConfig"
    )
    return not_judged(
        obj,
        "config-ref",
        f"its GPUs come from {source}, which gpuplace does not read; set nvidia.com/gpu on spec.template's "
        "main container",
    )


def _sets_resources(pod: Any) -> bool:
    """Whether the template's containers state their resources (then no GPU among them means none)."""
    containers = pod.get("containers") if isinstance(pod, Mapping) else None
    return any(isinstance(c, Mapping) and c.get("resources") for c in containers or [])


def _component(
    obj: Mapping[str, Any],
    spec: Mapping[str, Any],
    where: tuple[str, ...],
    model: str | None,
    catalog: GpuCatalog,
    prefix: str = "",
) -> Workload | None:
    pod = spec.get("template")
    if not isinstance(pod, Mapping):
        return None
    path = ".".join(where)
    par = field_map(spec.get("parallelism") or {}, f"{path}.parallelism")
    tp, pp = _par(par, "tensor", path), _par(par, "pipeline", path)
    dp, dp_local = _par(par, "data", path), _par(par, "dataLocal", path)
    containers = [
        _engine(c, model, tp, pp, dp or dp_local, prefix)
        for c in field_list(pod.get("containers") or [], f"{path}.template.containers")
    ]
    template = {"metadata": {}, "spec": {**pod, "containers": containers}}
    replicas = field_int(spec, ("replicas",), 1)
    workload = pod_workload(obj, template, (*where, "template"), catalog, replicas=replicas)
    if not workload.gpu_containers:
        return None
    if isinstance(spec.get("worker"), Mapping):
        _multi_node(workload, spec["worker"], tp * pp * max(dp, 1), dp, dp_local)
    return workload


def _engine(raw: Any, model: str | None, tp: int, pp: int, dp: int, prefix: str) -> Any:
    """The main container as vLLM with the service's model and parallelism; a container that names its
    own engine command (or is not the main one) is read as it is."""
    if not isinstance(raw, Mapping) or raw.get("name") != MAIN_CONTAINER:
        return raw
    own = Container(
        name=MAIN_CONTAINER,
        image=str(raw.get("image") or ""),
        command=words(raw.get("command"), "template.containers[main].command"),
        args=words(raw.get("args"), "template.containers[main].args"),
    )
    if own.command and parse_container(own) is not None:
        return raw
    env = {
        str(e.get("name")): str(e.get("value", ""))
        for e in field_list(raw.get("env") or [], "template.containers[main].env")
        if isinstance(e, Mapping)
    }
    extra = shlex.split(env.get("VLLM_ADDITIONAL_ARGS", "")) if env.get("VLLM_ADDITIONAL_ARGS") else []
    flags = [f"--tensor-parallel-size={tp}", f"--pipeline-parallel-size={pp}"]
    if dp > 1:
        flags.append(f"--data-parallel-size={dp}")
    container = engine_container(
        f"{prefix}/{MAIN_CONTAINER}" if prefix else MAIN_CONTAINER,
        "vllm",
        model,
        [*flags, *own.args, *extra],
        gpus=0,
        resources=field_map(raw.get("resources") or {}, "template.containers[main].resources"),
    )
    container["env"] = raw.get("env") or []
    if raw.get("image"):
        container["image"] = raw["image"]
    return container


def _multi_node(workload: Workload, worker: Mapping[str, Any], used: int, dp: int, dp_local: int) -> None:
    """A leader and workers (a LeaderWorkerSet): data / dataLocal pods per instance when data parallel,
    else as many pods as tensor x pipeline needs at the pod's GPUs."""
    leader = sum(c.gpus for c in workload.gpu_containers)
    per_worker = spec_gpus(worker) or leader
    pods = dp // dp_local if dp and dp_local else 1 + math.ceil(max(used - leader, 0) / max(per_worker, 1))
    workload.group_size = max(pods, 1)
    workload.group_gpus = leader + (workload.group_size - 1) * per_worker


def _par(par: Mapping[str, Any], key: str, path: str) -> int:
    value = field_int(par, (key,), None)
    return value if value and value > 0 else (0 if key in {"data", "dataLocal"} else 1)
