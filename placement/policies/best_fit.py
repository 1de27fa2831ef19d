"""BestFit as the FGD paper's simulator scores it: the node left with the least CPU and GPU.

Left-over = 0.5 * (CPU left after / 128 cores) + 0.5 * (milli-GPUs left after / 8 GPUs); the score is
(1 - left-over) * 100 truncated to an integer, then stretched to 0..100 over the candidates with integer
arithmetic. The truncations matter: they make ties, which kube-scheduler breaks at random, and the
paper's figure (7.14% unallocated on `default`) comes with them.
"""

from __future__ import annotations

import numpy as np

from placement.policies.base import PolicyContext, SimpleSelection
from placement.topology import Cluster, FloatArray, IntArray, PodRequest

MAX_SPEC_CPU_MILLI = 128_000
MAX_SPEC_GPU_MILLI = 8_000


def stretch_int(scores: IntArray) -> IntArray:
    """The paper's NormalizeScore: integer min-max to 0..100 (all equal: all 0)."""
    lo, hi = scores.min(), scores.max()
    if hi == lo:
        return np.zeros_like(scores)
    return (scores - lo) * 100 // (hi - lo)


class BestFit(SimpleSelection):
    name = "best-fit"
    nvlink_aware = False

    def __init__(self, ctx: PolicyContext) -> None:
        super().__init__(PolicyContext(rng=ctx.rng))

    def score(self, cluster: Cluster, pod: PodRequest, nodes: IntArray) -> FloatArray:
        cpu_left = cluster.cpu_free[nodes] - pod.cpu_milli
        gpu_left = cluster.gpu_free_total(nodes) - pod.total_gpu_milli
        left = 0.5 * cpu_left / MAX_SPEC_CPU_MILLI + 0.5 * gpu_left / MAX_SPEC_GPU_MILLI
        raw = np.trunc((1.0 - left) * 100).astype(np.int64)
        return stretch_int(raw).astype(np.float64)
