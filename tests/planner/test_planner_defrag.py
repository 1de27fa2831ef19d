"""Defragmentation plans on snapshots small enough that the optimum is known by hand."""

from __future__ import annotations

from typing import Any

import pytest

from placement.planner.defrag import DefragOptions, DefragResult, Move, _order, after_plan
from placement.planner.defrag import plan_defrag as solve_defrag
from placement.planner.snapshot import SnapNode, SnapPod, Snapshot, SnapshotError, snapshot_from_objects
from placement.planner.solver import SolveOptions
from placement.topology import NvlinkLayout, PodRequest
from tests.planner.k8s import as_list, node, pdb, pod

NVL_PAIRS = "NVIDIA-H100-NVL"  # catalog: NVLink pairs
OPTIONS = DefragOptions(solve=SolveOptions(time_limit_s=20))


def plan_defrag(s: Snapshot, pod: PodRequest, options: DefragOptions = OPTIONS) -> DefragResult:
    """The planner's answer, after checking that every plan it finds can be carried out."""
    result = solve_defrag(s, pod, options)
    if result.found:
        after_plan(s, result, pod)
    return result


def snap(*objs: dict[str, Any]) -> Snapshot:
    return snapshot_from_objects([as_list(*objs)])


def big(k: int = 8, nvlink: bool = True, cpu: int = 1000) -> PodRequest:
    return PodRequest("big", cpu, 1024, k, 1000, nvlink_required=nvlink)


def ones(prefix: str, on: str, gpus: tuple[int, ...], **kw: Any) -> list[dict[str, Any]]:
    return [pod(f"{prefix}{g}", on, at=(g,), **kw) for g in gpus]


def test_opens_eight_gpus_with_three_moves_when_one_node_holds_three_pods() -> None:
    s = snap(node("a"), node("b"), *ones("a", "a", (0, 2, 4)), *ones("b", "b", (0, 2, 4, 5, 7)))
    r = plan_defrag(s, big(), OPTIONS)
    assert r.status == "optimal" and r.proven_optimal and r.scope == "exact"
    assert (r.node, r.gpus, r.cost) == ("a", tuple(range(8)), 3)
    assert sorted(m.pod for m in r.moves) == ["default/a0", "default/a2", "default/a4"]
    landed = [g for m in r.moves for g in m.to_gpus]
    assert all(m.to_node == "b" for m in r.moves) and sorted(landed) == [1, 3, 6]


def test_nothing_moves_when_the_block_is_already_free() -> None:
    s = snap(node("a"), node("b"), *ones("a", "a", (0,)))
    r = plan_defrag(s, big(), OPTIONS)
    assert (r.status, r.node, r.moves, r.gpus) == ("fits-now", "b", (), tuple(range(8)))


def test_budget_that_forbids_the_cheapest_moves_forces_another_block() -> None:
    crit = {"app": "critical"}
    s = snap(node("a"), node("b"), node("c"),
             *ones("a", "a", (0, 1, 2), labels=crit), pdb("crit", crit, max_unavailable=1),
             *ones("b", "b", (0, 1, 2, 3)), *ones("c", "c", (4, 5, 6, 7)))
    r = plan_defrag(s, big(), OPTIONS)
    assert r.found and r.cost == 4 and r.node in ("b", "c")
    assert not any(m.pod.startswith("default/a") for m in r.moves)
    free = snap(node("a"), node("b"), node("c"), *ones("a", "a", (0, 1, 2), labels=crit),
                *ones("b", "b", (0, 1, 2, 3)), *ones("c", "c", (4, 5, 6, 7)))
    assert plan_defrag(free, big(), OPTIONS).cost == 3  # without the budget, node a is cheapest


def test_pods_without_a_recreating_controller_stay_put() -> None:
    s = snap(node("a"), node("b"), pod("bare", "a", at=(0,), owner=None), pod("ds", "a", at=(1,),
             owner="DaemonSet"), *ones("b", "b", (0, 1, 2)))
    r = plan_defrag(s, big(), OPTIONS)
    assert (r.node, r.cost) == ("b", 3)
    assert all(m.to_node == "a" for m in r.moves)


def test_movable_annotation_overrides_the_owner() -> None:
    s = snap(node("a"), node("b"),
             pod("bare", "a", at=(0,), owner=None, annotations={"gpuplace.io/movable": "true"}),
             *ones("b", "b", (0, 1)))
    assert plan_defrag(s, big(), OPTIONS).moves[0].pod == "default/bare"
    pinned = snap(node("a"), node("b"), pod("rs", "a", at=(0,), annotations={"gpuplace.io/movable": "false"}),
                  *ones("b", "b", (0, 1)))
    r = plan_defrag(pinned, big(), OPTIONS)
    assert r.node == "b" and r.cost == 2


def test_higher_priority_pods_cost_more_to_move() -> None:
    s = snap(node("a"), node("b"), *ones("a", "a", (0, 1), priority=1000), *ones("b", "b", (0, 1, 2)))
    r = plan_defrag(s, big(), OPTIONS)
    assert (r.node, r.cost, len(r.moves)) == ("b", 3, 3)  # two moves at weight 2 would cost 4


def test_a_multi_gpu_pod_weighs_its_gpu_count() -> None:
    s = snap(node("a"), node("b"), pod("wide", "a", 4, at=(0, 1, 2, 3)), *ones("b", "b", (0, 1, 2)))
    r = plan_defrag(s, big(), OPTIONS)
    assert (r.node, r.cost) == ("b", 3)


def test_a_moved_multi_gpu_pod_lands_inside_one_nvlink_domain() -> None:
    # V100-style nodes: two NVLink quads per node. v has 6 free GPUs but no free quad; w has one.
    quads = NvlinkLayout("switch", 4)
    nodes = [SnapNode("a", "H100", 8, 64000, 524288, NvlinkLayout("switch")),
             SnapNode("v", "V100", 8, 64000, 524288, quads), SnapNode("w", "V100", 8, 64000, 524288, quads)]

    def one(name: str, on: str, gpus: tuple[int, ...], movable: bool) -> SnapPod:
        return SnapPod("ml", name, PodRequest(name, 1000, 1024, len(gpus), 1000, nvlink_required=True), on,
                       gpus, movable=movable)

    s = Snapshot(nodes, [one("tp4", "a", (0, 1, 2, 3), True), one("v0", "v", (0,), False),
                         one("v5", "v", (5,), False), one("w0", "w", (0,), False)])
    target = PodRequest("big", 1000, 1024, 8, 1000, frozenset({"H100"}), True)
    r = plan_defrag(s, target, OPTIONS)
    assert r.node == "a" and r.cost == 4
    assert (r.moves[0].to_node, r.moves[0].to_gpus) == ("w", (4, 5, 6, 7))


def test_a_pod_may_move_within_its_node_to_open_a_pair() -> None:
    # Pairs (0,1) and (2,3) each hold one 1-GPU pod: one move inside the node opens a pair.
    s = snap(node("a", 4, NVL_PAIRS), *ones("p", "a", (0, 2)))
    r = plan_defrag(s, big(2), OPTIONS)
    assert r.cost == 1 and r.moves[0].to_node == "a" and r.proven_optimal
    assert set(r.gpus) in ({0, 1}, {2, 3}) and set(r.moves[0].to_gpus).isdisjoint(r.gpus)


def test_no_plan_when_moved_pods_have_nowhere_to_go() -> None:
    s = snap(node("a"), node("b"), *ones("a", "a", (0, 1, 2, 3, 4)), *ones("b", "b", (0, 1, 2, 3)))
    r = plan_defrag(s, big(), OPTIONS)
    assert not r.found and r.status == "no-plan" and "nowhere else to go" in r.message


def test_no_plan_names_the_budget_when_only_budget_breaking_plans_exist() -> None:
    sel = {"app": "db"}
    # Only node a can be cleared (b holds a bare pod), and the budget lets none of a's pods go.
    s = snap(node("a"), node("b"), *ones("a", "a", (0, 1, 2), labels=sel),
             pdb("db-pdb", sel, min_available=3), *ones("b", "b", (0, 1, 2, 3)),
             pod("bare", "b", at=(4,), owner=None))
    r = plan_defrag(s, big(), OPTIONS)
    assert r.status == "no-plan" and "default/db-pdb" in r.message


def test_no_plan_when_every_block_holds_an_unmovable_pod() -> None:
    s = snap(node("a"), node("b"), pod("x", "a", at=(0,), owner=None), pod("y", "b", at=(7,), owner=None))
    r = plan_defrag(s, big(), OPTIONS)
    assert r.status == "no-plan" and "cannot move" in r.message


def test_no_plan_when_the_pod_is_larger_than_any_nvlink_domain() -> None:
    r = plan_defrag(snap(node("a", 4, NVL_PAIRS)), big(4), OPTIONS)
    assert r.status == "no-plan" and "largest NVLink domain" in r.message and "has 2" in r.message
    relaxed = plan_defrag(snap(node("a", 4, NVL_PAIRS)), big(4, nvlink=False), OPTIONS)
    assert relaxed.status == "fits-now"


def test_cordoned_nodes_are_neither_target_nor_destination() -> None:
    s = snap(node("a"), node("b", unschedulable=True), node("c"), *ones("a", "a", (0,)),
             *ones("c", "c", (0, 1, 2, 3, 4, 5, 6)))
    r = plan_defrag(s, big(), OPTIONS)
    assert (r.node, r.cost) == ("a", 1) and r.moves[0].to_node == "c"


def test_the_pending_pods_cpu_must_fit_after_the_moves() -> None:
    # a's free GPUs are cheapest to open, but its CPU is held by an unmovable CPU pod.
    s = snap(node("a", cpu="8"), node("b", cpu="64"), pod("cpu-hog", "a", 0, owner=None, cpu="6"),
             *ones("a", "a", (0,), cpu="500m"), *ones("b", "b", (0, 1), cpu="500m"))
    r = plan_defrag(s, big(cpu=4000), OPTIONS)
    assert (r.node, r.cost) == ("b", 2)


def test_a_movable_cpu_only_pod_moves_to_make_cpu_room() -> None:
    s = snap(node("a", cpu="8"), node("b", cpu="64"), pod("cpu-job", "a", 0, cpu="6"),
             *ones("b", "b", (0, 1)))
    r = plan_defrag(s, big(cpu=4000), OPTIONS)
    assert (r.node, r.cost, [m.pod for m in r.moves]) == ("a", 1, ["default/cpu-job"])
    assert r.moves[0].to_node == "b" and r.moves[0].to_gpus == ()


def test_pruned_models_report_their_scope_and_stay_valid() -> None:
    pods = [p for i in range(4) for p in ones(f"n{i}-", f"n{i}", (0, 1))]
    s = snap(*(node(f"n{i}") for i in range(4)), *pods)
    r = plan_defrag(s, big(), DefragOptions(solve=SolveOptions(5), max_blocks=1, full_model_pods=1))
    assert r.found and r.cost == 2 and r.scope.startswith("pruned") and r.proven_optimal  # cost = bound


BY_BLOCK = DefragOptions(solve=SolveOptions(time_limit_s=20), full_model_pods=0)  # the large-cluster path


def test_block_by_block_search_finds_the_same_optima() -> None:
    three = snap(node("a"), node("b"), *ones("a", "a", (0, 2, 4)), *ones("b", "b", (0, 2, 4, 5, 7)))
    r = plan_defrag(three, big(), BY_BLOCK)
    assert (r.node, r.cost, r.status, r.proven_optimal) == ("a", 3, "optimal", True)
    assert r.scope.startswith("pruned: moves of pods on the target node only")
    crit = {"app": "critical"}
    budget = snap(node("a"), node("b"), node("c"), *ones("a", "a", (0, 1, 2), labels=crit),
                  pdb("crit", crit, max_unavailable=1), *ones("b", "b", (0, 1, 2, 3)),
                  *ones("c", "c", (4, 5, 6, 7)))
    r = plan_defrag(budget, big(), BY_BLOCK)
    assert r.cost == 4 and r.node in ("b", "c") and r.status == "optimal" and not r.proven_optimal
    assert r.blocks_considered == 2  # a (bound 3) proved impossible, b solved (4), c cut by its bound 4


def test_block_by_block_search_names_the_budget_or_the_missing_room() -> None:
    sel = {"app": "db"}
    s = snap(node("a"), node("b"), *ones("a", "a", (0, 1, 2), labels=sel),
             pdb("db-pdb", sel, min_available=3), *ones("b", "b", (0, 1, 2, 3)),
             pod("bare", "b", at=(4,), owner=None))
    r = plan_defrag(s, big(), BY_BLOCK)
    assert r.status == "no-plan" and "default/db-pdb" in r.message and "searched:" in r.message
    full = snap(node("a"), node("b"), *ones("a", "a", (0, 1, 2, 3, 4)), *ones("b", "b", (0, 1, 2, 3)))
    assert "nowhere else to go" in plan_defrag(full, big(), BY_BLOCK).message


def test_a_plan_that_overcommits_is_caught_by_the_checker() -> None:
    s = snap(node("a"), node("b"), *ones("a", "a", (0,)), *ones("b", "b", (0,)))
    onto_b0 = Move("default/a0", "a", (0,), "b", (0,), 1)  # GPU 0 of b is taken
    bad = DefragResult("optimal", "", 8, "a", tuple(range(8)), moves=(onto_b0,))
    with pytest.raises(SnapshotError, match="given to more pods"):
        after_plan(s, bad, big())


def test_evictions_are_ordered_so_each_pod_lands_on_gpus_already_freed() -> None:
    first = Move("ns/b", "n1", (3,), "n2", (0,), 1)
    second = Move("ns/a", "n2", (5,), "n1", (3,), 1)  # lands where b was
    assert [m.pod for m in _order([second, first])] == ["ns/b", "ns/a"]
    swap = [Move("ns/x", "n", (0,), "n", (1,), 1), Move("ns/y", "n", (1,), "n", (0,), 1)]
    assert len(_order(swap)) == 2  # a cycle still yields every move once
