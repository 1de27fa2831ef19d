"""Placement policies on small clusters where the right answer is clear by hand."""

from __future__ import annotations

import numpy as np
import pytest

from placement.fragmentation import ShapeDistribution, TaskShape
from placement.policies import POLICY_NAMES, PolicyContext, extender_scores, make_policy, pick_best
from placement.policies.base import best_fit_domain_whole, first_free_whole, tightest_share_gpu
from placement.policies.gpuplace import model_prices, remainder_waste
from placement.topology import Cluster, GpuNode, NvlinkLayout, PodRequest

ONE_GPU = PodRequest("one", 8000, 16_000, 1, 1000)
SHAPES = ShapeDistribution([TaskShape(8000, 1000, 1), TaskShape(8000, 500, 1), TaskShape(64_000, 1000, 8)],
                           [6, 3, 1])


def g2(name: str, used: int = 0, cpu: int = 96_000) -> GpuNode:
    free = [0] * used + [1000] * (8 - used)
    return GpuNode(name, "G2", 96_000, 393_216, free, cpu_milli_free=cpu - 12_000 * used)


def best_node(policy_name: str, cluster: Cluster, pod: PodRequest, shapes: ShapeDistribution = SHAPES) -> int:
    policy = make_policy(policy_name, PolicyContext(shapes=shapes))
    nodes = np.flatnonzero(cluster.feasible(pod))
    return int(nodes[pick_best(policy.score(cluster, pod, nodes), np.arange(len(nodes)))])


def test_every_policy_scores_every_feasible_node_and_picks_valid_gpus() -> None:
    cluster = Cluster([g2("a"), g2("b", used=3), GpuNode.empty("t", "T4", 2, 104_000, 524_288)])
    for name in POLICY_NAMES:
        policy = make_policy(name, PolicyContext(shapes=SHAPES))
        for pod in (ONE_GPU, PodRequest("s", 4000, 1, 1, 300), PodRequest("c", 4000, 1)):
            nodes = np.flatnonzero(cluster.feasible(pod))
            scores = policy.score(cluster, pod, nodes)
            assert scores.shape == (len(nodes),) and np.all(np.isfinite(scores)), name
            gpus = policy.select_gpus(cluster, int(nodes[0]), pod)
            assert len(gpus) == pod.num_gpu, name


def test_unknown_policy_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("worst-fit")


def test_best_fit_picks_the_tightest_node() -> None:
    cluster = Cluster([g2("empty"), g2("seven-used", used=7)])
    assert best_node("best-fit", cluster, ONE_GPU) == 1


def test_least_allocated_spreads_and_most_allocated_packs() -> None:
    cluster = Cluster([g2("half", used=4), g2("empty")])
    assert best_node("least-allocated", cluster, ONE_GPU) == 1
    assert best_node("most-allocated", cluster, ONE_GPU) == 0


def test_gpuplace_keeps_an_empty_8_gpu_node_whole_for_a_1_gpu_pod() -> None:
    cluster = Cluster([g2("empty"), g2("partly-used", used=3)])
    assert best_node("gpuplace", cluster, ONE_GPU) == 1
    assert best_node("fgd", cluster, ONE_GPU) == 1


def test_fgd_puts_a_share_on_the_gpu_whose_rest_stays_usable() -> None:
    # GPU 0 has 500 free: a 500 share fills it exactly; on GPU 1 it would leave an unusable 500 behind
    # for the whole-GPU shapes.
    cluster = Cluster([GpuNode("n", "T4", 64_000, 1, [500, 1000])])
    share = PodRequest("s", 2000, 1, 1, 500)
    for name in ("fgd", "gpuplace"):
        assert make_policy(name, PolicyContext(shapes=SHAPES)).select_gpus(cluster, 0, share) == (0,)


def test_random_takes_any_gpu_that_holds_the_share() -> None:
    cluster = Cluster([GpuNode("n", "T4", 64_000, 1, [100, 800, 900])])
    policy = make_policy("random", PolicyContext(rng=np.random.default_rng(1)))
    picked = {policy.select_gpus(cluster, 0, PodRequest("s", 1, 1, 1, 700))[0] for _ in range(50)}
    assert picked == {1, 2}


def test_gpu_selection_helpers() -> None:
    cluster = Cluster([GpuNode("n", "V100", 64_000, 1, [1000, 0, 1000, 1000, 1000, 1000, 1000, 1000],
                               nvlink=NvlinkLayout("switch", 4))])
    nodes = np.array([0])
    assert np.flatnonzero(first_free_whole(cluster, nodes, 2)[0]).tolist() == [0, 2]
    # best fit across domains: quad 0 has 3 free, quad 1 has 4; a 2-GPU pod goes to quad 0
    assert np.flatnonzero(best_fit_domain_whole(cluster, nodes, 2)[0]).tolist() == [0, 2]
    assert np.flatnonzero(best_fit_domain_whole(cluster, nodes, 4)[0]).tolist() == [4, 5, 6, 7]
    shares = Cluster([GpuNode("t", "T4", 1, 1, [900, 400, 600])])
    assert tightest_share_gpu(shares, nodes, 500).tolist() == [2]


def test_gpuplace_with_nvlink_takes_gpus_inside_the_tightest_domain() -> None:
    quads = GpuNode("v", "V100", 64_000, 393_216, [0, 0, 1000, 1000, 1000, 1000, 1000, 1000],
                    nvlink=NvlinkLayout("switch", 4))
    cluster = Cluster([quads])
    policy = make_policy("gpuplace", PolicyContext(shapes=SHAPES, nvlink=True))
    assert policy.select_gpus(cluster, 0, PodRequest("tp2", 1000, 1, 2, 1000, nvlink_required=True)) == (2, 3)
    assert policy.select_gpus(cluster, 0, ONE_GPU) == (2,)


def test_model_prices_mark_the_model_that_constrained_pods_need_entirely() -> None:
    cluster = Cluster([GpuNode.empty("a", "A", 2, 64_000, 1), GpuNode.empty("b", "B", 2, 64_000, 1)])
    # 60% of the GPU demand may only run on A: A would need 2352 milli, it has 2000.
    dist = ShapeDistribution([TaskShape(1000, 1000, 1, ("A",)), TaskShape(1000, 1000, 1)], [0.6, 0.4])
    assert model_prices(cluster, dist).tolist() == pytest.approx([1.0, 0.0])
    relaxed = ShapeDistribution([TaskShape(1000, 1000, 1, ("A",)), TaskShape(1000, 1000, 1)], [0.2, 0.8])
    assert model_prices(cluster, relaxed).tolist() == pytest.approx([0.0, 0.0])


def test_gpuplace_leaves_a_scarce_model_to_the_pods_that_need_it() -> None:
    cluster = Cluster([GpuNode.empty(m.lower(), m, 2, 64_000, 64_000) for m in ("A", "B")])
    dist = ShapeDistribution([TaskShape(1000, 1000, 1, ("A",)), TaskShape(1000, 1000, 1)], [0.6, 0.4])
    free_to_roam = PodRequest("any", 1000, 1, 1, 1000)
    assert best_node("gpuplace", cluster, free_to_roam, dist) == 1


def test_extender_scores_give_10_to_the_policys_choice_alone() -> None:
    cluster = Cluster([g2("empty"), g2("partly-used", used=3), g2("other-empty")])
    policy = make_policy("gpuplace", PolicyContext(shapes=SHAPES))
    scores = extender_scores(policy, cluster, ONE_GPU, np.arange(3))
    assert scores.tolist().count(10) == 1 and int(np.argmax(scores)) == 1
    assert scores.min() >= 0 and scores.max() <= 10


def test_ties_go_to_the_lowest_rank() -> None:
    assert pick_best(np.array([1.0, 3.0, 3.0, 2.0]), np.array([0, 5, 2, 1])) == 2


def test_remainder_waste_counts_what_the_frequent_shares_cannot_fill() -> None:
    dist = ShapeDistribution([TaskShape(1000, 810, 1), TaskShape(1000, 160, 1), TaskShape(1000, 50, 1),
                              TaskShape(1000, 1000, 1)], [0.5, 0.2, 0.001, 0.299])
    waste = remainder_waste(dist)  # 50 is too rare to count on
    assert waste[1000] == 0 and waste[190] == 30 and waste[150] == 150 and waste[330] == 10
    assert waste[810] == 0 and waste[970] == 0 and waste[980] == 10
