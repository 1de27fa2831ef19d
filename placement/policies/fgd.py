"""Fragmentation Gradient Descent (Weng et al., ATC'23): place where the node's fragmentation grows least.

For each candidate node, the fragmentation F (see `placement.fragmentation`) is measured before and after
the pod would be placed; the score is sigmoid((F_before - F_after) / 1000) * 100. A shared-GPU pod tries
every GPU that holds it and keeps the best (its node score is the best GPU's). Whole-GPU pods take the
first free GPUs, as the paper's simulator does.

`quantized` (the default, the paper's baseline) truncates the score to an integer as its scheduler plugin
does; the resulting ties are broken at random by the caller, like kube-scheduler.
"""

from __future__ import annotations

import numpy as np

from placement.fragmentation import (
    DEFAULT_COVERAGE,
    NodeStates,
    ShapeArrays,
    ShapeDistribution,
    TaskShape,
    frag_amount,
)
from placement.policies.base import (
    NodeCache,
    PolicyContext,
    best_per_node,
    first_free_whole,
    share_candidates,
    states_after,
)
from placement.topology import Cluster, FloatArray, IntArray, PodRequest


def sigmoid(x: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-x))


class Fgd:
    name = "fgd"
    nvlink_aware = False

    def __init__(self, ctx: PolicyContext, quantized: bool = True) -> None:
        if ctx.shapes is None:
            raise ValueError("FGD needs the workload's shape distribution")
        self.shapes: ShapeDistribution = ctx.shapes.typical(DEFAULT_COVERAGE)
        self.quantized = quantized
        self.cache = NodeCache()

    def _score(self, delta: FloatArray) -> FloatArray:
        s = sigmoid(delta / 1000.0) * 100.0
        return np.floor(s) if self.quantized else s

    def _compute(self, cluster: Cluster, pod: PodRequest, nodes: IntArray) -> tuple[FloatArray, IntArray]:
        sa: ShapeArrays = self.shapes.arrays(cluster)
        before = frag_amount(NodeStates.of(cluster, nodes), sa)
        if pod.is_shared:
            cand = share_candidates(cluster, nodes, pod)
            rows = self._score(before[cand.pos] - frag_amount(cand.states, sa))
            return best_per_node(len(nodes), cand, rows)  # first GPU among equals, as the paper's plugin
        chosen = first_free_whole(cluster, nodes, pod.num_gpu)
        after = frag_amount(states_after(cluster, nodes, pod, chosen), sa)
        return self._score(before - after), np.full(len(nodes), -1, dtype=np.int64)

    def score(self, cluster: Cluster, pod: PodRequest, nodes: IntArray) -> FloatArray:
        values, _ = self.cache.get(cluster, TaskShape.of(pod), nodes,
                                   lambda stale: self._compute(cluster, pod, stale))
        return values

    def select_gpus(self, cluster: Cluster, node: int, pod: PodRequest) -> tuple[int, ...]:
        if not pod.num_gpu:
            return ()
        if pod.is_shared:
            _, gpu = self.cache.get(cluster, TaskShape.of(pod), np.array([node]),
                                    lambda stale: self._compute(cluster, pod, stale))
            return (int(gpu[0]),)
        mask = first_free_whole(cluster, np.array([node]), pod.num_gpu)[0]
        return tuple(int(i) for i in np.flatnonzero(mask))
