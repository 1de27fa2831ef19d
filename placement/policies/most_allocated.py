"""Packing (NodeResourcesFit, MostAllocated): prefer the fullest node, over CPU, memory and GPU alike."""

from __future__ import annotations

import numpy as np

from placement.policies.base import PolicyContext, SimpleSelection
from placement.policies.least_allocated import resource_scores
from placement.topology import Cluster, FloatArray, IntArray, PodRequest


class MostAllocated(SimpleSelection):
    name = "most-allocated"
    nvlink_aware = False

    def __init__(self, ctx: PolicyContext) -> None:
        super().__init__(PolicyContext(rng=ctx.rng))

    def score(self, cluster: Cluster, pod: PodRequest, nodes: IntArray) -> FloatArray:
        return resource_scores(cluster, pod, nodes, free=False).astype(np.float64)
