"""What every placement policy offers, and the GPU-selection helpers they share.

A policy scores candidate nodes for one pod (higher is better) and picks the GPUs inside the chosen node.
The extender's `/prioritize` calls `extender_scores(policy, cluster, pod, nodes)`; the simulator calls
`policy.score` and takes the best node (`pick_best`); both then call
`policy.select_gpus`. Scores are only comparable within one call.

Selection helpers work on many nodes at once and return, per node, a mask of the GPU slots the pod would
get, so that policies can also measure the state a node would be left in.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from placement.fragmentation import NodeStates, ShapeDistribution
from placement.topology import MILLI, BoolArray, Cluster, FloatArray, IntArray, PodRequest

EXTENDER_MAX_SCORE = 10


@dataclass
class PolicyContext:
    """What a policy may know besides the cluster: the workload's shape distribution (FGD and gpuplace
    use it), a random generator (Random and tie-breaking), and whether NVLink domains matter."""

    shapes: ShapeDistribution | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    nvlink: bool = False


class Policy(Protocol):
    name: str
    nvlink_aware: bool  # enforces NVLink domains for pods that need one (else it ignores them)

    def score(self, cluster: Cluster, pod: PodRequest, nodes: IntArray) -> FloatArray:
        """One score per node in `nodes` (all feasible for the pod); higher is better."""
        ...

    def select_gpus(self, cluster: Cluster, node: int, pod: PodRequest) -> tuple[int, ...]:
        """The GPU indices of `node` the pod gets (empty for a CPU-only pod)."""
        ...


def extender_scores(policy: Policy, cluster: Cluster, pod: PodRequest, nodes: IntArray) -> IntArray:
    """Scores 0..10 for kube-scheduler's extender protocol (`/prioritize`), one per node in `nodes`.

    The node the policy would pick itself (`pick_best`, ties to the lowest position) gets 10 alone; the
    others are stretched over 0..9 by score, so the scheduler's own coarse scale cannot turn the
    policy's choice into a tie that it breaks at random.
    """
    raw = policy.score(cluster, pod, nodes)
    if not len(raw):
        return np.zeros(0, dtype=np.int64)
    lo, hi = float(raw.min()), float(raw.max())
    span = hi - lo if hi > lo else 1.0
    out = np.floor((raw - lo) / span * (EXTENDER_MAX_SCORE - 1)).astype(np.int64)
    out[pick_best(raw, np.arange(len(raw)))] = EXTENDER_MAX_SCORE
    return out


def pick_best(scores: FloatArray, tie_rank: IntArray) -> int:
    """Position of the highest score; among equal ones the lowest `tie_rank`.

    The paper's simulator (a kube-scheduler fork) takes the lexically smallest node name among equal
    scores and prefixes node names with a random permutation per seed, so ties go to a fixed, random
    order of nodes. Stock kube-scheduler picks uniformly among them instead, which makes tie-heavy
    policies (BestFit, quantized FGD) spread more and do worse.
    """
    best = np.flatnonzero(scores == scores.max())
    return int(best[0]) if len(best) == 1 else int(best[np.argmin(tie_rank[best])])


# ---- GPU selection, vectorized over nodes --------------------------------------------------------
def first_free_whole(cluster: Cluster, nodes: IntArray, k: int) -> BoolArray:
    """[n, width] the first k entirely free GPUs of each node, in index order (the device plugin's way)."""
    whole = cluster.gpu_free[nodes] == MILLI
    return whole & (np.cumsum(whole, axis=1) <= k)


def best_fit_domain_whole(cluster: Cluster, nodes: IntArray, k: int) -> BoolArray:
    """[n, width] k whole GPUs inside the NVLink domain with the fewest free GPUs that still holds k,
    which keeps larger free blocks for later multi-GPU pods. Nodes with no such domain get nothing."""
    whole = cluster.gpu_free[nodes] == MILLI
    dom = cluster.domain_of[nodes]
    blocks = cluster.free_blocks(nodes)
    key = np.where(blocks >= k, blocks, np.iinfo(np.int64).max)
    target = key.argmin(axis=1)
    ok = key[np.arange(len(nodes)), target] < np.iinfo(np.int64).max
    inside = whole & (dom == target[:, None]) & ok[:, None]
    return inside & (np.cumsum(inside, axis=1) <= k)


def tightest_share_gpu(cluster: Cluster, nodes: IntArray, milli: int) -> IntArray:
    """Per node, the GPU with the least free share that still holds `milli` (-1 if none)."""
    free = cluster.gpu_free[nodes]
    key = np.where(free >= milli, free, MILLI + 1)
    gpu = key.argmin(axis=1)
    return np.where(key[np.arange(len(nodes)), gpu] <= MILLI, gpu, -1)


def mask_to_indices(mask: BoolArray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.flatnonzero(mask))


def states_after(cluster: Cluster, nodes: IntArray, pod: PodRequest, chosen: BoolArray) -> NodeStates:
    """The node states left after placing the pod on the chosen GPU slots of each node."""
    return NodeStates(
        gpu_free=cluster.gpu_free[nodes] - np.where(chosen, pod.gpu_request_milli, 0),
        cpu_free=cluster.cpu_free[nodes] - pod.cpu_milli,
        model_bit=cluster.model_bit[nodes],
        domain_of=cluster.domain_of[nodes],
    )


@dataclass(frozen=True)
class ShareCandidates:
    """The distinct ways to place a shared-GPU pod on some nodes: one row per (node, GPU)."""

    states: NodeStates  # the node state each row would leave
    pos: IntArray  # position of the row's node in the `nodes` given, ascending
    gpu: IntArray  # GPU index of the row


def share_candidates(cluster: Cluster, nodes: IntArray, pod: PodRequest, by_domain: bool = False
                     ) -> ShareCandidates:
    """Each GPU that holds the share, except those with the same free share as a lower-numbered GPU of
    the same node (and, with `by_domain`, the same NVLink domain), which would leave the same state."""
    free = cluster.gpu_free[nodes]
    fits = free >= pod.gpu_milli
    key = free * (cluster.width + 1) + (cluster.domain_of[nodes] + 1 if by_domain else 0)
    repeat = np.zeros_like(fits)
    for j in range(1, cluster.width):
        repeat[:, j] = (key[:, :j] == key[:, j : j + 1]).any(axis=1)
    pos, gpu = np.nonzero(fits & ~repeat)
    after = free[pos]
    after[np.arange(len(pos)), gpu] -= pod.gpu_milli
    rows = nodes[pos]
    states = NodeStates(after, cluster.cpu_free[rows] - pod.cpu_milli, cluster.model_bit[rows],
                        cluster.domain_of[rows])
    return ShareCandidates(states, pos, gpu)


def best_per_node(n: int, cand: ShareCandidates, row_scores: FloatArray) -> tuple[FloatArray, IntArray]:
    """Per node, the best row score and its GPU (the lowest-numbered among equals; -inf and -1 for a node
    without rows)."""
    best = np.full(n, -np.inf)
    np.maximum.at(best, cand.pos, row_scores)
    winners = np.flatnonzero(row_scores == best[cand.pos])[::-1]  # reversed: the lowest GPU is set last
    gpu = np.full(n, -1, dtype=np.int64)
    gpu[cand.pos[winners]] = cand.gpu[winners]
    return best, gpu


class NodeCache:
    """Per-node results of an expensive score, kept until the node changes (`Cluster.version`).

    One placement changes one node, so the next pod of the same shape only recomputes what changed.
    """

    def __init__(self) -> None:
        self._uid = ""
        self._entries: dict[Hashable, tuple[IntArray, FloatArray, IntArray]] = {}

    def get(self, cluster: Cluster, key: Hashable, nodes: IntArray,
            compute: Callable[[IntArray], tuple[FloatArray, IntArray]]) -> tuple[FloatArray, IntArray]:
        """Scores and chosen GPU (or -1) per node in `nodes`, computing only stale ones."""
        if cluster.uid != self._uid:
            self._uid, self._entries = cluster.uid, {}
        entry = self._entries.get(key)
        if entry is None:
            n = len(cluster)
            entry = (np.full(n, -1, dtype=np.int64), np.zeros(n), np.full(n, -1, dtype=np.int64))
            self._entries[key] = entry
        seen, values, gpus = entry
        stale = nodes[seen[nodes] != cluster.version[nodes]]
        if len(stale):
            values[stale], gpus[stale] = compute(stale)
            seen[stale] = cluster.version[stale]
        return values[nodes], gpus[nodes]


class SimpleSelection:
    """GPU selection of the paper's simulator: whole GPUs first free by index, a share on the tightest
    GPU. NVLink-aware contexts take whole GPUs from the best-fitting domain instead."""

    def __init__(self, ctx: PolicyContext) -> None:
        self.nvlink = ctx.nvlink

    def select_gpus(self, cluster: Cluster, node: int, pod: PodRequest) -> tuple[int, ...]:
        nodes = np.array([node])
        if not pod.num_gpu:
            return ()
        if pod.is_shared:
            gpu = int(tightest_share_gpu(cluster, nodes, pod.gpu_milli)[0])
            return (gpu,) if gpu >= 0 else ()
        pick = best_fit_domain_whole if self.nvlink and pod.needs_domain else first_free_whole
        return mask_to_indices(pick(cluster, nodes, pod.num_gpu)[0])
