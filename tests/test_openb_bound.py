"""bench/openb_bound.py: the packing upper bound on hand-checked instances, and the lower bound on the
unallocated GPU % never above what a real replay gets."""

from __future__ import annotations

import numpy as np
import pytest

from placement.simulate import ReplayConfig, replay, replay_workload
from placement.topology import Cluster, GpuNode, PodRequest
from tests.bench_scripts import load_bench

ob = load_bench("openb_bound")


def one_gpu_nodes(k: int, cpu: int = 8000) -> list[GpuNode]:
    return [GpuNode.empty(f"n{i}", "T4", 1, cpu, 8000) for i in range(k)]


def shares(*milli: int, cpu: int = 1000) -> list[PodRequest]:
    return [PodRequest(f"p{i}", cpu, 1000, 1, m) for i, m in enumerate(milli)]


def bound(nodes: list[GpuNode], pods: list[PodRequest]) -> float:
    return float(ob.packable_upper_bound(ob.node_types(nodes), ob.pod_types(pods)).upper)


def test_three_600_milli_pods_on_two_gpus_leave_one_out() -> None:
    # pooled GPU capacity (2000) would take all 1800; no GPU holds two of them
    assert bound(one_gpu_nodes(2), shares(600, 600, 600)) == pytest.approx(1200)


def test_an_810_pod_only_shares_with_small_ones() -> None:
    # 810 + 470 never fit one GPU; 810 + 190 do: best is {810, 190} and {470, 470}
    assert bound(one_gpu_nodes(2), shares(810, 470, 470, 470, 190)) == pytest.approx(1940)


def test_cpu_is_pooled_per_node_type() -> None:
    # each node has CPU for one pod only (two of the four fit), but the relaxation pools the 8000 of CPU
    assert bound(one_gpu_nodes(2, cpu=4000), shares(500, 500, 500, 500, cpu=3000)) == 1333  # floor(4000 / 3)


def test_models_and_whole_gpus() -> None:
    nodes = [*one_gpu_nodes(1), GpuNode.empty("v", "V100", 2, 8000, 8000)]
    pods = [PodRequest("a", 1000, 1000, 2, 1000, frozenset({"T4"})),  # needs 2 T4s: none has them
            PodRequest("b", 1000, 1000, 2, 1000), PodRequest("c", 1000, 1000, 1, 1000, frozenset({"T4"}))]
    assert bound(nodes, pods) == pytest.approx(3000)


def test_maximal_share_configurations() -> None:
    configs = ob.share_configurations([600, 300, 100])
    assert {tuple(sorted(c.items())) for c in configs} == {
        ((100, 1), (300, 3)), ((100, 4), (600, 1)), ((100, 1), (300, 1), (600, 1)), ((100, 4), (300, 2)),
        ((100, 7), (300, 1)), ((100, 10),)}


def test_bound_uses_the_replay_workload_and_stays_above_every_policy() -> None:
    nodes = [GpuNode.empty(f"n{i}", "T4", 2, 16_000, 64_000) for i in range(30)]
    rng = np.random.default_rng(7)
    pods = [PodRequest(f"p{i}", int(rng.integers(1, 9)) * 1000, 1000, 1,
                       int(rng.choice([1000, 810, 470, 320, 650, 160, 50, 20]))) for i in range(80)]
    capacity = Cluster(nodes).gpu_capacity_milli
    for seed in range(4):
        work = replay_workload(pods, capacity, ReplayConfig(seed=seed))
        upper, _ = ob.allocation_bounds(nodes, pods, seed)
        assert upper.arrived_milli.tolist() == np.cumsum([p.total_gpu_milli for p in work]).tolist()
        lb = upper.unallocated_at(100)
        assert lb > 0
        for policy in ("best-fit", "fgd", "gpuplace", "random"):
            result = replay(nodes, pods, policy, ReplayConfig(seed=seed))
            assert result.arrived_milli.tolist() == upper.arrived_milli.tolist()
            assert np.all(result.allocated_milli <= upper.allocated_milli + 1e-6)
            assert result.unallocated_at(100) >= lb - 1e-9
