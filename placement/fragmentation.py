"""GPU fragmentation against a workload's task shapes (Weng et al., ATC'23, "Beware of Fragmentation").

A node's free GPU capacity is a fragment *for a task shape* when that task cannot use it: the node lacks
the CPU, the GPU model is not allowed, too few GPUs have the share the task needs, or (for the GPUs that
are individually too small) the GPU itself is too small. The node's fragmentation is the expected
fragment over the workload's shape distribution:

    F(node) = sum_s p_s * (free_milli(node) - usable_s(node))

where usable_s is the free capacity on GPUs that can take a task of shape s (free share >= its per-GPU
share) when the node can host one task of shape s at all, and 0 otherwise. CPU-only shapes use no GPU,
so all free GPU capacity is a fragment for them (as in the paper's simulator, where memory is not part
of the measure). With `domain_aware`, a shape that must sit in one NVLink domain only counts the whole
free GPUs of domains that can hold it.

The shape distribution is the paper's "typical pods": the most frequent shapes that together make up
`coverage` (95%) of the pods, weights renormalized to sum to 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from placement.topology import MILLI, BoolArray, Cluster, FloatArray, IntArray, PodRequest

DEFAULT_COVERAGE = 0.95


@dataclass(frozen=True, order=True)
class TaskShape:
    """A pod's resource shape without memory (which the measure ignores) and name."""

    cpu_milli: int
    gpu_milli: int  # per GPU; 0 for CPU-only
    num_gpu: int
    gpu_models: tuple[str, ...] = ()  # sorted allowed models, () for any
    nvlink_required: bool = False

    @classmethod
    def of(cls, pod: PodRequest) -> TaskShape:
        return cls(pod.cpu_milli, pod.gpu_request_milli, pod.num_gpu, tuple(sorted(pod.gpu_models)),
                   pod.needs_domain)


@dataclass(frozen=True)
class ShapeArrays:
    """A distribution's shapes as arrays against one cluster's model list."""

    cpu: IntArray
    milli: IntArray
    num: IntArray
    mask: IntArray
    domain: BoolArray
    weight: FloatArray


class ShapeDistribution:
    """Task shapes with probabilities summing to 1."""

    def __init__(self, shapes: Iterable[TaskShape], weights: Iterable[float]) -> None:
        self.shapes: tuple[TaskShape, ...] = tuple(shapes)
        w = np.asarray(list(weights), dtype=np.float64)
        if len(w) != len(self.shapes) or not len(w) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("a shape distribution needs one non-negative weight per shape, not all zero")
        self.weights: FloatArray = w / w.sum()
        self._arrays: dict[tuple[str, ...], ShapeArrays] = {}

    @classmethod
    def from_pods(cls, pods: Iterable[PodRequest], coverage: float = 1.0) -> ShapeDistribution:
        """Shapes weighted by how many pods have them; with `coverage` < 1 only the most frequent ones
        that together make up that share of the pods (the paper's "typical pods")."""
        counts = Counter(TaskShape.of(p) for p in pods)
        if not counts:
            raise ValueError("no pods to build a shape distribution from")
        return cls(counts.keys(), counts.values()).typical(coverage)

    def typical(self, coverage: float = DEFAULT_COVERAGE) -> ShapeDistribution:
        """The most frequent shapes covering `coverage` of the weight, renormalized (ties: larger
        shapes first)."""
        ranked = sorted(zip(self.weights, self.shapes, strict=True), reverse=True)
        kept: list[tuple[float, TaskShape]] = []
        covered = 0.0
        for w, shape in ranked:
            if covered >= coverage - 1e-12:
                break
            kept.append((w, shape))
            covered += w
        return ShapeDistribution((s for _, s in kept), (w for w, _ in kept))

    def by_gpu_demand(self) -> ShapeDistribution:
        """The same shapes weighted by their share of GPU demand instead of pod count (CPU-only
        shapes keep the weight of one milli-GPU per pod so they do not vanish)."""
        demand = [w * max(1, s.gpu_milli * s.num_gpu) for s, w in zip(self.shapes, self.weights, strict=True)]
        return ShapeDistribution(self.shapes, demand)

    def __len__(self) -> int:
        return len(self.shapes)

    def arrays(self, cluster: Cluster) -> ShapeArrays:
        """Shape arrays with model masks for this cluster's models (cached per model list)."""
        cached = self._arrays.get(cluster.models)
        if cached is None:
            cached = ShapeArrays(
                cpu=np.array([s.cpu_milli for s in self.shapes], dtype=np.int64),
                milli=np.array([s.gpu_milli for s in self.shapes], dtype=np.int64),
                num=np.array([s.num_gpu for s in self.shapes], dtype=np.int64),
                mask=np.array([cluster.model_mask(frozenset(s.gpu_models)) for s in self.shapes],
                              dtype=np.int64),
                domain=np.array([s.nvlink_required and s.num_gpu > 1 for s in self.shapes], dtype=bool),
                weight=self.weights,
            )
            self._arrays[cluster.models] = cached
        return cached

    @cached_property
    def mean_gpu_milli(self) -> float:
        """Expected GPU demand of one task, in milli-GPUs."""
        return float(sum(w * s.gpu_milli * s.num_gpu for s, w in zip(self.shapes, self.weights, strict=True)))


@dataclass(frozen=True)
class NodeStates:
    """Node states to measure (real or hypothetical): one row each."""

    gpu_free: IntArray  # [S, width]
    cpu_free: IntArray  # [S]
    model_bit: IntArray  # [S]
    domain_of: IntArray | None = None  # [S, width], only needed for domain-aware measures

    @classmethod
    def of(cls, cluster: Cluster, nodes: IntArray | None = None) -> NodeStates:
        sel = slice(None) if nodes is None else nodes
        return cls(cluster.gpu_free[sel], cluster.cpu_free[sel], cluster.model_bit[sel],
                   cluster.domain_of[sel])


def _usable_plain(states: NodeStates, sa: ShapeArrays, gpu_shapes: IntArray) -> FloatArray:
    """[K', S] usable milli for shapes that may spread over any GPUs of the node."""
    free = states.gpu_free
    levels, inverse = np.unique(sa.milli[gpu_shapes], return_inverse=True)
    ge = free[None, :, :] >= levels[:, None, None]  # [M, S, W]
    count = ge.sum(axis=2)
    usable = np.where(ge, free[None, :, :], 0).sum(axis=2)
    hosts = count[inverse] >= sa.num[gpu_shapes][:, None]
    return np.where(hosts, usable[inverse], 0).astype(np.float64)


def _usable_domain(states: NodeStates, sa: ShapeArrays, dom_shapes: IntArray) -> FloatArray:
    """[K', S] usable milli for whole multi-GPU shapes that must fit one NVLink domain."""
    if states.domain_of is None:
        raise ValueError("domain-aware fragmentation needs the GPUs' NVLink domains")
    whole = states.gpu_free == MILLI
    width = states.gpu_free.shape[1]
    blocks = np.stack([(whole & (states.domain_of == d)).sum(axis=1) for d in range(width)], axis=1)
    need = sa.num[dom_shapes][:, None, None]  # [K', 1, 1]
    usable = np.where(blocks[None] >= need, blocks[None], 0).sum(axis=2) * MILLI
    return usable.astype(np.float64)


def frag_amount(states: NodeStates, sa: ShapeArrays, domain_aware: bool = False) -> FloatArray:
    """Expected fragmented milli-GPUs of each state over the shape distribution."""
    total = states.gpu_free.sum(axis=1).astype(np.float64)
    frag = total * sa.weight.sum()
    gpu = sa.milli > 0
    dom = gpu & sa.domain if domain_aware else np.zeros_like(gpu)
    for group, fn in ((np.flatnonzero(gpu & ~dom), _usable_plain), (np.flatnonzero(dom), _usable_domain)):
        if not len(group):
            continue
        usable = fn(states, sa, group)
        ok = ((states.model_bit[None, :] & sa.mask[group][:, None]) != 0) & (
            states.cpu_free[None, :] >= sa.cpu[group][:, None])
        frag -= sa.weight[group] @ np.where(ok, usable, 0.0)
    return frag


def node_frag(cluster: Cluster, dist: ShapeDistribution, nodes: IntArray | None = None,
              domain_aware: bool = False) -> FloatArray:
    """Fragmented milli-GPUs per node (all nodes, or the given rows)."""
    return frag_amount(NodeStates.of(cluster, nodes), dist.arrays(cluster), domain_aware)


def cluster_frag(cluster: Cluster, dist: ShapeDistribution, domain_aware: bool = False) -> float:
    """Fragmented milli-GPUs of the whole cluster."""
    return float(node_frag(cluster, dist, domain_aware=domain_aware).sum())


def frag_ratio(cluster: Cluster, dist: ShapeDistribution, domain_aware: bool = False) -> float:
    """Share of the idle GPU capacity that is fragmented (0 when nothing is idle)."""
    idle = float(cluster.gpu_free.sum())
    return cluster_frag(cluster, dist, domain_aware) / idle if idle else 0.0


def stranded_gpus(cluster: Cluster, dist: ShapeDistribution) -> float:
    """Free GPUs (in GPUs) on nodes where no GPU shape of the distribution fits any more."""
    sa = dist.arrays(cluster)
    gpu = np.flatnonzero(sa.milli > 0)
    if not len(gpu):
        return float(cluster.gpu_free.sum()) / MILLI
    states = NodeStates.of(cluster)
    usable = _usable_plain(states, sa, gpu)
    ok = ((states.model_bit[None, :] & sa.mask[gpu][:, None]) != 0) & (
        states.cpu_free[None, :] >= sa.cpu[gpu][:, None])
    dead = ~np.any(ok & (usable > 0), axis=0)
    return float(cluster.gpu_free[dead].sum()) / MILLI
