"""kube-scheduler's default spreading (NodeResourcesFit, LeastAllocated): prefer the emptiest node.

Per resource, score = (capacity - requested after placing) * 100 // capacity, in integers as the
scheduler computes it; the node score is the integer mean over CPU, memory and GPU (milli-GPUs), all
weight 1. Stock kube-scheduler counts only CPU and memory unless the GPU resource is configured; counting
GPUs too is the more favourable variant for a GPU cluster.
"""

from __future__ import annotations

import numpy as np

from placement.policies.base import PolicyContext, SimpleSelection
from placement.topology import MILLI, Cluster, FloatArray, IntArray, PodRequest


def resource_scores(cluster: Cluster, pod: PodRequest, nodes: IntArray, free: bool) -> IntArray:
    """Integer 0..100 per node: share left free (free=True) or used (free=False) after the pod."""
    caps = (cluster.cpu_total[nodes], cluster.mem_total[nodes], cluster.gpu_count[nodes] * MILLI)
    lefts = (cluster.cpu_free[nodes] - pod.cpu_milli, cluster.mem_free[nodes] - pod.memory_mib,
             cluster.gpu_free_total(nodes) - pod.total_gpu_milli)
    total = np.zeros(len(nodes), dtype=np.int64)
    for cap, left in zip(caps, lefts, strict=True):
        part = left if free else cap - left
        total += np.where(cap > 0, np.clip(part, 0, None) * 100 // np.maximum(cap, 1), 0)
    return total // len(caps)


class LeastAllocated(SimpleSelection):
    name = "least-allocated"
    nvlink_aware = False

    def __init__(self, ctx: PolicyContext) -> None:
        super().__init__(PolicyContext(rng=ctx.rng))

    def score(self, cluster: Cluster, pod: PodRequest, nodes: IntArray) -> FloatArray:
        return resource_scores(cluster, pod, nodes, free=True).astype(np.float64)
