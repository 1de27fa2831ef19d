"""gpuplace's own placement policy: FGD's fragmentation gradient plus what FGD does not see.

For a pod and each candidate node it computes one gain, in milli-GPUs, of placing the pod there:

1. Fragmentation removed (FGD, Weng et al. ATC'23): the drop in the node's expected fragmented GPU
   capacity over the workload's task shapes (`placement.fragmentation`).
2. CPU:GPU imbalance removed: the drop in |CPU left / r - GPU left|, where r is the CPU the workload's
   GPU pods ask per milli-GPU. A node that keeps CPU and GPU in that ratio stays usable to the end; one
   that runs out of CPU strands its GPUs (and the reverse), which FGD only notices once a task shape no
   longer fits. Counted in milli-GPUs, like the fragmentation.
3. GPU-model scarcity: minus PRICE_WEIGHT x price(model) x the pod's milli-GPUs. Prices are the duals
   of a small transportation LP (ortools GLOP) that sends the expected remaining demand of each
   allowed-model set (from the shape distribution, scaled to the free capacity) to the free GPUs of the
   models it allows.
   A model that model-constrained pods will need entirely costs up to 1 per milli-GPU, so pods that may
   run elsewhere leave it to them; a model with room to spare costs 0. Re-solved every PRICE_EVERY
   placements.
4. GPU remainder waste removed (shared-GPU pods): the drop in waste(free share of the chosen GPU), where
   waste(r) is what of a remainder r the workload's frequent shares (each at least FILLER_MIN_SHARE of its
   GPU pods) cannot fill, at best (a knapsack over those shares; 0 for a whole GPU). FGD counts a
   remainder as fragment only for the shapes too large for it; this also counts what is left over once
   the shapes that fit are packed into it, so shares go where the common shares can fill the rest
   (gpushare60, 6 seeds: 8.22 against 8.34 without it; default, gpuspec33 unchanged within noise).

The gain goes through FGD's sigmoid and is cut to whole points, so that nodes within about 40 milli-GPUs
of each other count as equal; among equals a fixed order of nodes (a hash of the node name) decides.
That order is what keeps placement compact: equal candidates keep going to the same nodes, which fill
up, while the rest stay whole. (The same mechanism is why the paper's FGD, whose integer scores tie
often, does better than its exact scores would.)

With NVLink (`PolicyContext.nvlink`), a whole multi-GPU pod marked `nvlink_required` only goes to nodes
with enough whole GPUs inside one domain (`Cluster.feasible`), whole GPUs are taken from the domain that
fits most tightly, and the fragmentation counts free GPUs in domains too small for a multi-GPU shape as
fragments.

Online: it uses the cluster's state, the pod, and the workload's shape distribution (as FGD does),
nothing about future pods.
"""

from __future__ import annotations

import zlib

import numpy as np
from ortools.linear_solver import pywraplp

from placement.fragmentation import DEFAULT_COVERAGE, NodeStates, ShapeDistribution, TaskShape, frag_amount
from placement.policies.base import (
    NodeCache,
    PolicyContext,
    best_fit_domain_whole,
    best_per_node,
    first_free_whole,
    share_candidates,
    states_after,
)
from placement.topology import MILLI, BoolArray, Cluster, FloatArray, IntArray, PodRequest

PRICE_EVERY = 50  # placements between two solves of the model prices
PRICE_SLACK = 0.98  # expected demand scaled a little under the free capacity: only real scarcity is priced
# A pod that takes a scarce GPU it did not need displaces a constrained pod, which then fails, and leaves
# the GPU it could have used idle: twice its demand.
PRICE_WEIGHT = 2.0
STEP = 1.0  # sigmoid points (0..100) within which candidates count as equal
ORDER_WEIGHT = 1e-3  # below one STEP: the node order only breaks ties
WASTE_WEIGHT = 1.0  # milli-GPUs of gain per milli-GPU of remainder waste removed
FILLER_MIN_SHARE = 0.01  # share values rarer than this (of GPU pods) are not counted on to fill remainders


def model_prices(cluster: Cluster, dist: ShapeDistribution, slack: float = PRICE_SLACK) -> FloatArray:
    """Scarcity price per milli-GPU (0..1) of each of the cluster's GPU models."""
    n_models = len(cluster.models)
    free = np.bincount(cluster.model_id, cluster.gpu_free.sum(axis=1), minlength=n_models)
    demand: dict[int, float] = {}
    all_models = (1 << n_models) - 1
    for shape, w in zip(dist.shapes, dist.weights, strict=True):
        if shape.num_gpu:
            mask = cluster.model_mask(frozenset(shape.gpu_models)) & all_models
            demand[mask] = demand.get(mask, 0.0) + w * shape.gpu_milli * shape.num_gpu
    total_demand = sum(demand.values())
    if not total_demand or not free.sum():
        return np.zeros(n_models)
    solver = pywraplp.Solver.CreateSolver("GLOP")
    flow = {(mask, m): solver.NumVar(0.0, solver.infinity(), f"f{mask}_{m}")
            for mask in demand for m in range(n_models) if mask >> m & 1}
    caps = [solver.Add(solver.Sum([v for (_, mm), v in flow.items() if mm == m]) <= float(free[m]))
            for m in range(n_models)]
    scale = float(free.sum()) * slack / total_demand
    for mask, d in demand.items():
        solver.Add(solver.Sum([v for (a, _), v in flow.items() if a == mask]) <= d * scale)
    solver.Maximize(solver.Sum(list(flow.values())))
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        return np.zeros(n_models)
    return np.clip([c.dual_value() for c in caps], 0.0, 1.0)


def remainder_waste(dist: ShapeDistribution, min_share: float = FILLER_MIN_SHARE) -> FloatArray:
    """waste[r] for r in 0..MILLI: the part of a GPU remainder of r milli that the distribution's frequent
    shares (below MILLI, at least `min_share` of its GPU pods) cannot fill, at best; 0 for a whole GPU."""
    gpu_weight = sum(w for s, w in zip(dist.shapes, dist.weights, strict=True) if s.num_gpu)
    by_share: dict[int, float] = {}
    for shape, w in zip(dist.shapes, dist.weights, strict=True):
        if shape.num_gpu == 1 and shape.gpu_milli < MILLI:
            by_share[shape.gpu_milli] = by_share.get(shape.gpu_milli, 0.0) + w
    fillers = [v for v, w in by_share.items() if gpu_weight and w / gpu_weight >= min_share]
    fill = np.zeros(MILLI + 1, dtype=np.int64)
    for r in range(1, MILLI + 1):
        fill[r] = max([v + fill[r - v] for v in fillers if v <= r], default=0)
    waste = np.arange(MILLI + 1, dtype=np.float64) - fill
    waste[MILLI] = 0.0
    return waste


def node_order(cluster: Cluster) -> FloatArray:
    """A fixed preference in [0, 1) per node from its name, the same in every process and run."""
    h = np.array([zlib.crc32(n.encode()) for n in cluster.names], dtype=np.float64)
    return h / 2.0**32


def cpu_per_gpu_milli(dist: ShapeDistribution) -> float:
    """CPU millicores the distribution's GPU pods ask per milli-GPU (1 if it has no GPU pods)."""
    gpu = [(s, w) for s, w in zip(dist.shapes, dist.weights, strict=True) if s.num_gpu]
    gpu_milli = sum(w * s.gpu_milli * s.num_gpu for s, w in gpu)
    return sum(w * s.cpu_milli for s, w in gpu) / gpu_milli if gpu_milli else 1.0


class Gpuplace:
    name = "gpuplace"
    nvlink_aware = True

    def __init__(self, ctx: PolicyContext) -> None:
        if ctx.shapes is None:
            raise ValueError("gpuplace needs the workload's shape distribution")
        self.workload = ctx.shapes
        self.shapes = ctx.shapes.typical(DEFAULT_COVERAGE)
        self.ratio = cpu_per_gpu_milli(ctx.shapes)
        self.waste = remainder_waste(ctx.shapes)
        self.nvlink = ctx.nvlink
        self.cache = NodeCache()
        self._prices: tuple[str, int, FloatArray] | None = None  # cluster uid, placements seen, prices
        self._order: tuple[str, FloatArray] | None = None

    # ---- the gain of each placement, cached per node state -----------------------------------------
    def _imbalance(self, states: NodeStates) -> FloatArray:
        return np.abs(states.cpu_free / self.ratio - states.gpu_free.sum(axis=1))

    def _whole_choice(self, cluster: Cluster, nodes: IntArray, pod: PodRequest) -> BoolArray:
        if self.nvlink and (pod.needs_domain or pod.num_gpu == 1):
            return best_fit_domain_whole(cluster, nodes, pod.num_gpu)
        return first_free_whole(cluster, nodes, pod.num_gpu)

    def _gain(self, cluster: Cluster, pod: PodRequest, nodes: IntArray) -> tuple[FloatArray, IntArray]:
        """Gain in milli-GPUs per node, and for a shared-GPU pod the GPU that gives it."""
        sa = self.shapes.arrays(cluster)
        now = NodeStates.of(cluster, nodes)
        before = frag_amount(now, sa, self.nvlink) + self._imbalance(now)
        if pod.is_shared:
            cand = share_candidates(cluster, nodes, pod, by_domain=self.nvlink)
            after = frag_amount(cand.states, sa, self.nvlink) + self._imbalance(cand.states)
            left = cluster.gpu_free[nodes[cand.pos], cand.gpu]
            filled = WASTE_WEIGHT * (self.waste[left] - self.waste[left - pod.gpu_milli])
            return best_per_node(len(nodes), cand, before[cand.pos] - after + filled)
        states = states_after(cluster, nodes, pod, self._whole_choice(cluster, nodes, pod))
        after = frag_amount(states, sa, self.nvlink) + self._imbalance(states)
        return before - after, np.full(len(nodes), -1, dtype=np.int64)

    def _cached_gain(self, cluster: Cluster, pod: PodRequest, nodes: IntArray) -> tuple[FloatArray, IntArray]:
        return self.cache.get(cluster, TaskShape.of(pod), nodes,
                              lambda stale: self._gain(cluster, pod, stale))

    # ---- cluster-wide terms ------------------------------------------------------------------------
    def prices(self, cluster: Cluster) -> FloatArray:
        """Model prices, re-solved after PRICE_EVERY placements (or for another cluster)."""
        placed = int(cluster.version.sum())
        if self._prices is None or self._prices[0] != cluster.uid or placed - self._prices[1] >= PRICE_EVERY:
            self._prices = (cluster.uid, placed, model_prices(cluster, self.workload))
        return self._prices[2]

    def _node_order(self, cluster: Cluster) -> FloatArray:
        if self._order is None or self._order[0] != cluster.uid:
            self._order = (cluster.uid, node_order(cluster))
        return self._order[1]

    # ---- Policy interface --------------------------------------------------------------------------
    def score(self, cluster: Cluster, pod: PodRequest, nodes: IntArray) -> FloatArray:
        gain, _ = self._cached_gain(cluster, pod, nodes)
        if pod.num_gpu:
            gain = gain - PRICE_WEIGHT * self.prices(cluster)[cluster.model_id[nodes]] * pod.total_gpu_milli
        points = 100.0 / (1.0 + np.exp(-gain / 1000.0))
        return np.floor(points / STEP) * STEP + ORDER_WEIGHT * self._node_order(cluster)[nodes]

    def select_gpus(self, cluster: Cluster, node: int, pod: PodRequest) -> tuple[int, ...]:
        if not pod.num_gpu:
            return ()
        nodes = np.array([node])
        if pod.is_shared:
            _, gpu = self._cached_gain(cluster, pod, nodes)
            return (int(gpu[0]),)
        return tuple(int(i) for i in np.flatnonzero(self._whole_choice(cluster, nodes, pod)[0]))
