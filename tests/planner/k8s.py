"""Builders of Kubernetes Node, Pod and PodDisruptionBudget objects as `kubectl get -o json` prints them,
so planner tests go through the same reader as a real snapshot."""

from __future__ import annotations

from typing import Any

H100 = "NVIDIA-H100-80GB-HBM3"  # catalog: NVSwitch, one domain of 8
L4 = "NVIDIA-L4"  # catalog: no NVLink


def node(name: str, gpus: int = 8, product: str = H100, cpu: str = "64", memory: str = "512Gi",
         unschedulable: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus)}},
    }
    if unschedulable:
        obj["spec"] = {"unschedulable": True}
    return obj


def pod(name: str, on: str | None, gpus: int = 1, *, at: tuple[int, ...] | None = None, ns: str = "default",
        owner: str | None = "ReplicaSet", priority: int = 0, labels: dict[str, str] | None = None,
        cpu: str = "1", memory: str = "4Gi", annotations: dict[str, str] | None = None,
        node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels or {},
                            "annotations": dict(annotations or {})}
    if at is not None:
        meta["annotations"]["gpuplace.io/gpus"] = ",".join(map(str, at))
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": f"{name}-owner",
                                    "uid": "u", "controller": True}]
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    spec: dict[str, Any] = {
        "priority": priority,
        "containers": [{"name": "main", "resources": {"requests": {"cpu": cpu, "memory": memory},
                                                      "limits": limits}}],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    if on:
        spec["nodeName"] = on
        status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    else:
        status = {"phase": "Pending"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def pdb(name: str, match: dict[str, str], *, ns: str = "default", min_available: int | str | None = None,
        max_unavailable: int | str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": match}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def as_list(*objs: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(objs)}
