"""The extender's placement rules (placement/scheduling.py, placement/node_topology.py) on small clusters
where the right answer is clear by hand."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from placement.checks.settings import CheckContext
from placement.findings import Code
from placement.node_topology import NodeTable, node_info_from_k8s
from placement.policies import make_policy
from placement.scheduling import (
    PASS,
    REFUSALS,
    GroupPlacement,
    PodNeeds,
    PodReadError,
    PolicyHolder,
    Refusal,
    ShapeWindow,
    choose_gpus,
    filter_nodes,
    fragmentation_finding,
    pod_needs,
    score_nodes,
    tier_terms,
)
from placement.topology import MILLI, Cluster, PodRequest
from tests.extender.objects import llama, node, pod

CTX = CheckContext.default()
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA_70B = "meta-llama/Llama-3.1-70B-Instruct"


def build(nodes: Sequence[dict], used: dict[str, Sequence[int]] | None = None) -> tuple[Cluster, NodeTable]:
    infos = [node_info_from_k8s(n, CTX.gpus) for n in nodes]
    table = NodeTable([i for i in infos if i is not None])
    cluster = table.cluster()
    for name, gpus in (used or {}).items():
        row = table.row[name]
        cluster.gpu_free[row, list(gpus)] = 0
        cluster.version[row] += 1
    return cluster, table


def needs(obj: dict) -> PodNeeds:
    return pod_needs(obj, CTX)


NO_GROUP = GroupPlacement()


def verdicts(cluster: Cluster, table: NodeTable, n: PodNeeds, group: GroupPlacement = NO_GROUP
             ) -> dict[str, str]:
    out = filter_nodes(cluster, table, n, np.arange(len(table)), group)
    return {table.names[i]: ("pass" if r == PASS else REFUSALS[r].value) for i, r in enumerate(out.reason)}


def best(cluster: Cluster, table: NodeTable, n: PodNeeds, group: GroupPlacement = NO_GROUP) -> str:
    rows = np.flatnonzero(filter_nodes(cluster, table, n, np.arange(len(table)), group).reason == PASS)
    scores = score_nodes(make_policy_for_tests(), cluster, table, n, rows, group)
    assert sorted(scores.tolist()).count(10) == 1, "the best node gets 10 alone"
    return table.names[int(rows[int(np.argmax(scores))])]


def make_policy_for_tests():  # type: ignore[no-untyped-def]
    return PolicyHolder().policy()


# ---- nodes ------------------------------------------------------------------------------------------------
def test_known_product_gets_catalog_memory_price_and_nvlink_layout() -> None:
    info = node_info_from_k8s(node("h", clique="fabric-1.0"), CTX.gpus)
    assert info is not None
    assert (info.model, info.gpu_count, info.nvlink.kind) == ("H100-SXM-80GB", 8, "switch")
    assert info.domain_size == 8
    assert info.gpu_memory_mib == int(79.2 * 1024)
    assert info.price_per_hour == pytest.approx(2.99)
    assert info.clique == "fabric-1.0"
    pairs = node_info_from_k8s(node("n", "NVIDIA-H100-NVL", 4), CTX.gpus)
    assert pairs is not None and (pairs.nvlink.kind, pairs.domain_size) == ("pairs", 2)


def test_unknown_product_takes_memory_from_the_gfd_label_and_has_no_price() -> None:
    info = node_info_from_k8s(node("x", "ACME-GPU-9000", 4, memory_mib=65536), CTX.gpus)
    assert info is not None
    assert (info.model, info.gpu_memory_mib, info.price_per_hour, info.domain_size) == (
        "ACME-GPU-9000", 65536, None, 1)


def test_node_without_allocatable_gpus_is_not_a_gpu_node() -> None:
    assert node_info_from_k8s(node("cpu", gpus=0), CTX.gpus) is None


# ---- what a pod needs --------------------------------------------------------------------------------------
def test_stamped_annotations_are_taken_as_they_are() -> None:
    stamped = {"gpuplace.io/gpu-memory-min": "50000", "gpuplace.io/nvlink": "required",
               "gpuplace.io/model-resolved": "x/y"}
    n = needs(pod("p", 4, annotations=stamped))
    assert (n.gpus, n.gpu_memory_mib, n.nvlink_required, n.model, n.source) == (4, 50000, True, "x/y",
                                                                                 "annotations")


def test_without_annotations_the_requirements_are_recomputed_from_the_serving_command() -> None:
    small = needs(llama("s", LLAMA_8B))
    assert small.source == "recomputed" and small.model == LLAMA_8B
    assert small.gpu_memory_mib is not None and small.gpu_memory_mib < 22_000  # fits an L4
    assert not small.nvlink_required
    big = needs(llama("b", LLAMA_70B, 2, tp=2))
    assert big.nvlink_required and big.gpu_memory_mib is not None and big.gpu_memory_mib > 46_000


def test_a_multi_gpu_pod_of_unknown_purpose_is_not_held_to_one_nvlink_domain() -> None:
    """requirements() says `none` unless tensor parallelism spans the GPUs (design.md)."""
    n = needs(pod("p", 4))
    assert (n.gpus, n.nvlink_required, n.gpu_memory_mib) == (4, False, None)


def test_tier_annotation_pins_the_pod_to_catalog_gpus() -> None:
    n = needs(pod("p", 1, annotations={"gpuplace.io/tier": "L4, L40S"}))
    assert n.request.gpu_models == frozenset({"L4", "L40S"})
    sel = needs(pod("q", 1, node_selector={"nvidia.com/gpu.product": "NVIDIA-L4"}))
    assert sel.request.gpu_models == frozenset({"L4"})


def test_group_key_is_per_leaderworkerset_group() -> None:
    a = needs(pod("a", 4, namespace="ml", annotations={"gpuplace.io/group": "leaderworkerset/big",
                                                         "leaderworkerset.sigs.k8s.io/size": "2"},
                  labels={"leaderworkerset.sigs.k8s.io/group-index": "1"}))
    assert (a.group, a.group_size) == ("ml/leaderworkerset/big#1", 2)


def test_unreadable_resources_are_a_pod_read_error() -> None:
    bad = pod("p", 1, cpu="lots")
    with pytest.raises(PodReadError, match="cpu"):
        needs(bad)


def test_unreadable_memory_annotation_is_recomputed_not_trusted() -> None:
    n = needs(llama("s", LLAMA_8B, annotations={"gpuplace.io/gpu-memory-min": "a lot"}))
    assert n.gpu_memory_mib is not None and n.source == "recomputed"


# ---- filter ------------------------------------------------------------------------------------------------
def test_gpus_too_small_for_the_model_are_refused_for_good() -> None:
    cluster, table = build([node("l4", "NVIDIA-L4", 4), node("h100")])
    n = needs(llama("big", LLAMA_70B, 2, tp=2))
    assert verdicts(cluster, table, n) == {"l4": "gpu-memory", "h100": "pass"}
    out = filter_nodes(cluster, table, n, np.arange(2))
    _, failed, unresolvable = out.split(table.names)
    assert not failed and list(unresolvable) == ["l4"]
    assert "L4 GPUs hold 22558 MiB" in unresolvable["l4"] and LLAMA_70B in unresolvable["l4"]


def test_nvlink_bound_pod_is_refused_where_no_domain_could_ever_hold_it() -> None:
    cluster, table = build([node("l4", "NVIDIA-L4", 4), node("nvl", "NVIDIA-H100-NVL", 4), node("h100")])
    four = needs(pod("p", 4, annotations={"gpuplace.io/nvlink": "required"}))
    assert verdicts(cluster, table, four) == {"l4": "nvlink-topology", "nvl": "nvlink-topology",
                                              "h100": "pass"}
    two = needs(pod("q", 2, annotations={"gpuplace.io/nvlink": "required"}))
    assert verdicts(cluster, table, two) == {"l4": "nvlink-topology", "nvl": "pass", "h100": "pass"}


def test_free_gpus_in_pieces_fail_an_nvlink_pod_for_now_and_raise_the_fragmentation_finding() -> None:
    cluster, table = build([node("nvl-a", "NVIDIA-H100-NVL", 4), node("nvl-b", "NVIDIA-H100-NVL", 4)],
                           used={"nvl-a": [0, 2], "nvl-b": [1, 3]})
    n = needs(pod("p", 2, annotations={"gpuplace.io/nvlink": "required"}))
    out = filter_nodes(cluster, table, n, np.arange(2))
    assert [REFUSALS[r] for r in out.reason] == [Refusal.NVLINK_FRAGMENTED] * 2
    passed, failed, unresolvable = out.split(table.names)
    assert not passed and not unresolvable and set(failed) == {"nvl-a", "nvl-b"}
    finding = fragmentation_finding(n, out)
    assert finding is not None and finding.code is Code.FRAGMENTATION
    assert "4 are free on 2 node(s) but in pieces of at most 1" in finding.message


def test_busy_node_fails_for_now() -> None:
    cluster, table = build([node("h100")], used={"h100": range(6)})
    assert verdicts(cluster, table, needs(pod("p", 4))) == {"h100": "gpus-busy"}


def test_group_member_in_a_clique_keeps_the_group_out_of_other_cliques() -> None:
    cluster, table = build([node("a", "NVIDIA-GB200", 4, clique="c1"),
                            node("b", "NVIDIA-GB200", 4, clique="c2"), node("c", "NVIDIA-GB200", 4)])
    n = needs(pod("p", 4, annotations={"gpuplace.io/group": "lws/x"}))
    group = GroupPlacement(1, frozenset({table.cliques.index("c1")}))
    assert verdicts(cluster, table, n, group) == {"a": "pass", "b": "group-clique", "c": "group-clique"}
    out = filter_nodes(cluster, table, n, np.arange(3), group)
    assert "runs in NVLink clique c1; this node is in clique c2" in out.messages[1]


def test_unknown_node_names_fail_without_being_unresolvable() -> None:
    cluster, table = build([node("a")])
    out = filter_nodes(cluster, table, needs(pod("p", 1)), np.array([0, -1]))
    passed, failed, unresolvable = out.split(["a", "ghost"])
    assert passed == ["a"] and "ghost" in failed and not unresolvable


def test_same_reason_on_the_same_gpu_model_gives_the_same_message() -> None:
    """kube-scheduler groups identical messages into '3 node(s) ...'."""
    cluster, table = build([node(f"l4-{i}", "NVIDIA-L4", 4) for i in range(3)], used={"l4-1": [0]})
    out = filter_nodes(cluster, table, needs(llama("big", LLAMA_70B, 2, tp=2)), np.arange(3))
    assert len(set(out.messages.values())) == 1


# ---- score -------------------------------------------------------------------------------------------------
def test_small_model_without_pinned_tier_goes_to_the_cheapest_tier_that_holds_it() -> None:
    cluster, table = build([node("h100-a"), node("l4-a", "NVIDIA-L4", 4), node("h100-b")],
                           used={"l4-a": [0, 1, 2]})
    assert best(cluster, table, needs(llama("small", LLAMA_8B))) == "l4-a"


def test_model_that_needs_a_big_gpu_goes_to_the_cheapest_gpu_big_enough() -> None:
    cluster, table = build([node("h100"), node("nvl", "NVIDIA-H100-NVL", 4), node("l40s", "NVIDIA-L40S", 4)])
    assert best(cluster, table, needs(llama("big", LLAMA_70B, 2, tp=2))) == "nvl"


def test_pod_of_unknown_size_is_packed_not_sent_to_the_cheapest_tier() -> None:
    cluster, table = build([node("a100", "NVIDIA-A100-SXM4-80GB"), node("h100")], used={"h100": range(7)})
    unknown = needs(pod("p", 1))
    assert tier_terms(table, unknown, np.arange(2)).tolist() == [1.0, 1.0]
    # The last free H100 GPU, a piece nothing bigger can use, not a whole (cheaper) A100 node.
    assert best(cluster, table, unknown) == "h100"
    known = needs(llama("small", LLAMA_8B))
    assert best(cluster, table, known) == "a100"


def test_one_gpu_pod_fills_a_broken_node_and_keeps_the_whole_one_whole() -> None:
    cluster, table = build([node("whole"), node("broken")], used={"broken": [0, 1, 2, 3]})
    assert best(cluster, table, needs(pod("p", 1))) == "broken"


def test_two_gpu_pod_takes_the_half_used_pair_node_not_a_whole_switch_node() -> None:
    cluster, table = build([node("h100"), node("nvl", "NVIDIA-H100-NVL", 4)], used={"nvl": [0, 1]})
    n = needs(pod("p", 2, annotations={"gpuplace.io/nvlink": "required"}))
    assert best(cluster, table, n) == "nvl"


def test_group_pod_follows_its_members_clique() -> None:
    nodes = [node(f"{c}-{i}", "NVIDIA-GB200", 4, clique=c) for c in ("c1", "c2") for i in range(2)]
    cluster, table = build(nodes, used={"c2-0": [0, 1]})
    n = needs(pod("p", 2, annotations={"gpuplace.io/group": "lws/x"}))
    group = GroupPlacement(1, frozenset({table.cliques.index("c1")}))
    assert best(cluster, table, n, group).startswith("c1-")


def test_first_member_of_a_group_goes_to_the_clique_that_holds_the_whole_group_tightly() -> None:
    nodes = [node(f"{c}-{i}", "NVIDIA-GB200", 4, clique=c) for c in ("c1", "c2") for i in range(2)]
    cluster, table = build(nodes, used={"c1-0": [0, 1, 2]})  # c1: 5 free, c2: 8 free
    size = "leaderworkerset.sigs.k8s.io/size"
    sized = needs(pod("p", 2, annotations={"gpuplace.io/group": "lws/x", size: "4"}))
    assert best(cluster, table, sized).startswith("c2-")  # 4 x 2 GPUs only fit c2
    small = needs(pod("q", 2, annotations={"gpuplace.io/group": "lws/y", size: "2"}))
    assert best(cluster, table, small).startswith("c1-")  # 2 x 2 GPUs: c1 holds it more tightly


def test_scores_stay_within_0_to_10_and_only_the_best_node_gets_10() -> None:
    cluster, table = build([node(f"h{i}") for i in range(6)], used={"h1": [0], "h2": [0, 1, 2]})
    rows = np.arange(6)
    scores = score_nodes(make_policy_for_tests(), cluster, table, needs(pod("p", 1)), rows)
    assert scores.min() >= 0 and scores.max() == 10 and (scores == 10).sum() == 1


# ---- GPU choice --------------------------------------------------------------------------------------------
def test_gpus_for_an_nvlink_pod_come_from_one_domain_the_tightest_that_holds_it() -> None:
    cluster, _ = build([node("nvl", "NVIDIA-H100-NVL", 4)], used={"nvl": [0]})
    policy = make_policy_for_tests()
    one = needs(pod("p", 1)).request
    assert choose_gpus(policy, cluster, 0, one) == (1,)  # completes the broken pair
    two = needs(pod("q", 2, annotations={"gpuplace.io/nvlink": "required"})).request
    assert choose_gpus(policy, cluster, 0, two) == (2, 3)


def test_no_gpus_when_the_node_cannot_hold_an_nvlink_pod() -> None:
    cluster, _ = build([node("nvl", "NVIDIA-H100-NVL", 4)], used={"nvl": [0, 2]})
    two = needs(pod("q", 2, annotations={"gpuplace.io/nvlink": "required"})).request
    assert choose_gpus(make_policy_for_tests(), cluster, 0, two) is None
    loose = needs(pod("r", 2)).request
    assert choose_gpus(make_policy("best-fit"), cluster, 0, loose) is not None


# ---- the shapes the packing serves -----------------------------------------------------------------------
def test_a_fresh_window_already_knows_1_2_4_and_8_gpu_pods() -> None:
    dist = ShapeWindow().distribution()
    assert sorted({s.num_gpu for s in dist.shapes}) == [1, 2, 4, 8]


def test_policy_is_rebuilt_once_recent_shapes_move_and_not_on_every_pod() -> None:
    holder = PolicyHolder(window=ShapeWindow(size=100, prior_pods=1), check_every=10)
    first = holder.policy()
    holder.observe(PodRequest("one", 1000, 1, 1, MILLI))
    assert holder.policy() is first
    for i in range(40):
        holder.observe(PodRequest(f"p{i}", 1000, 1, 1, MILLI))
    assert holder.policy() is not first and holder.rebuilds == 2


def test_shape_of_a_pod_without_cpu_request_keeps_the_policy_defined() -> None:
    holder = PolicyHolder(window=ShapeWindow(size=10, prior_pods=0.0), check_every=1)
    for i in range(5):
        holder.observe(PodRequest(f"p{i}", 0, 0, 1, MILLI))
    cluster, _ = build([node("a"), node("b")], used={"b": [0]})
    scores = holder.policy().score(cluster, PodRequest("x", 0, 0, 1, MILLI), np.arange(2))
    assert np.all(np.isfinite(scores))
