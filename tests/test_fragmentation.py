"""The fragmentation measure against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from placement.fragmentation import (
    NodeStates,
    ShapeDistribution,
    TaskShape,
    cluster_frag,
    frag_amount,
    frag_ratio,
    node_frag,
    stranded_gpus,
)
from placement.topology import Cluster, GpuNode, NvlinkLayout, PodRequest

# Half the pods take half a GPU with 2 cores, a quarter take two whole GPUs, a quarter are CPU-only.
SHARE = TaskShape(2000, 500, 1)
PAIR = TaskShape(4000, 1000, 2)
CPU = TaskShape(1000, 0, 0)
DIST = ShapeDistribution([SHARE, PAIR, CPU], [2, 1, 1])


def node(free: list[int], cpu: int = 10_000, model: str = "T4") -> GpuNode:
    return GpuNode("n", model, 64_000, 1, free, cpu_milli_free=cpu)


def test_weights_are_normalized() -> None:
    assert DIST.weights.tolist() == [0.5, 0.25, 0.25]


def test_frag_of_a_node_computed_by_hand() -> None:
    # Free 1300 milli. SHARE fits on GPU 0 (1000 >= 500), GPU 1 (300) is too small: 300 fragmented.
    # PAIR needs two whole GPUs, there is one: all 1300. CPU-only uses no GPU: all 1300.
    # 0.5 * 300 + 0.25 * 1300 + 0.25 * 1300 = 800.
    cluster = Cluster([node([1000, 300])])
    assert node_frag(cluster, DIST)[0] == pytest.approx(800.0)
    assert frag_ratio(cluster, DIST) == pytest.approx(800 / 1300)


def test_a_node_without_the_cpu_for_a_shape_fragments_all_its_gpus_for_it() -> None:
    cluster = Cluster([node([1000, 300], cpu=1000)])  # SHARE needs 2 cores
    assert node_frag(cluster, DIST)[0] == pytest.approx(1300.0)


def test_a_model_the_shape_may_not_use_is_all_fragment_for_it() -> None:
    only_a100 = ShapeDistribution([TaskShape(1000, 1000, 1, ("A100",))], [1])
    assert node_frag(Cluster([node([1000, 1000])]), only_a100)[0] == pytest.approx(2000.0)
    assert node_frag(Cluster([node([1000, 1000], model="A100")]), only_a100)[0] == pytest.approx(0.0)


def test_empty_and_full_nodes() -> None:
    cluster = Cluster([node([1000, 1000]), node([0, 0])])
    # empty: SHARE and PAIR fit everywhere, only the CPU-only quarter counts: 0.25 * 2000
    assert node_frag(cluster, DIST).tolist() == pytest.approx([500.0, 0.0])
    assert cluster_frag(cluster, DIST) == pytest.approx(500.0)


def test_domain_aware_frag_counts_gpus_in_too_small_nvlink_domains() -> None:
    tp4 = ShapeDistribution([TaskShape(1000, 1000, 4, (), True)], [1])
    quads = GpuNode("v", "V100", 64_000, 1, [1000, 1000, 0, 0, 1000, 1000, 1000, 0],
                    nvlink=NvlinkLayout("switch", 4))
    cluster = Cluster([quads])
    assert node_frag(cluster, tp4)[0] == pytest.approx(0.0)  # 5 whole GPUs, no domains: fits
    assert node_frag(cluster, tp4, domain_aware=True)[0] == pytest.approx(5000.0)  # 2 + 3 per quad


def test_frag_of_hypothetical_states() -> None:
    states = NodeStates(np.array([[500, 0], [1000, 1000]]), np.array([10_000, 0]), np.array([1, 1]))
    sa = DIST.arrays(Cluster([node([1000, 1000])]))
    # row 0: SHARE fits (500 >= 500) and uses it all, PAIR and CPU fragment 500: 0.5 * 500 = 250
    # row 1: no CPU at all: every GPU shape is fragmented: 2000
    assert frag_amount(states, sa).tolist() == pytest.approx([250.0, 2000.0])


def test_typical_keeps_the_most_frequent_shapes_up_to_the_coverage() -> None:
    pods = [PodRequest(f"a{i}", 1000, 1, 1, 1000) for i in range(6)]
    pods += [PodRequest(f"b{i}", 2000, 1, 1, 500) for i in range(3)]
    pods += [PodRequest("c", 3000, 1, 8, 1000)]
    typical = ShapeDistribution.from_pods(pods).typical(0.9)
    assert typical.shapes == (TaskShape(1000, 1000, 1), TaskShape(2000, 500, 1))
    assert typical.weights.tolist() == pytest.approx([2 / 3, 1 / 3])
    assert len(ShapeDistribution.from_pods(pods)) == 3


def test_gpu_demand_weighting_favours_large_shapes() -> None:
    by_gpu = ShapeDistribution([TaskShape(1, 1000, 8), TaskShape(1, 500, 1)], [1, 1]).by_gpu_demand()
    assert by_gpu.weights.tolist() == pytest.approx([8000 / 8500, 500 / 8500])


def test_stranded_gpus_are_free_gpus_no_shape_can_use() -> None:
    cluster = Cluster([node([1000, 300], cpu=0), node([1000, 1000])])
    assert stranded_gpus(cluster, DIST) == pytest.approx(1.3)
