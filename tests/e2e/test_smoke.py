"""Smoke test of the e2e harness: real kube-apiserver, real kube-scheduler, fake 8-GPU nodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import ControlPlane, KubeControllerManager, SchedulerFactory, pinned_versions, wait_until

pytestmark = pytest.mark.e2e

# Its own profile name so that the test also works on a kind cluster, where the cluster's own
# scheduler already is `default-scheduler`; locally nothing else schedules anyway.
SCHEDULER_NAME = "gpuplace-e2e-scheduler"
SCHEDULER_CONFIG = f"""
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
  - schedulerName: {SCHEDULER_NAME}
"""


def _wide_columns(output: str) -> list[dict[str, str]]:
    """Parse `kubectl get -o wide` output into rows keyed by header (columns are space-aligned)."""
    lines = [line for line in output.splitlines() if line.strip()]
    header = lines[0]
    names = header.split()
    starts: list[int] = []
    pos = 0
    for name in names:
        # Multi-word headers ("NOMINATED NODE") are split above; find each word in order.
        pos = header.index(name, pos)
        starts.append(pos)
        pos += len(name)
    rows = []
    for line in lines[1:]:
        row: dict[str, str] = {}
        for i, name in enumerate(names):
            end = starts[i + 1] if i + 1 < len(starts) else len(line)
            row.setdefault(name, line[starts[i] : end].strip())
        rows.append(row)
    return rows


def test_apiserver_is_up(control_plane: ControlPlane) -> None:
    assert control_plane.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    version = control_plane.kubectl_json("version")
    if not control_plane.external:
        expected = pinned_versions()["kubernetes"]
        assert version["serverVersion"]["gitVersion"] == expected
        assert version["clientVersion"]["gitVersion"] == expected
    # RBAC is on: an unprivileged identity is refused.
    can_i = control_plane.kubectl("auth", "can-i", "list", "nodes", "--as=someone", check=False)
    assert can_i.stdout.strip() == "no"


def test_gpu_pod_is_scheduled_by_kube_scheduler(
    control_plane: ControlPlane,
    scheduler: SchedulerFactory,
    make_gpu_pod: Callable[..., dict[str, Any]],
) -> None:
    nodes = ["gpu-node-a", "gpu-node-b"]
    for name in nodes:
        node = control_plane.add_gpu_node(name, gpus=8, clique="fabric-1.0")
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
        assert node["metadata"]["labels"]["nvidia.com/gpu.memory"] == "81559"
        assert not node["spec"].get("taints")
    sched = scheduler(SCHEDULER_CONFIG)
    assert sched.scheduler_names == [SCHEDULER_NAME]

    ns = control_plane.create_namespace("smoke")
    control_plane.create(make_gpu_pod("train-4gpu", 4, namespace=ns, scheduler_name=SCHEDULER_NAME))
    node_name = control_plane.wait_for_pod_scheduled("train-4gpu", ns, timeout=90)
    assert node_name in nodes

    rows = _wide_columns(control_plane.kubectl("-n", ns, "get", "pods", "-o", "wide").stdout)
    assert [r["NAME"] for r in rows] == ["train-4gpu"]
    assert rows[0]["NODE"] == node_name
    # No kubelet runs: the pod is bound but never started.
    assert rows[0]["STATUS"] in {"Pending", "ContainerCreating", "Running"}

    pod = control_plane.pod("train-4gpu", ns)
    assert pod["spec"]["nodeName"] == node_name
    scheduled = [e for e in control_plane.events_for("train-4gpu", ns) if e["reason"] == "Scheduled"]
    assert scheduled, "expected a Scheduled event from kube-scheduler"
    assert node_name in scheduled[-1]["message"]


def test_pod_asking_too_many_gpus_stays_unscheduled(
    control_plane: ControlPlane,
    scheduler: SchedulerFactory,
    make_gpu_pod: Callable[..., dict[str, Any]],
) -> None:
    for name in ("gpu-node-a", "gpu-node-b"):
        control_plane.add_gpu_node(name, gpus=8)
    scheduler(SCHEDULER_CONFIG)
    ns = control_plane.create_namespace("smoke")
    control_plane.create(make_gpu_pod("train-16gpu", 16, namespace=ns, scheduler_name=SCHEDULER_NAME))

    message = control_plane.wait_for_pod_unschedulable("train-16gpu", ns, timeout=90)
    assert "nvidia.com/gpu" in message
    assert not control_plane.pod("train-16gpu", ns)["spec"].get("nodeName")

    failed = [e for e in control_plane.events_for("train-16gpu", ns) if e["reason"] == "FailedScheduling"]
    assert failed, "expected a FailedScheduling event"
    assert "Insufficient nvidia.com/gpu" in failed[-1]["message"]


def test_deployment_pods_fill_both_nodes_with_controller_manager(
    control_plane: ControlPlane,
    scheduler: SchedulerFactory,
    controller_manager: KubeControllerManager | None,
    make_gpu_pod: Callable[..., dict[str, Any]],
) -> None:
    """Opt-in kube-controller-manager: a Deployment's pods get created, and the real scheduler's
    accounting of nvidia.com/gpu puts exactly two 4-GPU pods on each 8-GPU node."""
    nodes = ["gpu-node-a", "gpu-node-b"]
    for name in nodes:
        control_plane.add_gpu_node(name, gpus=8)
    scheduler(SCHEDULER_CONFIG)
    ns = control_plane.create_namespace("smoke")
    template = make_gpu_pod("unused", 4, namespace=ns, scheduler_name=SCHEDULER_NAME, labels={"app": "train"})
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "train", "namespace": ns},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "train"}},
            "template": {"metadata": {"labels": {"app": "train"}}, "spec": template["spec"]},
        },
    }
    control_plane.create(deployment)

    def bound() -> dict[str, str] | None:
        pods = control_plane.kubectl_json("-n", ns, "get", "pods", "-l", "app=train")["items"]
        placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods}
        return placed if len(placed) == 4 and all(placed.values()) else None

    placed = wait_until(bound, timeout=120, what="4 deployment pods bound")
    assert sorted(placed.values()) == ["gpu-node-a", "gpu-node-a", "gpu-node-b", "gpu-node-b"]
    # The fifth replica has no room left.
    control_plane.kubectl("-n", ns, "scale", "deployment/train", "--replicas=5")

    def pending_one() -> str | None:
        pods = control_plane.kubectl_json("-n", ns, "get", "pods", "-l", "app=train")["items"]
        unbound = [p for p in pods if not p["spec"].get("nodeName")]
        if len(pods) != 5 or len(unbound) != 1:
            return None
        conditions = unbound[0].get("status", {}).get("conditions") or []
        return next((c.get("message") for c in conditions if c.get("status") == "False"), None)

    message = wait_until(pending_one, timeout=120, what="the fifth replica to be unschedulable")
    assert "Insufficient nvidia.com/gpu" in message
