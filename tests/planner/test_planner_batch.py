"""Batch placement on instances whose optimum is known by hand."""

from __future__ import annotations

from placement.planner.batch import BatchOptions, best_greedy, free_block_gpus, plan_batch
from placement.planner.solver import SolveOptions
from placement.topology import Cluster, GpuNode, NvlinkLayout, PodRequest

SWITCH = NvlinkLayout("switch")
OPTIONS = BatchOptions(solve=SolveOptions(time_limit_s=20))


def gpu_node(name: str, free: list[int], model: str = "H100", nvlink: NvlinkLayout = SWITCH,
             cpu: int = 64000) -> GpuNode:
    return GpuNode(name, model, cpu, 512_000, free, nvlink=nvlink)


def whole(name: str, k: int, nvlink: bool = False, models: frozenset[str] = frozenset()) -> PodRequest:
    return PodRequest(name, 1000, 1000, k, 1000, models, nvlink)


def test_places_every_pod_where_best_fit_strands_two_gpus() -> None:
    # Free: a 6, b 4. Pods 3,3,2,2: best fit puts a 3 on b first and cannot place the last 2.
    cluster = Cluster([gpu_node("a", [0, 0] + [1000] * 6), gpu_node("b", [0] * 4 + [1000] * 4)])
    pods = [whole(f"p{i}", k) for i, k in enumerate([3, 3, 2, 2])]
    r = plan_batch(cluster, pods, BatchOptions(solve=SolveOptions(time_limit_s=20), hint_policies=()))
    assert r.greedy_placed_milli == 8000  # best fit, in order or largest first
    assert (r.placed_milli, r.unplaced, r.status, r.proven_optimal) == (10_000, (), "optimal", True)
    on = {p.pod: p.node for p in r.placements}
    assert on["p0"] == on["p1"] == "a" and on["p2"] == on["p3"] == "b"


def test_keeps_a_whole_node_free_when_the_demand_allows() -> None:
    # Two 1-GPU pods fit on either node; placing them on the part-used node keeps 8 NVSwitch GPUs whole.
    cluster = Cluster([gpu_node("empty", [1000] * 8), gpu_node("used", [0] * 4 + [1000] * 4)])
    r = plan_batch(cluster, [whole("x", 1), whole("y", 1)], OPTIONS)
    assert {p.node for p in r.placements} == {"used"}
    assert r.free_block_gpus == free_block_gpus(cluster) == 16  # the empty node 8 + its one domain 8


def test_nvlink_pods_need_a_whole_domain() -> None:
    # Two quads per node; two free GPUs in each quad: 4 free GPUs, no free quad.
    quads = NvlinkLayout("switch", 4)
    cluster = Cluster([gpu_node("v", [0, 0, 1000, 1000, 0, 0, 1000, 1000], "V100", quads)])
    r = plan_batch(cluster, [whole("tp4", 4, nvlink=True), whole("dp4", 4)], OPTIONS)
    assert r.unplaced == ("tp4",) and [p.pod for p in r.placements] == ["dp4"]


def test_shared_gpu_pods_pack_onto_one_gpu_and_models_are_respected() -> None:
    cluster = Cluster([gpu_node("t4", [1000, 1000], "T4", NvlinkLayout()), gpu_node("h", [1000] * 8)])
    halves = [PodRequest(f"s{i}", 100, 100, 1, 500, frozenset({"T4"})) for i in range(4)]
    r = plan_batch(cluster, [*halves, whole("any", 1, models=frozenset({"H100"}))], OPTIONS)
    assert r.placed_milli == 3000 and not r.unplaced
    t4 = [p for p in r.placements if p.pod.startswith("s")]
    assert {p.node for p in t4} == {"t4"}
    assert sorted(p.gpus[0] for p in t4) == [0, 0, 1, 1]


def test_cpu_limits_placement() -> None:
    cluster = Cluster([gpu_node("a", [1000] * 8, cpu=2500)])
    pods = [whole(f"p{i}", 1) for i in range(3)]
    r = plan_batch(cluster, pods, OPTIONS)
    assert r.placed_milli == 2000 and len(r.unplaced) == 1


def test_never_places_less_than_the_greedy_pass_and_reports_pruning() -> None:
    nodes = [gpu_node(f"n{i}", [0] * (i % 8) + [1000] * (8 - i % 8)) for i in range(30)]
    cluster = Cluster(nodes)
    pods = [whole(f"p{i}", 1 + i % 4) for i in range(40)]
    greedy = best_greedy(cluster, pods)
    r = plan_batch(cluster, pods, BatchOptions(solve=SolveOptions(time_limit_s=5), max_nodes=3, copies=1))
    placed_by_greedy = sum(p.total_gpu_milli for p, a in zip(pods, greedy, strict=True) if a is not None)
    assert r.placed_milli >= placed_by_greedy and r.scope.startswith("pruned")
