"""Reading Kubernetes Node/Pod/PodDisruptionBudget objects into the planner's model."""

from __future__ import annotations

from typing import Any

import pytest

from placement.planner.snapshot import SnapshotError, is_movable, pod_request_from_k8s, snapshot_from_objects
from tests.planner.k8s import H100, L4, as_list, node, pdb, pod


def test_gpu_nodes_take_model_and_nvlink_from_the_catalog_and_cpu_nodes_are_left_out() -> None:
    cpu_only = {"kind": "Node", "metadata": {"name": "cpu"}, "status": {"allocatable": {"cpu": "8"}}}
    h100 = node("h", 8, H100, cpu="96", memory="1Ti")
    s = snapshot_from_objects([as_list(h100, node("l", 4, L4), cpu_only)])
    h, l4 = s.by_name["h"], s.by_name["l"]
    assert [n.name for n in s.nodes] == ["h", "l"]
    assert (h.model, h.domain_size, h.cpu_milli, h.memory_mib) == ("H100-SXM-80GB", 8, 96000, 1 << 20)
    assert (l4.model, l4.domain_size) == ("L4", 1)


def test_unknown_product_keeps_its_label_and_gets_no_nvlink() -> None:
    s = snapshot_from_objects([node("x", 8, "ACME-Tensor-9000")])
    assert (s.nodes[0].model, s.nodes[0].domain_size) == ("ACME-Tensor-9000", 1)


def test_gpu_indices_come_from_the_annotation_else_the_lowest_free() -> None:
    s = snapshot_from_objects([as_list(node("a"), pod("p", "a", 2), pod("q", "a", 1, at=(0,)))])
    by = {p.name: p.gpus for p in s.pods}
    assert by == {"p": (1, 2), "q": (0,)}
    assert s.gpu_node("a").gpu_free_milli == [0, 0, 0, 1000, 1000, 1000, 1000, 1000]


def test_overcommitted_gpus_are_an_error_naming_the_node() -> None:
    with pytest.raises(SnapshotError, match="node a: GPU 3"):
        snapshot_from_objects([as_list(node("a"), pod("p", "a", at=(3,)), pod("q", "a", at=(3,)))])
    with pytest.raises(SnapshotError, match="names 1 distinct GPUs, the pod requests 2"):
        snapshot_from_objects([as_list(node("a"), pod("p", "a", 2, at=(3,)))])


def test_finished_pods_free_their_gpus_and_pending_pods_have_no_node() -> None:
    done = pod("done", "a", 8)
    done["status"]["phase"] = "Succeeded"
    s = snapshot_from_objects([as_list(node("a"), done, pod("wait", None, 4))])
    assert [p.name for p in s.pending()] == ["wait"] and not s.bound()


def test_requests_default_to_limits_and_init_containers_count_at_their_peak() -> None:
    limits = {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": 2}
    obj: dict[str, Any] = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "a", "resources": {"limits": limits}},
                       {"name": "b", "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}],
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "8", "memory": "1Mi"}}}]}}
    req = pod_request_from_k8s(obj)
    assert (req.cpu_milli, req.memory_mib, req.num_gpu, req.nvlink_required) == (8000, 1536, 2, True)


def test_gpu_model_constraints_come_from_node_selector_or_required_affinity() -> None:
    sel = pod("p", None, 1, node_selector={"nvidia.com/gpu.product": "NVIDIA-L4"})
    assert pod_request_from_k8s(sel).gpu_models == frozenset({"L4"})
    aff = pod("q", None, 1)
    aff["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-L4", H100]}]}]}}}
    assert pod_request_from_k8s(aff).gpu_models == frozenset({"L4", "H100-SXM-80GB"})


def test_nvlink_annotation_none_lets_a_multi_gpu_pod_span_domains() -> None:
    obj = pod("p", None, 4, annotations={"gpuplace.io/nvlink": "none"})
    assert not pod_request_from_k8s(obj).needs_domain


@pytest.mark.parametrize(("owner", "annotations", "movable"), [
    ("ReplicaSet", {}, True), ("StatefulSet", {}, True), ("Job", {}, True), ("LeaderWorkerSet", {}, True),
    ("DaemonSet", {}, False), (None, {}, False),
    (None, {"gpuplace.io/movable": "true"}, True), ("ReplicaSet", {"gpuplace.io/movable": "false"}, False),
    ("ReplicaSet", {"kubernetes.io/config.mirror": "x"}, False),
])
def test_movable_means_a_recreating_owner_or_the_annotation(owner: str | None, annotations: dict[str, str],
                                                            movable: bool) -> None:
    assert is_movable(pod("p", "a", owner=owner, annotations=annotations)) is movable


def _allowed(budget: dict[str, Any], *pods: dict[str, Any]) -> int:
    s = snapshot_from_objects([as_list(node("a"), *pods, budget)])
    return s.budgets[0].allowed


def test_budget_allowance_counts_healthy_pods() -> None:
    web = [pod(f"w{i}", "a", labels={"app": "web"}) for i in range(4)]
    assert _allowed(pdb("b", {"app": "web"}, min_available=3), *web) == 1
    assert _allowed(pdb("b", {"app": "web"}, min_available="50%"), *web) == 2
    assert _allowed(pdb("b", {"app": "web"}, max_unavailable=1), *web) == 1
    assert _allowed(pdb("b", {"app": "web"}, max_unavailable="30%"), *web) == 2  # ceil(1.2)
    web[0]["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    assert _allowed(pdb("b", {"app": "web"}, max_unavailable=1), *web) == 0  # one is already down


def test_budget_status_can_only_lower_the_allowance_and_other_namespaces_do_not_count() -> None:
    web = [pod(f"w{i}", "a", labels={"app": "web"}) for i in range(4)]
    stale = pdb("b", {"app": "web"}, max_unavailable=2)
    stale["status"] = {"disruptionsAllowed": 1}
    assert _allowed(stale, *web) == 1
    other = [pod(f"o{i}", "a", ns="other", labels={"app": "web"}) for i in range(4)]
    assert _allowed(pdb("b", {"app": "web"}, min_available=1), web[0], *other) == 0


def test_budget_match_expressions_select_pods() -> None:
    b = pdb("b", {})
    b["spec"]["selector"] = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu"]}]}
    b["spec"]["maxUnavailable"] = 0
    s = snapshot_from_objects([as_list(node("a"), pod("x", "a", labels={"tier": "gpu"}), pod("y", "a"), b)])
    budget = s.budgets[0]
    assert [p.name for p in s.pods if budget.covers(p)] == ["x"]


def test_bad_quantities_name_the_object_and_field() -> None:
    bad = node("a")
    bad["status"]["allocatable"]["cpu"] = "lots"
    with pytest.raises(SnapshotError, match=r"Node a: status.allocatable.cpu: 'lots'"):
        snapshot_from_objects([bad])
