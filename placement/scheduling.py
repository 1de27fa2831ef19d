"""The scheduler extender's placement rules: what a pod needs, which nodes can take it, how to rank them.

Pure (no I/O) and shared by anything that places pods the way the extender does. It composes the core:
the node model (`topology.Cluster`, `node_topology.NodeTable`), the packing policies (`policies/`), the
workload reader and the requirements the webhook stamps (`workload`, `requirements`).

What a pod needs (`pod_needs`): GPUs, CPU and memory from its containers (the planner's reader); the GPU
memory per GPU, NVLink need, model and multi-node group from the `gpuplace.io/*` annotations /mutate
stamps, recomputed from the pod itself when they are absent (design.md); the GPU tiers it is pinned to
(nodeSelector, required node affinity, or `gpuplace.io/tier`).

Filter (`filter_nodes`), first failing rule wins; "unresolvable" means preemption cannot help:

| rule | node refused when | kind |
|---|---|---|
| tier | its GPU is not among the tiers the pod is pinned to | unresolvable |
| gpu-memory | its GPUs hold less memory than the pod needs per GPU | unresolvable |
| nvlink-topology | `nvlink: required`, and its NVLink domains are smaller than the pod | unresolvable |
| group-clique | a member of the pod's group already runs in another NVLink clique | unresolvable |
| gpus-busy | fewer whole GPUs free than the pod asks (counting binds in flight) | failed |
| nvlink-fragmented | `nvlink: required`, enough GPUs free, but no domain holds the pod | failed |

Score (`score_nodes`), lexicographic, mapped onto the extender's 0..10 (the best node alone gets 10):
1. group affinity: nodes in the clique the group's members run in; before any member runs, the clique
   that holds the whole group most tightly (or, group size unknown, the clique with the most free GPUs);
2. tier cost, for pods whose memory need is known: the cheapest GPU per hour among the fitting nodes
   (kube-scheduler has already removed tiers a pod is pinned away from);
3. packing: the placement policy's own score (`gpuplace` by default: fragmentation gradient against the
   GPU shapes recent pods asked for, NVLink-domain aware, so 1-GPU pods fill domains that are already
   broken and whole nodes stay whole for 8-GPU pods).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import operator
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from placement.checks.settings import CheckContext
from placement.findings import Code, Finding, ObjectRef
from placement.fragmentation import ShapeDistribution, TaskShape
from placement.node_topology import UNKNOWN, NodeTable
from placement.planner.snapshot import SnapshotError, pod_request_from_k8s
from placement.policies import POLICY_NAMES, Policy, PolicyContext, make_policy, pick_best
from placement.policies.base import EXTENDER_MAX_SCORE
from placement.requirements import GPU_MEMORY_MIN, GROUP, MODEL_RESOLVED, NVLINK, requirements
from placement.topology import MILLI, Cluster, FloatArray, IntArray, PodRequest, TopologyError
from placement.workload import TIER_ANNOTATION, WorkloadError, extract, tier_pin

GPUS_ANNOTATION = "gpuplace.io/gpus"  # GPU indices the extender assigned on bind ("0,1")
LWS_GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"
LWS_SIZE_ANNOTATION = "leaderworkerset.sigs.k8s.io/size"


class PodReadError(ValueError):
    """A pod whose resources cannot be read; the message names the pod and the field."""


# ---- what a pod needs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PodNeeds:
    namespace: str
    name: str
    uid: str
    request: PodRequest  # gpu_models: the pinned tiers (catalog ids), empty for any
    gpu_memory_mib: int | None = None  # per GPU, CUDA-usable MiB; None: unknown
    model: str | None = None
    group: str | None = None  # namespace-qualified group key (one LeaderWorkerSet group)
    group_size: int | None = None
    source: str = "annotations"  # where memory and NVLink came from: annotations | recomputed | none

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def gpus(self) -> int:
        return self.request.num_gpu

    @property
    def nvlink_required(self) -> bool:
        return self.request.needs_domain

    def describe(self) -> str:
        """Short summary for log lines: '4 GPUs, NVLink, >=80468 MiB/GPU, meta-llama/...'."""
        parts = [f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}"]
        if self.nvlink_required:
            parts.append("one NVLink domain")
        if self.gpu_memory_mib is not None:
            parts.append(f">={self.gpu_memory_mib} MiB/GPU")
        if self.request.gpu_models:
            parts.append("tiers " + "|".join(sorted(self.request.gpu_models)))
        if self.model:
            parts.append(self.model)
        if self.group:
            parts.append(f"group {self.group}")
        return ", ".join(parts)


class RequirementsCache:
    """Recomputed requirements by what they depend on (containers, tier pinning, gpuplace.io
    annotations), so the replicas of one workload are estimated once."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: OrderedDict[str, dict[str, str]] = OrderedDict()

    def get(self, pod: Mapping[str, Any], ctx: CheckContext) -> dict[str, str]:
        spec = pod.get("spec") or {}
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        inputs = {
            "c": spec.get("containers"), "i": spec.get("initContainers"), "s": spec.get("nodeSelector"),
            "a": (spec.get("affinity") or {}).get("nodeAffinity"),
            "g": {k: v for k, v in annotations.items() if k.startswith("gpuplace.io/")},
        }
        key = hashlib.sha1(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            return hit
        workload = extract({**pod, "kind": "Pod", "apiVersion": "v1"}, ctx.gpus)
        result = requirements(workload, ctx) if workload is not None else {}
        self._entries[key] = result
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return result


def pod_needs(pod: Mapping[str, Any], ctx: CheckContext, cache: RequirementsCache | None = None) -> PodNeeds:
    """What the pod needs from a node (see the module docstring). Raises PodReadError on unreadable
    resources; unreadable gpuplace.io annotations are recomputed instead."""
    meta = pod.get("metadata") or {}
    if not isinstance(meta, Mapping):
        raise PodReadError("pod: metadata is not an object")
    namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
    if not name:
        raise PodReadError("pod: metadata.name is missing")
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    try:
        request = pod_request_from_k8s(pod, ctx.gpus)
    except (SnapshotError, TopologyError, TypeError, AttributeError) as exc:
        raise PodReadError(f"pod {namespace}/{name}: {exc}") from exc
    allowed = request.gpu_models
    if TIER_ANNOTATION in annotations:
        pin = tier_pin(pod.get("spec") or {}, annotations, ctx.gpus)
        if pin.pinned:
            allowed = frozenset(g.id for g in pin.gpus)

    memory = _positive_int(annotations.get(GPU_MEMORY_MIN))
    nvlink = annotations.get(NVLINK)
    model = annotations.get(MODEL_RESOLVED)
    source = "annotations"
    if request.num_gpu and (memory is None or nvlink not in ("required", "none")):
        try:
            stamped = (cache or RequirementsCache()).get(pod, ctx)
        except (WorkloadError, ValueError, KeyError, TypeError):
            stamped = {}
        source = "recomputed" if stamped else "none"
        memory = memory if memory is not None else _positive_int(stamped.get(GPU_MEMORY_MIN))
        nvlink = nvlink if nvlink in ("required", "none") else stamped.get(NVLINK)
        model = model or stamped.get(MODEL_RESOLVED)
    request = replace(request, gpu_models=allowed,
                      nvlink_required=nvlink == "required" and request.num_gpu > 1)

    group = annotations.get(GROUP)
    group_key = None
    if group:
        index = labels.get(LWS_GROUP_INDEX_LABEL)
        group_key = f"{namespace}/{group}" + (f"#{index}" if index is not None else "")
    return PodNeeds(namespace, name, str(meta.get("uid") or ""), request, memory, model, group_key,
                    _positive_int(annotations.get(LWS_SIZE_ANNOTATION)), source)


def _positive_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(str(text).strip())
    except ValueError:
        return None
    return value if value > 0 else None


# ---- filter -----------------------------------------------------------------------------------------------
class Refusal(StrEnum):
    UNKNOWN_NODE = "unknown-node"
    NO_GPUS = "no-gpus"
    TIER = "tier"
    GPU_MEMORY = "gpu-memory"
    NVLINK_TOPOLOGY = "nvlink-topology"
    GROUP_CLIQUE = "group-clique"
    GPUS_BUSY = "gpus-busy"
    NVLINK_FRAGMENTED = "nvlink-fragmented"

    @property
    def unresolvable(self) -> bool:
        """Preemption on that node cannot make the pod fit."""
        return self not in (Refusal.UNKNOWN_NODE, Refusal.GPUS_BUSY, Refusal.NVLINK_FRAGMENTED)


REFUSALS: tuple[Refusal, ...] = tuple(Refusal)
PASS = -1


@dataclass(frozen=True)
class GroupPlacement:
    """Where the members of the pod's group already run (placed, bound or being bound)."""

    members: int = 0
    cliques: frozenset[int] = frozenset()  # clique ids (NodeTable) hosting members

    @property
    def pinned_clique(self) -> bool:
        return bool(self.cliques)


@dataclass
class FilterOutcome:
    """Per input position: PASS or the index of its Refusal in REFUSALS. Messages are written per
    (reason, GPU model) group, not per node: the same text for every node refused for the same reason on
    the same GPU, which is also what lets kube-scheduler's 'N node(s) ...' summary group them."""

    reason: IntArray
    rows: IntArray
    needs: PodNeeds
    table: NodeTable | None = None
    group: GroupPlacement = field(default_factory=GroupPlacement)
    sub: IntArray | None = None  # per position: GPU model id (clique id for group-clique), -1 unknown
    largest_block: int = 0  # most whole GPUs in one domain among nodes refused for fragmentation
    fragmented_free: int = 0  # free GPUs on the nodes refused only for fragmentation
    fragmented_nodes: int = 0
    _memo: dict[tuple[int, int], str] = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> IntArray:
        return np.flatnonzero(self.reason == PASS)

    def counts(self) -> Counter[Refusal]:
        codes, n = np.unique(self.reason[self.reason != PASS], return_counts=True)
        return Counter({REFUSALS[int(c)]: int(k) for c, k in zip(codes, n, strict=True)})

    def message_at(self, pos: int) -> str:
        """The message of the node at input position `pos` (refused)."""
        code = int(self.reason[pos])
        sub = int(self.sub[pos]) if self.sub is not None else -1
        key = (code, sub)
        msg = self._memo.get(key)
        if msg is None:
            row = int(self.rows[pos])
            info = self.table.infos[row] if self.table is not None and row >= 0 else None
            msg = self._memo[key] = _message(REFUSALS[code], info, self.needs, self.needs.gpus, self.group,
                                             self.table)
        return msg

    @property
    def messages(self) -> dict[int, str]:
        """Position -> message for every refused node (one call per node: for tests and logs)."""
        return {int(p): self.message_at(int(p)) for p in np.flatnonzero(self.reason != PASS)}

    def example(self, why: Refusal) -> str:
        """The message of the first node refused for `why` ('' if none)."""
        hit = np.flatnonzero(self.reason == REFUSALS.index(why))
        return self.message_at(int(hit[0])) if len(hit) else ""

    def split(self, names: Sequence[str]) -> tuple[list[str], dict[str, str], dict[str, str]]:
        """(passing names, FailedNodes, FailedAndUnresolvableNodes) for the extender's response."""
        passed = _pick(names, self.passed)
        failed: dict[str, str] = {}
        unresolvable: dict[str, str] = {}
        refused = np.flatnonzero(self.reason != PASS)
        if not len(refused):
            return passed, failed, unresolvable
        sub = self.sub[refused] if self.sub is not None else np.full(len(refused), -1, dtype=np.int64)
        keys = self.reason[refused] * (1 << 20) + (sub + 1)
        for key in np.unique(keys):
            members = refused[keys == key]
            code = int(self.reason[members[0]])
            msg = self.message_at(int(members[0]))
            target = unresolvable if REFUSALS[code].unresolvable else failed
            target.update(zip(_pick(names, members), itertools.repeat(msg)))
        return passed, failed, unresolvable


def _pick(items: Sequence[str], positions: IntArray) -> list[str]:
    if not len(positions):
        return []
    if len(positions) == 1:
        return [items[int(positions[0])]]
    return list(operator.itemgetter(*positions.tolist())(items))


@dataclass(frozen=True)
class FreeSummary:
    """Per row of a Cluster: whole free GPUs and the largest free NVLink block, kept up to date by the
    caller for the rows that change (so filtering 20,000 nodes does not recount every GPU)."""

    whole: IntArray
    block: IntArray

    @classmethod
    def of(cls, cluster: Cluster) -> FreeSummary:
        return cls(cluster.whole_free(), cluster.largest_free_block())


def filter_nodes(cluster: Cluster | None, table: NodeTable | None, needs: PodNeeds, rows: IntArray,
                 group: GroupPlacement = GroupPlacement(), free: FreeSummary | None = None) -> FilterOutcome:
    """Which of the given rows (-1: a node the cache does not hold) can take the pod (module docstring).
    `free`: the cluster's FreeSummary when the caller keeps one (else it is computed for these rows)."""
    n = len(rows)
    reason = np.full(n, PASS, dtype=np.int64)
    out = FilterOutcome(reason, rows, needs, table, group)
    if not n:
        return out
    known = rows >= 0
    reason[~known] = REFUSALS.index(Refusal.UNKNOWN_NODE)
    if cluster is None or table is None or not known.any():
        return out
    req = needs.request
    k = req.num_gpu
    pos = np.flatnonzero(known)
    r = rows[pos]
    sub = np.full(n, -1, dtype=np.int64)
    sub[pos] = cluster.model_id[r]
    out.sub = sub
    if k == 0:  # not a GPU pod: nothing of ours to judge
        return out

    def refuse(mask: np.ndarray, why: Refusal) -> None:
        hit = pos[mask & (reason[pos] == PASS)]
        reason[hit] = REFUSALS.index(why)

    refuse(cluster.gpu_count[r] == 0, Refusal.NO_GPUS)
    if req.gpu_models:
        refuse((cluster.model_bit[r] & cluster.model_mask(req.gpu_models)) == 0, Refusal.TIER)
    if needs.gpu_memory_mib is not None:
        mem = table.gpu_memory_mib[r]
        refuse((mem != UNKNOWN) & (mem < needs.gpu_memory_mib), Refusal.GPU_MEMORY)
    if req.needs_domain:
        refuse(cluster.domain_size[r] < k, Refusal.NVLINK_TOPOLOGY)
    if group.pinned_clique:
        outside = ~np.isin(table.clique_id[r], np.fromiter(group.cliques, dtype=np.int64))
        refuse(outside, Refusal.GROUP_CLIQUE)
        clique_refused = pos[reason[pos] == REFUSALS.index(Refusal.GROUP_CLIQUE)]
        sub[clique_refused] = table.clique_id[rows[clique_refused]]
    if req.is_shared:
        whole = (cluster.gpu_free[r] >= req.gpu_milli).sum(axis=1)
    else:
        whole = free.whole[r] if free is not None else cluster.whole_free(r)
    refuse(whole < k, Refusal.GPUS_BUSY)
    if req.needs_domain:
        live = reason[pos] == PASS
        if live.any():
            block = np.zeros(len(r), dtype=np.int64)
            block[live] = free.block[r[live]] if free is not None else cluster.largest_free_block(r[live])
            frag = live & (block < k)
            refuse(frag, Refusal.NVLINK_FRAGMENTED)
            if frag.any():
                out.largest_block = int(block[frag].max())
                out.fragmented_free = int(whole[frag].sum())
                out.fragmented_nodes = int(frag.sum())
    return out


def _message(why: Refusal, info: Any, needs: PodNeeds, k: int, group: GroupPlacement,
             table: NodeTable | None) -> str:
    if why is Refusal.UNKNOWN_NODE:
        return "gpuplace: node not in the extender's cache yet"
    assert info is not None
    if why is Refusal.NO_GPUS:
        return "gpuplace: node has no allocatable nvidia.com/gpu"
    if why is Refusal.TIER:
        tiers = ", ".join(sorted(needs.request.gpu_models))
        return f"gpuplace: {info.model} is not among the pod's GPU tiers ({tiers})"
    if why is Refusal.GPU_MEMORY:
        what = f" for {needs.model}" if needs.model else ""
        return (f"gpuplace: {info.model} GPUs hold {info.gpu_memory_mib} MiB; "
                f"the pod needs {needs.gpu_memory_mib} MiB per GPU{what}")
    if why is Refusal.NVLINK_TOPOLOGY:
        size = info.domain_size
        layout = "no NVLink (PCIe only)" if size <= 1 else f"NVLink domains of {size} GPUs"
        return f"gpuplace: {info.model} nodes have {layout}; the pod needs {k} GPUs in one NVLink domain"
    if why is Refusal.GROUP_CLIQUE:
        assert table is not None
        where = ", ".join(table.cliques[c] for c in sorted(group.cliques))
        here = f"clique {info.clique}" if info.clique else "no NVLink clique"
        return f"gpuplace: group {needs.group} runs in NVLink clique {where}; this node is in {here}"
    if why is Refusal.GPUS_BUSY:
        return f"gpuplace: fewer than {k} free GPUs (counting binds in flight)"
    return f"gpuplace: no NVLink domain with {k} free GPUs (free GPUs are in smaller pieces)"


def fragmentation_finding(needs: PodNeeds, out: FilterOutcome) -> Finding | None:
    """The `fragmentation` finding when the pod was refused everywhere and only fragmentation kept it
    out of a node that has enough free GPUs."""
    if len(out.passed) or not out.fragmented_nodes:
        return None
    k = needs.gpus
    return Finding(
        Code.FRAGMENTATION, ObjectRef("Pod", needs.name, needs.namespace),
        f"needs {k} GPUs in one NVLink domain; {out.fragmented_free} are free on {out.fragmented_nodes} "
        f"node(s) but in pieces of at most {out.largest_block}. "
        f"`gpuplace plan defrag --pod {needs.key}` finds the fewest moves.",
        figures={"gpus": k, "free_gpus": out.fragmented_free, "largest_block": out.largest_block},
    )


# ---- score -------------------------------------------------------------------------------------------------
def group_terms(cluster: Cluster, table: NodeTable, needs: PodNeeds, rows: IntArray,
                group: GroupPlacement) -> FloatArray:
    """Group affinity in [0, 1] per row (0 for pods without a group)."""
    if needs.group is None or not len(table.cliques):
        return np.zeros(len(rows))
    cid = table.clique_id[rows]
    if group.pinned_clique:
        return np.isin(cid, np.fromiter(group.cliques, dtype=np.int64)).astype(np.float64)
    if group.members:  # members run outside any clique: nothing to keep together
        return np.zeros(len(rows))
    whole = cluster.whole_free()
    inside = table.clique_id >= 0
    free = np.bincount(table.clique_id[inside], weights=whole[inside], minlength=len(table.cliques))
    row_free = np.where(cid >= 0, free[np.maximum(cid, 0)], 0.0)
    if needs.group_size:
        want = float(needs.group_size * needs.gpus)
        holds = row_free >= want
        return np.where(cid < 0, 0.0, np.where(holds, 0.5 + 0.5 * want / np.maximum(row_free, 1.0),
                                                0.5 * row_free / want))
    top = float(free.max()) if len(free) else 0.0
    return np.where(cid < 0, 0.0, row_free / top if top > 0 else 0.0)


def tier_terms(table: NodeTable, needs: PodNeeds, rows: IntArray) -> FloatArray:
    """Cheaper GPU tiers score higher, in [0, 1]; neutral (all 1) when the pod's memory need is unknown
    (gpuplace cannot say which cheaper tier would hold it) or all candidates cost the same."""
    if needs.gpu_memory_mib is None or not needs.gpus:
        return np.ones(len(rows))
    price = table.price[rows]
    known = np.isfinite(price)
    levels = np.unique(price[known])
    if len(levels) <= 1:
        return np.where(known | (len(levels) == 0), 1.0, 0.0)
    rank = np.searchsorted(levels, np.where(known, price, levels[-1]))
    return np.where(known, 1.0 - rank / len(levels), 0.0)


def rank_values(policy: Policy, cluster: Cluster, table: NodeTable, needs: PodNeeds, rows: IntArray,
                group: GroupPlacement = GroupPlacement()) -> FloatArray:
    """The lexicographic ranking of the module docstring as one float per row (higher is better):
    group affinity x 1e6 + tier x 1e3 + packing (the policy's score stretched over 0..1)."""
    n = len(rows)
    if not n or not needs.gpus:
        return np.zeros(n)
    raw = np.asarray(policy.score(cluster, needs.request, rows), dtype=np.float64)
    lo, hi = float(raw.min()), float(raw.max())
    pack = (raw - lo) / (hi - lo) if hi > lo else np.zeros(n)
    return group_terms(cluster, table, needs, rows, group) * 1e6 + tier_terms(table, needs, rows) * 1e3 + pack


def best_first(values: FloatArray, k: int) -> IntArray:
    """Positions of the k highest values, best first (ties: lower position first)."""
    order = np.lexsort((np.arange(len(values)), -values))
    return order[:k]


def score_nodes(policy: Policy, cluster: Cluster, table: NodeTable, needs: PodNeeds, rows: IntArray,
                group: GroupPlacement = GroupPlacement()) -> IntArray:
    """Extender scores 0..10 for rows that passed the filter: the best node alone gets 10."""
    n = len(rows)
    if not n:
        return np.zeros(0, dtype=np.int64)
    if not needs.gpus:
        return np.zeros(n, dtype=np.int64)
    return extender_scale(rank_values(policy, cluster, table, needs, rows, group))


def extender_scale(values: FloatArray) -> IntArray:
    """Ranking values onto the extender's 0..10: the best alone gets 10 (ties: the lowest position), the
    others are stretched over 0..9, so kube-scheduler cannot turn the choice into a tie it breaks at
    random."""
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo if hi > lo else 1.0
    scores = np.floor((values - lo) / span * (EXTENDER_MAX_SCORE - 1)).astype(np.int64)
    scores[pick_best(values, np.arange(len(values)))] = EXTENDER_MAX_SCORE
    return scores


def choose_gpus(policy: Policy, cluster: Cluster, row: int, request: PodRequest) -> tuple[int, ...] | None:
    """The GPU indices of the node the pod gets (the policy's choice, e.g. the tightest NVLink domain),
    or None when the node cannot hold it. Only whole-GPU pods: the device plugin hands out whole GPUs."""
    k = request.num_gpu
    if not k:
        return ()
    count = int(cluster.gpu_count[row])
    free = cluster.gpu_free[row, :count]
    chosen = tuple(int(g) for g in policy.select_gpus(cluster, row, request))
    ok = (len(chosen) == k and len(set(chosen)) == k and all(0 <= g < count for g in chosen)
          and all(free[g] >= request.gpu_milli for g in chosen))
    if ok and request.needs_domain:
        ok = len({int(cluster.domain_of[row, g]) for g in chosen}) == 1
    if ok:
        return chosen
    if request.needs_domain:
        return None
    fits = [i for i in range(count) if free[i] >= (request.gpu_milli if request.is_shared else MILLI)]
    return tuple(fits[:k]) if len(fits) >= k else None


# ---- the shapes recent pods ask for --------------------------------------------------------------------
PRIOR_SHAPES: tuple[tuple[int, float], ...] = ((1, 4.0), (2, 3.0), (4, 2.0), (8, 1.0))
PRIOR_CPU_PER_GPU_MILLI = 8000


def shape_of(request: PodRequest) -> TaskShape:
    """The pod's task shape; CPU at least 1 millicore so the policy's CPU:GPU ratio stays defined."""
    shape = TaskShape.of(request)
    return replace(shape, cpu_milli=max(1, shape.cpu_milli))


class ShapeWindow:
    """The GPU shapes of the last `size` GPU pods, plus a prior of 1/2/4/8-GPU pods worth `prior_pods`
    pods (so a fresh extender already keeps 8-GPU blocks whole, and a burst of one shape does not
    make it forget the others at once)."""

    def __init__(self, size: int = 1000, prior_pods: float = 20.0) -> None:
        self.shapes: deque[TaskShape] = deque(maxlen=size)
        self.prior_pods = prior_pods
        self.added = 0

    def add(self, request: PodRequest) -> None:
        if request.num_gpu:
            self.shapes.append(shape_of(request))
            self.added += 1

    def weights(self) -> dict[TaskShape, float]:
        counts: dict[TaskShape, float] = dict(Counter(self.shapes))
        total = sum(w for _, w in PRIOR_SHAPES)
        for k, w in PRIOR_SHAPES:
            shape = TaskShape(PRIOR_CPU_PER_GPU_MILLI * k, MILLI, k, (), k > 1)
            counts[shape] = counts.get(shape, 0.0) + self.prior_pods * w / total
        return counts

    def distribution(self) -> ShapeDistribution:
        weights = self.weights()
        return ShapeDistribution(weights.keys(), weights.values())


def _distance(a: dict[TaskShape, float], b: dict[TaskShape, float]) -> float:
    ta, tb = sum(a.values()) or 1.0, sum(b.values()) or 1.0
    return sum(abs(a.get(s, 0.0) / ta - b.get(s, 0.0) / tb) for s in set(a) | set(b))


class PolicyHolder:
    """The placement policy, rebuilt when the shapes recent pods ask for have moved (L1 distance of the
    shape weights above `threshold`, checked every `check_every` new pods). A rebuild drops the policy's
    per-node cache, so it is not done on every pod."""

    def __init__(self, name: str = "gpuplace", window: ShapeWindow | None = None, *, nvlink: bool = True,
                 check_every: int = 50, threshold: float = 0.15) -> None:
        if name not in POLICY_NAMES:  # fail at start, not at the first pod
            raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICY_NAMES)}")
        self.name = name
        self.window = window or ShapeWindow()
        self.nvlink = nvlink
        self.check_every = check_every
        self.threshold = threshold
        self._built_at = -1
        self._built_weights: dict[TaskShape, float] = {}
        self._policy: Policy | None = None
        self.rebuilds = 0

    def observe(self, request: PodRequest) -> None:
        self.window.add(request)

    def policy(self) -> Policy:
        if self._policy is None or self.window.added - self._built_at >= self.check_every:
            weights = self.window.weights()
            if self._policy is None or _distance(weights, self._built_weights) > self.threshold:
                dist = ShapeDistribution(weights.keys(), weights.values())
                self._policy = make_policy(self.name, PolicyContext(shapes=dist, nvlink=self.nvlink))
                self._built_weights = weights
                self.rebuilds += 1
            self._built_at = self.window.added
        return self._policy

    def distribution(self) -> ShapeDistribution:
        return self.window.distribution()
