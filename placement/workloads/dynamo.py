"""NVIDIA Dynamo `DynamoGraphDeployment` (nvidia.com; https://docs.nvidia.com/dynamo/).

Two documented forms:
- v1alpha1: `spec.services.<Name>` with `componentType`, `replicas`, `resources.limits.gpu` (a count),
  `multinode.nodeCount`, and `extraPodSpec` (a pod spec: nodeSelector, affinity, and `mainContainer`
  with image, command, args).
- v1beta1: `spec.components[]` with `name`, `type`, `replicas`, `multinode.nodeCount` and `podTemplate`
  (a pod template; the container named `main` runs the worker).

A worker runs `python3 -m dynamo.vllm|dynamo.sglang|dynamo.trtllm` with the engine's own flags: it is read
as that engine's CLI. Each GPU service (a decode worker, a prefill worker) is a component of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from placement.catalog import GpuCatalog
from placement.engines import Container
from placement.workload import Workload, field_int, field_list, field_map, pod_workload, str_map
from placement.workloads.base import ENGINE_COMMANDS, ENGINE_IMAGES, combine, words

# The Dynamo module that starts each engine's worker.
DYNAMO_MODULES = {"dynamo.vllm": "vllm", "dynamo.sglang": "sglang", "dynamo.trtllm": "trtllm"}


def read(obj: Mapping[str, Any], catalog: GpuCatalog) -> Workload | None:
    spec = field_map(obj.get("spec"), "spec")
    parts: list[Workload] = []
    services = spec.get("services")
    if isinstance(services, Mapping):
        for name, service in services.items():
            parts.append(_v1alpha1(obj, str(name), field_map(service, f"spec.services.{name}"), catalog))
    for i, component in enumerate(field_list(spec.get("components") or [], "spec.components")):
        parts.append(_v1beta1(obj, i, field_map(component, f"spec.components[{i}]"), catalog))
    return combine([p for p in parts if p.gpu_containers])


def _v1alpha1(obj: Mapping[str, Any], name: str, service: Mapping[str, Any], catalog: GpuCatalog) -> Workload:
    where = ("spec", "services", name)
    pod = dict(field_map(service.get("extraPodSpec") or {}, ".".join((*where, "extraPodSpec"))))
    main = dict(
        field_map(pod.pop("mainContainer", None) or {}, f"spec.services.{name}.extraPodSpec.mainContainer")
    )
    resources = field_map(service.get("resources") or {}, f"spec.services.{name}.resources")
    limits = str_map(resources.get("limits")) or str_map(resources.get("requests"))
    main["name"] = name
    main["resources"] = {"limits": {"nvidia.com/gpu": limits.get("gpu", "0")}}
    if service.get("envs"):
        main["env"] = service["envs"]
    template = {"metadata": {}, "spec": {**pod, "containers": [_as_engine(main)]}}
    workload = pod_workload(obj, template, where, catalog, replicas=field_int(service, ("replicas",), 1))
    _multi_node(workload, service)
    return workload


def _v1beta1(
    obj: Mapping[str, Any], index: int, component: Mapping[str, Any], catalog: GpuCatalog
) -> Workload:
    where = ("spec", "components", str(index))
    name = str(component.get("name") or f"#{index}")
    template = dict(field_map(component.get("podTemplate") or {}, ".".join((*where, "podTemplate"))))
    pod = dict(field_map(template.get("spec") or {}, ".".join((*where, "podTemplate", "spec"))))
    containers = field_list(pod.get("containers") or [], ".".join((*where, "podTemplate.spec.containers")))
    pod["containers"] = [
        _as_engine({**c, "name": f"{name}/{c.get('name', i)}"}) if isinstance(c, Mapping) else c
        for i, c in enumerate(containers)
    ]
    template["spec"] = pod
    workload = pod_workload(obj, template, where, catalog, replicas=field_int(component, ("replicas",), 1))
    _multi_node(workload, component)
    return workload


def _as_engine(container: dict[str, Any]) -> dict[str, Any]:
    """`python3 -m dynamo.vllm --model M ...` (also inside `sh -c`) as the engine's own command line."""
    name = str(container.get("name") or "")
    argv = Container(
        name=name,
        image=str(container.get("image") or ""),
        command=words(container.get("command"), f"{name}.command"),
        args=words(container.get("args"), f"{name}.args"),
    ).argv
    for i, word in enumerate(argv):
        engine = DYNAMO_MODULES.get(word)
        if engine is None:
            continue
        rest = argv[i + 1 :]
        if engine == "trtllm":  # Dynamo names the model --model-path; trtllm-serve takes it first
            rest = ["--model" if w == "--model-path" else w for w in rest]
        command = [*ENGINE_COMMANDS[engine], *_until_shell_end(rest)]
        return {
            **container,
            "image": container.get("image") or ENGINE_IMAGES[engine],
            "command": command,
            "args": [],
        }
    return container


def _until_shell_end(words: list[str]) -> list[str]:
    """The worker's own words: a shell script may go on after it (`... && sleep`, `; wait`)."""
    for i, word in enumerate(words):
        if word in {"&&", ";", "||", "|", "&"}:
            return words[:i]
    return words


def _multi_node(workload: Workload, service: Mapping[str, Any]) -> None:
    nodes = field_int(service, ("multinode", "nodeCount"), 1) or 1
    if nodes > 1:
        workload.group_size = nodes
