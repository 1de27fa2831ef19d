"""Kubernetes objects as the API server serves them (and kube-scheduler forwards them), for the tests."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any


def node(name: str, product: str = "NVIDIA-H100-80GB-HBM3", gpus: int = 8, *, memory_mib: int | None = None,
         clique: str | None = None, cpu: str = "128", memory: str = "2Ti",
         labels: Mapping[str, str] | None = None, unschedulable: bool = False) -> dict[str, Any]:
    """A Node with GPU Feature Discovery labels, like tests.harness's fake nodes."""
    node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if gpus:
        node_labels.update({"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": product,
                            "nvidia.com/gpu.count": str(gpus)})
        if memory_mib is not None:
            node_labels["nvidia.com/gpu.memory"] = str(memory_mib)
        if clique:
            node_labels["nvidia.com/gpu.clique"] = clique
    node_labels.update(labels or {})
    alloc = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        alloc["nvidia.com/gpu"] = str(gpus)
    return {
        "metadata": {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": "1", "labels": node_labels,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {"capacity": dict(alloc), "allocatable": alloc,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod(name: str, gpus: int, *, namespace: str = "default", node_name: str | None = None,
        annotations: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
        cpu: str = "1", memory: str = "1Gi", args: list[str] | None = None,
        node_selector: Mapping[str, str] | None = None, uid: str | None = None,
        phase: str = "Pending", scheduler_name: str = "gpuplace-scheduler") -> dict[str, Any]:
    """A Pod as kube-scheduler marshals it into ExtenderArgs: no kind/apiVersion (informer objects have
    no TypeMeta), null creation timestamp fields absent, status present."""
    resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": memory}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
        resources["requests"]["nvidia.com/gpu"] = str(gpus)
    container: dict[str, Any] = {"name": "main", "image": "vllm/vllm-openai:v0.8.5", "resources": resources}
    if args:
        container["args"] = args
    spec: dict[str, Any] = {"containers": [container], "schedulerName": scheduler_name,
                            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30}
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if node_name:
        spec["nodeName"] = node_name
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4()),
                     "resourceVersion": "100", "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": dict(labels or {}), "annotations": dict(annotations or {})},
        "spec": spec,
        "status": {"phase": phase, "qosClass": "Burstable"},
    }


def llama(name: str, model: str, gpus: int = 1, *, tp: int | None = None, max_model_len: int = 8192,
          **kw: Any) -> dict[str, Any]:
    """A vLLM pod serving `model` (no gpuplace.io annotations: the extender recomputes them)."""
    args = ["vllm", "serve", model, "--max-model-len", str(max_model_len)]
    if tp:
        args += ["--tensor-parallel-size", str(tp)]
    return pod(name, gpus, args=args, **kw)
