"""Trace replay against a placement policy, following the FGD paper's protocol (Weng et al., ATC'23).

1. Build the cluster from the node list (all nodes empty).
2. Shuffle the pods with the seed; arrival times are ignored and no pod ever leaves.
3. Resize the list to `inflate_to` x the cluster's GPU capacity (1.3 in the paper): append pods drawn
   with replacement from the trace until the next one would overshoot, or, for traces that ask for more,
   drop random pods until the demand fits.
4. Schedule the pods one at a time: the policy scores every feasible node (CPU, memory, GPU count,
   per-GPU share and GPU model must fit on one node), the best score wins (ties go to a random but fixed
   order of nodes per seed, as in the paper's simulator), the policy picks the GPUs. A pod that fits
   nowhere fails and stays failed.
5. After every pod, record arrived GPU demand (failed pods included) and allocated GPU capacity.

The headline figure is the unallocated GPU share when arrived demand reaches 100% of capacity: 100 minus
the mean allocated % over the pods whose arrived % rounds to 100, as the paper's analysis scripts do.

The NVLink variant (`nvlink=True`) marks every whole multi-GPU pod as needing one NVLink domain. Policies
that know NVLink (`nvlink_aware`) enforce it; the others place as they always do, and the result counts how
many multi-GPU pods landed inside one domain anyway. Nothing here prints or writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from placement.fragmentation import ShapeDistribution
from placement.policies import PolicyContext, make_policy, pick_best
from placement.topology import MILLI, Cluster, FloatArray, GpuNode, IntArray, PodRequest
from placement.trace import with_nvlink_required

DEFAULT_INFLATION = 1.3
BIG_POD_GPUS = 8  # the NVLink variant reports refusals of pods this large


@dataclass(frozen=True)
class ReplayConfig:
    seed: int = 0
    inflate_to: float = DEFAULT_INFLATION  # <= 0: replay the pods as they are
    shuffle: bool = True
    nvlink: bool = False


@dataclass
class NvlinkStats:
    """NVLink-variant counts. A pod is inside one domain when all its GPUs share one NVLink domain."""

    multi_gpu_placed: int = 0
    multi_gpu_in_domain: int = 0
    big_refused: int = 0  # 8-GPU pods that failed
    big_refused_with_free: int = 0  # ... while at least 8 whole GPUs were free somewhere in the cluster

    @property
    def in_domain_share(self) -> float:
        return self.multi_gpu_in_domain / self.multi_gpu_placed if self.multi_gpu_placed else 1.0


@dataclass
class ReplayResult:
    policy: str
    seed: int
    capacity_milli: int
    arrived_milli: IntArray  # cumulative demand after each pod of the workload
    allocated_milli: IntArray  # allocated GPU capacity after each pod
    placed_on: IntArray  # node row per pod, -1 when it failed
    nvlink: NvlinkStats = field(default_factory=NvlinkStats)

    @property
    def pods(self) -> int:
        return len(self.placed_on)

    @property
    def failed(self) -> int:
        return int((self.placed_on < 0).sum())

    def curve(self, max_percent: int = 130) -> FloatArray:
        """Allocated GPU % at arrived demand 0..max_percent % (NaN where the replay never got there):
        the mean over pods whose arrived % rounds to the point, else over those within 1 point of it."""
        arrived = np.rint(self.arrived_milli * 100.0 / self.capacity_milli).astype(np.int64)
        alloc = self.allocated_milli * 100.0 / self.capacity_milli
        size = max(max_percent, int(arrived.max(initial=0))) + 2
        sums = np.bincount(arrived, alloc, minlength=size)
        counts = np.bincount(arrived, minlength=size)
        out = np.full(max_percent + 1, np.nan)
        for x in range(max_percent + 1):
            if counts[x]:
                out[x] = sums[x] / counts[x]
            else:
                lo, hi = max(0, x - 1), x + 2
                n = counts[lo:hi].sum()
                if n:
                    out[x] = sums[lo:hi].sum() / n
        return out

    def unallocated_at(self, percent: int = 100) -> float:
        """Unallocated GPU % of capacity when arrived demand is `percent` % of capacity."""
        return float(100.0 - self.curve(max(percent, 130))[percent])


def build_workload(pods: Sequence[PodRequest], capacity_milli: int, rng: np.random.Generator,
                   cfg: ReplayConfig) -> list[PodRequest]:
    """The pod sequence of one replay: shuffled, then resized to the target GPU demand."""
    order = rng.permutation(len(pods)) if cfg.shuffle else np.arange(len(pods))
    work = [pods[i] for i in order]
    if cfg.inflate_to <= 0:
        return work
    target = cfg.inflate_to * capacity_milli
    total = sum(p.total_gpu_milli for p in work)
    if total > target:
        keep = np.ones(len(work), dtype=bool)
        for i in rng.permutation(len(work)):
            if total <= target:
                break
            keep[i] = False
            total -= work[i].total_gpu_milli
        return [p for p, k in zip(work, keep, strict=True) if k]
    while True:
        extra = pods[int(rng.integers(len(pods)))]
        if total + extra.total_gpu_milli > target:
            return work
        work.append(extra)
        total += extra.total_gpu_milli


def replay_rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """The replay's random streams for one seed: workload (shuffle, resize), node tie order, policy."""
    workload, ties, policy = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    return workload, ties, policy


def replay_workload(pods: Sequence[PodRequest], capacity_milli: int,
                    cfg: ReplayConfig = ReplayConfig()) -> list[PodRequest]:
    """The pod sequence `replay` schedules for `cfg` on a cluster of `capacity_milli` GPU capacity."""
    return build_workload(pods, capacity_milli, replay_rngs(cfg.seed)[0], cfg)


def _in_one_domain(cluster: Cluster, node: int, gpus: Sequence[int]) -> bool:
    domains = {int(cluster.domain_of[node, g]) for g in gpus}
    return bool(cluster.has_nvlink[node]) and len(domains) == 1


def replay(nodes: Sequence[GpuNode], pods: Sequence[PodRequest], policy_name: str,
           cfg: ReplayConfig = ReplayConfig(), shapes: ShapeDistribution | None = None) -> ReplayResult:
    """Replay `pods` on an empty cluster of `nodes` with one policy. `shapes` defaults to the paper's
    typical shapes of `pods` (the workload before shuffling and resizing)."""
    workload_rng, tie_rng, policy_rng = replay_rngs(cfg.seed)
    cluster = Cluster(nodes)
    tie_rank = tie_rng.permutation(len(cluster))
    if cfg.nvlink:
        pods = with_nvlink_required(list(pods))
    shapes = shapes or ShapeDistribution.from_pods(pods)
    policy = make_policy(policy_name, PolicyContext(shapes=shapes, rng=policy_rng, nvlink=cfg.nvlink))
    aware = policy.nvlink_aware
    work = build_workload(pods, cluster.gpu_capacity_milli, workload_rng, cfg)

    arrived = np.zeros(len(work), dtype=np.int64)
    allocated = np.zeros(len(work), dtype=np.int64)
    placed = np.full(len(work), -1, dtype=np.int64)
    stats = NvlinkStats()
    demand = used = 0
    for i, pod in enumerate(work):
        seen = pod if aware or not pod.nvlink_required else _without_nvlink(pod)
        demand += pod.total_gpu_milli
        feasible = np.flatnonzero(cluster.feasible(seen))
        if len(feasible):
            node = int(feasible[pick_best(policy.score(cluster, seen, feasible), tie_rank[feasible])])
            gpus = policy.select_gpus(cluster, node, seen)
            cluster.place(node, seen, gpus)
            used += pod.total_gpu_milli
            placed[i] = node
            if cfg.nvlink and pod.num_gpu > 1:
                stats.multi_gpu_placed += 1
                stats.multi_gpu_in_domain += _in_one_domain(cluster, node, gpus)
        elif cfg.nvlink and pod.num_gpu >= BIG_POD_GPUS:
            stats.big_refused += 1
            stats.big_refused_with_free += int(cluster.whole_free().sum()) >= pod.num_gpu
        arrived[i], allocated[i] = demand, used
    return ReplayResult(policy_name, cfg.seed, cluster.gpu_capacity_milli, arrived, allocated, placed, stats)


def _without_nvlink(pod: PodRequest) -> PodRequest:
    return PodRequest(pod.name, pod.cpu_milli, pod.memory_mib, pod.num_gpu, pod.gpu_milli, pod.gpu_models)


CURVE_POINTS = 130  # the allocation curve runs over arrived demand 0..130 %


@dataclass(frozen=True)
class ReplaySummary:
    """What a report keeps of one replay: small enough to pass between processes by the hundred."""

    trace: str
    policy: str
    seed: int
    unallocated: float  # GPU % of capacity unallocated at 100 % arrived demand
    curve: tuple[float, ...]  # allocated GPU % at arrived 0..CURVE_POINTS %
    pods: int
    failed: int
    seconds: float
    nvlink: NvlinkStats | None = None

    @classmethod
    def of(cls, trace: str, result: ReplayResult, seconds: float, nvlink: bool) -> ReplaySummary:
        curve = tuple(float(x) for x in result.curve(CURVE_POINTS))
        return cls(trace, result.policy, result.seed, result.unallocated_at(100), curve, result.pods,
                   result.failed, seconds, result.nvlink if nvlink else None)


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation of a figure over seeds."""

    mean: float
    sd: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        arr = np.asarray(values, dtype=np.float64)
        sd = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
        return cls(float(arr.mean()), sd, len(arr))

    def __str__(self) -> str:
        return f"{self.mean:.2f}±{self.sd:.2f}"


__all__ = ["MILLI", "NvlinkStats", "ReplayConfig", "ReplayResult", "ReplaySummary", "Summary",
           "build_workload", "replay", "replay_rngs", "replay_workload"]
