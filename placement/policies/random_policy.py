"""Random: any feasible node with equal chance; a shared-GPU pod goes to a random GPU that holds it."""

from __future__ import annotations

import numpy as np

from placement.policies.base import PolicyContext, SimpleSelection
from placement.topology import Cluster, FloatArray, IntArray, PodRequest


class RandomPolicy(SimpleSelection):
    name = "random"
    nvlink_aware = False

    def __init__(self, ctx: PolicyContext) -> None:
        super().__init__(PolicyContext(rng=ctx.rng))
        self.rng = ctx.rng

    def score(self, cluster: Cluster, pod: PodRequest, nodes: IntArray) -> FloatArray:
        return self.rng.random(len(nodes))

    def select_gpus(self, cluster: Cluster, node: int, pod: PodRequest) -> tuple[int, ...]:
        if not pod.is_shared:
            return super().select_gpus(cluster, node, pod)
        fits = np.flatnonzero(cluster.gpu_free[node, : cluster.gpu_count[node]] >= pod.gpu_milli)
        return (int(self.rng.choice(fits)),) if len(fits) else ()
