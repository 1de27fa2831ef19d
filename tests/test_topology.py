"""The node model: NVLink domains, free blocks, fit and placement, on hand-built nodes."""

from __future__ import annotations

import numpy as np
import pytest

from placement.topology import Cluster, GpuNode, NvlinkLayout, PodRequest, TopologyError


def v100(name: str = "v", free: list[int] | None = None) -> GpuNode:
    return GpuNode(name, "V100", 64_000, 256_000, free or [1000] * 8, nvlink=NvlinkLayout("switch", 4))


def test_domain_size_follows_layout_kind_and_gpu_count() -> None:
    assert NvlinkLayout("switch").size_for(8) == 8
    assert NvlinkLayout("switch", 4).size_for(8) == 4
    assert NvlinkLayout("pairs").size_for(4) == 2
    assert NvlinkLayout("none").size_for(8) == 1
    assert NvlinkLayout("switch").size_for(1) == 1


def test_unknown_nvlink_kind_is_refused() -> None:
    with pytest.raises(TopologyError):
        NvlinkLayout("mesh")  # type: ignore[arg-type]


def test_free_blocks_count_whole_gpus_per_domain() -> None:
    node = v100(free=[0, 500, 1000, 1000, 1000, 1000, 1000, 1000])
    assert node.domains() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert node.free_blocks() == [2, 4]
    assert node.largest_free_block() == 4
    assert node.free_whole_gpus() == [2, 3, 4, 5, 6, 7]


def test_cluster_round_trips_single_nodes() -> None:
    node = v100(free=[1000, 200, 1000, 0, 1000, 1000, 1000, 1000])
    node.cpu_milli_free = 1000
    cluster = Cluster([node, GpuNode.empty("t", "T4", 2, 32_000, 64_000)])
    assert cluster.node(0) == node
    assert cluster.node(1).gpu_free_milli == [1000, 1000]
    assert cluster.gpu_capacity_milli == 10_000
    assert list(cluster.largest_free_block()) == [4, 1]  # T4 has no NVLink: blocks of one


def test_whole_gpu_request_needs_entirely_free_gpus() -> None:
    cluster = Cluster([GpuNode("n", "T4", 32_000, 64_000, [999, 1000])])
    assert cluster.feasible(PodRequest("one", 1000, 1000, 1, 1000))[0]
    assert not cluster.feasible(PodRequest("two", 1000, 1000, 2, 1000))[0]
    assert cluster.feasible(PodRequest("share", 1000, 1000, 1, 999))[0]


def test_share_must_fit_on_one_gpu_not_across_gpus() -> None:
    cluster = Cluster([GpuNode("n", "T4", 32_000, 64_000, [500, 500])])
    assert not cluster.feasible(PodRequest("p", 1000, 1000, 1, 600))[0]


def test_fit_checks_cpu_memory_and_gpu_model() -> None:
    cluster = Cluster([GpuNode.empty(m, m, 1, 8000, 16_000) for m in ("A100", "T4")])
    assert list(cluster.feasible(PodRequest("cpu", 9000, 1, 1, 1000))) == [False, False]
    assert list(cluster.feasible(PodRequest("mem", 1, 17_000, 1, 1000))) == [False, False]
    pinned = PodRequest("pinned", 1, 1, 1, 1000, frozenset({"T4"}))
    assert list(cluster.feasible(pinned)) == [False, True]
    cpu_only = PodRequest("cpu-only", 8000, 16_000, gpu_models=frozenset({"T4"}))
    assert list(cluster.feasible(cpu_only)) == [True, True]  # a CPU-only pod has no GPU model to match


def test_nvlink_pod_needs_its_gpus_free_inside_one_domain() -> None:
    split = v100("split", free=[0, 0, 1000, 1000, 0, 0, 1000, 1000])  # 4 free, 2 per quad
    whole = v100("whole", free=[0, 0, 0, 0, 1000, 1000, 1000, 1000])
    cluster = Cluster([split, whole])
    pod = PodRequest("tp4", 1000, 1000, 4, 1000, nvlink_required=True)
    assert list(cluster.feasible(pod)) == [False, True]
    plain = PodRequest("dp4", 1000, 1000, 4, 1000)
    assert list(cluster.feasible(plain)) == [True, True]


def test_place_takes_resources_and_bumps_the_version() -> None:
    cluster = Cluster([GpuNode.empty("n", "T4", 2, 32_000, 64_000)])
    cluster.place(0, PodRequest("p", 4000, 8000, 1, 300), [1])
    assert list(cluster.gpu_free[0]) == [1000, 700]
    assert (cluster.cpu_free[0], cluster.mem_free[0], cluster.version[0]) == (28_000, 56_000, 1)
    assert cluster.gpu_used_milli() == 300


@pytest.mark.parametrize("gpus", [[0, 0], [2], []])
def test_place_refuses_bad_gpu_lists(gpus: list[int]) -> None:
    cluster = Cluster([GpuNode.empty("n", "T4", 2, 32_000, 64_000)])
    with pytest.raises(TopologyError):
        cluster.place(0, PodRequest("p", 1, 1, 2 if len(gpus) == 2 else 1, 1000), gpus)


def test_place_refuses_overcommitted_cpu() -> None:
    cluster = Cluster([GpuNode.empty("n", "T4", 2, 1000, 64_000)])
    with pytest.raises(TopologyError):
        cluster.place(0, PodRequest("p", 2000, 1, 1, 1000), [0])


def test_pod_share_above_one_gpu_or_spread_share_is_refused() -> None:
    with pytest.raises(TopologyError):
        PodRequest("p", 1, 1, 1, 1001)
    with pytest.raises(TopologyError):
        PodRequest("p", 1, 1, 2, 500)


def test_free_blocks_for_selected_rows_only() -> None:
    cluster = Cluster([v100("a"), v100("b", free=[0] * 8)])
    assert cluster.free_blocks(np.array([1])).tolist() == [[0] * 8]
    assert cluster.whole_free().tolist() == [8, 0]
