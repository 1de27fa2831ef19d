"""Builders for the Kubernetes objects the tests feed the checks (real shapes, small)."""

from __future__ import annotations

from typing import Any


def deployment(
    name: str = "llm",
    command: list[str] | None = None,
    args: list[str] | None = None,
    gpus: int | str = 1,
    product: str | None = None,
    node_selector: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    env: list[dict[str, Any]] | None = None,
    image: str = "vllm/vllm-openai:v0.10.1",
    cpu: str | None = None,
    replicas: int = 1,
    kind: str = "Deployment",
) -> dict[str, Any]:
    selector = dict(node_selector or {})
    if product:
        selector["nvidia.com/gpu.product"] = product
    limits: dict[str, Any] = {"nvidia.com/gpu": gpus}
    if cpu:
        limits["cpu"] = cpu
    container: dict[str, Any] = {"name": "server", "image": image, "resources": {"limits": limits}}
    if command is not None:
        container["command"] = command
    if args is not None:
        container["args"] = args
    if env is not None:
        container["env"] = env
    pod_spec: dict[str, Any] = {"containers": [container]}
    if selector:
        pod_spec["nodeSelector"] = selector
    template: dict[str, Any] = {"metadata": {"labels": {"app": name}}, "spec": pod_spec}
    if annotations:
        template["metadata"]["annotations"] = annotations
    if kind == "Job":
        pod_spec["restartPolicy"] = "Never"
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"template": template},
        }
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template},
    }


def vllm(model: str, *flags: str, **kw: Any) -> dict[str, Any]:
    return deployment(command=["vllm", "serve", model], args=list(flags), **kw)


H100 = "NVIDIA-H100-80GB-HBM3"
L40S = "NVIDIA-L40S"
L4 = "NVIDIA-L4"
A100_80 = "NVIDIA-A100-SXM4-80GB"
