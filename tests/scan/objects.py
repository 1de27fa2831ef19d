"""Kubernetes objects for scan tests, shaped as the API server returns them (kind and apiVersion set,
as scan/collect.py sets them on list items)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
H100 = "NVIDIA-H100-80GB-HBM3"
L4 = "NVIDIA-L4"


def ts(ago: timedelta) -> str:
    return (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(name: str, product: str = H100, gpus: int = 8, age: timedelta = timedelta(days=3),
         unschedulable: bool = False) -> dict[str, Any]:
    return {"kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "creationTimestamp": ts(age),
                         "labels": {"nvidia.com/gpu.product": product}},
            "spec": {"unschedulable": unschedulable} if unschedulable else {},
            "status": {"allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "192", "memory": "2000Gi"}}}


def owner(kind: str, name: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": True, "uid": f"uid-{name}"}]


def container(model: str = "meta-llama/Llama-3.1-8B-Instruct", gpus: int = 1, *args: str,
              resource: str = "nvidia.com/gpu") -> dict[str, Any]:
    return {"name": "vllm", "image": "vllm/vllm-openai:v0.9.0",
            "command": ["vllm", "serve", model, *args],
            "resources": {"limits": {resource: str(gpus), "cpu": "8", "memory": "64Gi"}}}


def pod_template(product: str | None = H100, **kw: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [container(**kw)]}
    if product:
        spec["nodeSelector"] = {"nvidia.com/gpu.product": product}
    return {"metadata": {"labels": {"app": "x"}}, "spec": spec}


def deployment(name: str, ns: str = "ml", replicas: int = 1, product: str | None = H100,
               age: timedelta = timedelta(days=2), **kw: Any) -> dict[str, Any]:
    return {"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": ts(age), "uid": f"uid-{name}"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "x"}},
                     "template": pod_template(product, **kw)}}


def replicaset(name: str, deploy: str, ns: str = "ml") -> dict[str, Any]:
    return {"kind": "ReplicaSet", "apiVersion": "apps/v1",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": owner("Deployment", deploy)},
            "spec": {}}


def pod(name: str, ns: str = "ml", node_name: str | None = "n1", gpus: int = 1,
        owned_by: tuple[str, str] | None = None, phase: str | None = None, product: str | None = H100,
        age: timedelta = timedelta(hours=5), statuses: list[dict[str, Any]] | None = None,
        labels: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    spec = pod_template(product, gpus=gpus, **kw)["spec"]
    if node_name:
        spec["nodeName"] = node_name
    meta: dict[str, Any] = {"name": name, "namespace": ns, "creationTimestamp": ts(age),
                            "labels": labels or {"app": "x"}}
    if owned_by:
        meta["ownerReferences"] = owner(*owned_by)
    status: dict[str, Any] = {"phase": phase or ("Running" if node_name else "Pending")}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if not node_name:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."}]
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": status}


def oom_status(restarts: int = 4, waiting: str = "CrashLoopBackOff") -> list[dict[str, Any]]:
    return [{"name": "vllm", "restartCount": restarts, "state": {"waiting": {"reason": waiting}},
             "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                                          "finishedAt": ts(timedelta(minutes=3))}}}]


def hpa(name: str, target: str, ns: str = "ml", min_replicas: int = 1) -> dict[str, Any]:
    return {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": min_replicas, "maxReplicas": 4}}


def event(kind: str, name: str, reason: str, message: str, ago: timedelta, ns: str = "ml",
          count: int = 1) -> dict[str, Any]:
    return {"kind": "Event", "apiVersion": "v1",
            "metadata": {"name": f"{name}.{reason}.{int(ago.total_seconds())}", "namespace": ns},
            "involvedObject": {"kind": kind, "name": name, "namespace": ns},
            "reason": reason, "message": message, "count": count, "lastTimestamp": ts(ago),
            "firstTimestamp": ts(ago)}
