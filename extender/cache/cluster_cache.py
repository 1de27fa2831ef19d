"""The extender's view of the cluster: watched Nodes and Pods, plus its own decisions the watch has not
shown yet.

Three kinds of pod records, one per pod UID (so a pod is never counted twice):

- `watched`: the API server says the pod is bound to a node (list+watch of Pods);
- `assumed`: the extender is binding it or has bound it (`/bind`), the watch has not shown it yet;
- `nominated`: /prioritize (or a /filter that left one node) picked a node for it; kube-scheduler
  almost always binds there next (the extender's top score outvotes its plugins), so the next pod of a
  burst must already see those GPUs as taken. A nomination lapses after `nomination_ttl_s`, or when
  the pod comes back to /filter (the scheduler is trying it again).

GPU indices: a pod's record holds the GPUs the extender chose (`gpuplace.io/gpus`, written on the pod by
the binding, so they survive restarts); pods bound by someone else take the lowest free indices, as the
planner assumes. Which physical devices a container gets is the device plugin's decision: these indices
are gpuplace's accounting of NVLink domains, not a device assignment.

Thread safety: informer threads and request handlers share one lock. Updates only mark nodes dirty;
`view()` (under the lock) rebuilds the `Cluster` when the node set changed, and recomputes dirty rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from placement.catalog import GpuCatalog
from placement.dra_inventory import NodeSlice, node_with_dra_gpus, read_allocation, read_slice
from placement.node_topology import NodeInfo, NodeReadError, NodeTable, node_info_from_k8s
from placement.planner.snapshot import SnapshotError, pod_request_from_k8s
from placement.scheduling import GPUS_ANNOTATION, LWS_GROUP_INDEX_LABEL, FreeSummary, GroupPlacement
from placement.topology import MILLI, Cluster, PodRequest, TopologyError

log = logging.getLogger("gpuplace.extender.cache")

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
GROUP_ANNOTATION = "gpuplace.io/group"


class RecordState(StrEnum):
    WATCHED = "watched"
    ASSUMED = "assumed"
    NOMINATED = "nominated"


@dataclass(slots=True)
class PodRecord:
    uid: str
    key: str  # namespace/name
    node: str
    request: PodRequest
    gpus: tuple[int, ...] | None  # None: not known (bound by someone else, no annotation)
    state: RecordState
    since: float  # clock() when recorded
    group: str | None = None


@dataclass
class View:
    """The cluster as the extender sees it now (valid while the cache lock is held)."""

    cluster: Cluster | None
    table: NodeTable | None
    generation: int  # goes up whenever the node set (and so the Cluster object) changes
    cache: ClusterCache
    free: FreeSummary | None = None  # whole free GPUs and largest free NVLink block per row

    def group_placement(self, group: str | None, exclude_uid: str = "") -> GroupPlacement:
        return self.cache._group_placement(group, exclude_uid)


@dataclass
class CacheStats:
    nodes: int = 0
    gpu_nodes: int = 0
    pods: int = 0
    assumed: int = 0
    nominated: int = 0
    expired: int = 0
    rebuilds: int = 0
    unreadable: dict[str, int] = field(default_factory=dict)


def _group_key(meta: Mapping[str, Any]) -> str | None:
    annotations = meta.get("annotations") or {}
    group = annotations.get(GROUP_ANNOTATION)
    if not group:
        return None
    index = (meta.get("labels") or {}).get(LWS_GROUP_INDEX_LABEL)
    return f"{meta.get('namespace') or 'default'}/{group}" + (f"#{index}" if index is not None else "")


def _trimmed(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """What reading a Node needs (labels, spec, allocatable, conditions), without images or addresses."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    return {
        "metadata": {"name": meta.get("name"), "labels": meta.get("labels") or {}},
        "spec": obj.get("spec") or {},
        "status": {
            "allocatable": status.get("allocatable") or {},
            "conditions": status.get("conditions") or [],
        },
    }


def _parse_gpus(text: Any, count: int) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        gpus = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        return None
    return gpus if len(gpus) == count and len(set(gpus)) == count else None


class ClusterCache:
    def __init__(self, catalog: GpuCatalog, *, clock: Callable[[], float] = time.monotonic,
                 nomination_ttl_s: float = 30.0, assumed_ttl_s: float = 300.0,
                 min_rebuild_interval_s: float = 1.0) -> None:
        self.catalog = catalog
        self.clock = clock
        self.nomination_ttl_s = nomination_ttl_s
        self.assumed_ttl_s = assumed_ttl_s
        self.min_rebuild_interval_s = min_rebuild_interval_s
        self._rebuilt_at = float("-inf")
        self.lock = threading.RLock()
        self.nodes_synced = False
        self.pods_synced = False
        self._nodes: dict[str, NodeInfo] = {}  # GPU nodes
        # DRA: every node as read (trimmed to what node_from_k8s reads), so that a ResourceSlice arriving
        # after its Node (or changing) re-reads it; the NVIDIA driver's slices by name, and by node.
        self._raw_nodes: dict[str, Mapping[str, Any]] = {}
        self._slices: dict[str, NodeSlice] = {}
        self._slices_by_node: dict[str, set[str]] = {}
        self._node_count = 0  # all nodes, GPU or not
        self._pods: dict[str, PodRecord] = {}
        self._by_node: dict[str, set[str]] = {}
        self._groups: dict[str, set[str]] = {}
        self._own: dict[str, PodRecord] = {}  # assumed and nominated records (they can lapse)
        self._gpu_pods: dict[str, int] = {}  # node -> GPU pods on it (dark capacity)
        self._dirty: set[str] = set()
        self._rebuild = True
        self._cluster: Cluster | None = None
        self._table: NodeTable | None = None
        self._free: FreeSummary | None = None
        self._generation = 0
        self.stats = CacheStats()
        self.on_expired: Callable[[PodRecord], None] | None = None

    # ---- readiness ------------------------------------------------------------------------------------
    @property
    def synced(self) -> bool:
        return self.nodes_synced and self.pods_synced

    # ---- nodes --------------------------------------------------------------------------------------------
    def _read_node(self, obj: Mapping[str, Any]) -> NodeInfo | None:
        name = str((obj.get("metadata") or {}).get("name", ""))
        with self.lock:  # informer threads: the node's and the slices' (re-entrant under _reread)
            self._raw_nodes[name] = _trimmed(obj)
            slices = [self._slices[s] for s in self._slices_by_node.get(name, ())]
        if slices:
            obj = node_with_dra_gpus(obj, slices)
        try:
            return node_info_from_k8s(obj, self.catalog)
        except NodeReadError as exc:
            self.stats.unreadable["node"] = self.stats.unreadable.get("node", 0) + 1
            log.warning("ignoring unreadable node: %s", exc)
            return None

    def replace_nodes(self, objs: Iterable[Mapping[str, Any]]) -> None:
        """A fresh list of all Nodes (initial list, or a relist after the watch fell behind)."""
        infos: dict[str, NodeInfo] = {}
        seen: set[str] = set()
        count = 0
        for obj in objs:
            count += 1
            seen.add(str((obj.get("metadata") or {}).get("name", "")))
            info = self._read_node(obj)
            if info is not None:
                infos[info.name] = info
        with self.lock:
            for gone in set(self._raw_nodes) - seen:
                del self._raw_nodes[gone]
            if infos != self._nodes:
                self._nodes = infos
                self._rebuild = True
            self._node_count = count
            self.nodes_synced = True

    def upsert_node(self, obj: Mapping[str, Any]) -> None:
        info = self._read_node(obj)
        name = str((obj.get("metadata") or {}).get("name", ""))
        with self.lock:
            old = self._nodes.get(name)
            if info is None:
                if old is not None:
                    del self._nodes[name]
                    self._rebuild = True
                return
            if old != info:
                self._nodes[name] = info
                self._rebuild = True

    def add_node_count(self, delta: int) -> None:
        with self.lock:
            self._node_count = max(0, self._node_count + delta)

    def delete_node(self, name: str) -> None:
        with self.lock:
            self._raw_nodes.pop(name, None)
            if self._nodes.pop(name, None) is not None:
                self._rebuild = True

    # ---- DRA ResourceSlices (GPUs of nodes without allocatable nvidia.com/gpu) ---------------------------
    def replace_slices(self, objs: Iterable[Mapping[str, Any]]) -> None:
        with self.lock:
            touched = set(self._slices_by_node)
            self._slices, self._slices_by_node = {}, {}
            for obj in objs:
                touched |= self._put_slice(obj)
            self._reread(touched)

    def upsert_slice(self, obj: Mapping[str, Any]) -> None:
        with self.lock:
            self._reread(self._drop_slice(obj) | self._put_slice(obj))

    def delete_slice(self, obj: Mapping[str, Any]) -> None:
        with self.lock:
            self._reread(self._drop_slice(obj))

    def _put_slice(self, obj: Mapping[str, Any]) -> set[str]:
        found = read_slice(obj)
        if found is None or not found.node:
            return set()
        self._slices[found.name] = found
        self._slices_by_node.setdefault(found.node, set()).add(found.name)
        return {found.node}

    def _drop_slice(self, obj: Mapping[str, Any]) -> set[str]:
        old = self._slices.pop(str((obj.get("metadata") or {}).get("name", "")), None)
        if old is None:
            return set()
        names = self._slices_by_node.get(old.node, set())
        names.discard(old.name)
        if not names:
            self._slices_by_node.pop(old.node, None)
        return {old.node}

    def _reread(self, nodes: Iterable[str]) -> None:
        for name in nodes:
            raw = self._raw_nodes.get(name)
            if raw is None:
                continue  # the Node is not listed yet; its slices apply when it is
            info = self._read_node(raw)
            if info != self._nodes.get(name):
                if info is None:
                    self._nodes.pop(name, None)
                else:
                    self._nodes[name] = info
                self._rebuild = True

    # ---- DRA ResourceClaims: GPUs that pods hold through claims, not nvidia.com/gpu ---------------------
    def _record_from_claim(self, obj: Mapping[str, Any]) -> PodRecord | None:
        """A claim's allocated NVIDIA GPUs as a record of their own (the pod asks for no nvidia.com/gpu),
        with the GPU indices of the devices in the node's slice, so free blocks are exact."""
        found = read_allocation(obj)
        if found is None:
            return None
        node = found.node or next(
            (s.node for s in self._slices.values() if any(d.pool == found.devices[0][0] for d in s.devices)),
            "",
        )
        if not node:
            return None
        whole = [d.name for n in sorted(self._slices_by_node.get(node, ())) for d in self._slices[n].devices
                 if d.whole_gpu]
        indices = tuple(whole.index(dev) for _, dev in found.devices if dev in whole)
        count = len(found.devices)
        request = PodRequest(f"claim {found.key}", 0, 0, count, MILLI, frozenset(), False)
        gpus = indices if len(indices) == count else None
        return PodRecord("claim:" + found.uid, found.key, node, request, gpus, RecordState.WATCHED,
                         self.clock())

    def replace_claims(self, objs: Iterable[Mapping[str, Any]]) -> None:
        with self.lock:
            fresh = [r for r in (self._record_from_claim(o) for o in objs) if r is not None]
            listed = {r.uid for r in fresh}
            for uid in [u for u in self._pods if u.startswith("claim:") and u not in listed]:
                self._drop(uid)
            for rec in fresh:
                self._put(rec)

    def upsert_claim(self, obj: Mapping[str, Any]) -> None:
        with self.lock:
            rec = self._record_from_claim(obj)
            if rec is None:
                self.delete_claim(obj)
            else:
                self._put(rec)

    def delete_claim(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid") or f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}")
        with self.lock:
            self._drop("claim:" + uid)

    # ---- pods ---------------------------------------------------------------------------------------------
    def _record_from_pod(self, obj: Mapping[str, Any]) -> PodRecord | None:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        node = spec.get("nodeName")
        uid = str(meta.get("uid") or "")
        if not node or not uid or (obj.get("status") or {}).get("phase") in TERMINAL_PHASES:
            return None
        own = self._own.get(uid)  # the extender's own record: the same pod, already read
        try:
            request = own.request if own is not None else pod_request_from_k8s(obj, self.catalog)
        except (SnapshotError, TopologyError, TypeError, AttributeError) as exc:
            self.stats.unreadable["pod"] = self.stats.unreadable.get("pod", 0) + 1
            log.warning("ignoring unreadable pod %s/%s: %s", meta.get("namespace"), meta.get("name"), exc)
            return None
        gpus = _parse_gpus((meta.get("annotations") or {}).get(GPUS_ANNOTATION), request.num_gpu)
        return PodRecord(uid, f"{meta.get('namespace') or 'default'}/{meta.get('name')}", str(node), request,
                         gpus if request.num_gpu else (), RecordState.WATCHED, self.clock(), _group_key(meta))

    def replace_pods(self, objs: Iterable[Mapping[str, Any]], started_at: float) -> None:
        """A fresh list of bound pods. The extender's own records survive if they are newer than the
        list (`started_at`, clock() when the list request went out); older ones the list does not show
        belong to pods that are gone."""
        fresh = [r for r in (self._record_from_pod(o) for o in objs) if r is not None]
        with self.lock:
            listed = {r.uid for r in fresh}
            for uid, rec in list(self._pods.items()):
                if uid in listed:
                    continue
                if rec.state is RecordState.WATCHED or (rec.state is RecordState.ASSUMED
                                                         and rec.since < started_at):
                    self._drop(uid)
            for rec in fresh:
                self._put(self._merge(rec))
            self.pods_synced = True

    def upsert_pod(self, obj: Mapping[str, Any]) -> None:
        rec = self._record_from_pod(obj)
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        with self.lock:
            if rec is None:
                old = self._pods.get(uid)
                # Unbound or finished. Keep the extender's own records of a pod not bound yet.
                if old is not None and (old.state is RecordState.WATCHED
                                        or (obj.get("status") or {}).get("phase") in TERMINAL_PHASES):
                    self._drop(uid)
                return
            self._put(self._merge(rec))

    def delete_pod(self, obj: Mapping[str, Any]) -> None:
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        with self.lock:
            self._drop(uid)

    def _merge(self, rec: PodRecord) -> PodRecord:
        """A watched record keeps the GPUs the extender chose when the pod carries none (yet)."""
        old = self._pods.get(rec.uid)
        if rec.gpus is None and old is not None and old.node == rec.node and old.gpus:
            rec.gpus = old.gpus
        return rec

    def _put(self, rec: PodRecord) -> None:
        old = self._pods.get(rec.uid)
        if old is not None:
            if (old.node == rec.node and old.gpus == rec.gpus and old.request == rec.request
                    and old.group == rec.group):
                # Same placement (e.g. nominated -> assumed -> watched): only the state changes, the
                # node's row stays as it is.
                if old.state is not rec.state or rec.state is not RecordState.WATCHED:
                    old.since = rec.since
                old.state = rec.state
                if rec.state is RecordState.WATCHED:
                    self._own.pop(rec.uid, None)
                else:
                    self._own[rec.uid] = old
                return
            self._drop(rec.uid)
        self._pods[rec.uid] = rec
        if rec.state is not RecordState.WATCHED:
            self._own[rec.uid] = rec
        self._by_node.setdefault(rec.node, set()).add(rec.uid)
        if rec.request.num_gpu:
            self._gpu_pods[rec.node] = self._gpu_pods.get(rec.node, 0) + 1
        if rec.group:
            self._groups.setdefault(rec.group, set()).add(rec.uid)
        self._dirty.add(rec.node)

    def _drop(self, uid: str) -> PodRecord | None:
        rec = self._pods.pop(uid, None)
        if rec is None:
            return None
        self._own.pop(uid, None)
        on = self._by_node.get(rec.node)
        if on is not None:
            on.discard(uid)
            if not on:
                del self._by_node[rec.node]
        if rec.request.num_gpu:
            left = self._gpu_pods.get(rec.node, 0) - 1
            if left > 0:
                self._gpu_pods[rec.node] = left
            else:
                self._gpu_pods.pop(rec.node, None)
        if rec.group:
            members = self._groups.get(rec.group)
            if members is not None:
                members.discard(uid)
                if not members:
                    del self._groups[rec.group]
        self._dirty.add(rec.node)
        return rec

    # ---- the extender's own decisions ------------------------------------------------------------------
    def view_table(self) -> NodeTable | None:
        """The node table as of the last view (no refresh; hold the lock)."""
        return self._table

    def record(self, uid: str) -> PodRecord | None:
        with self.lock:
            return self._pods.get(uid)

    def nominate(self, uid: str, key: str, node: str, request: PodRequest, gpus: tuple[int, ...],
                 group: str | None) -> None:
        """Hold the GPUs kube-scheduler is about to bind the pod to (never over a watched record)."""
        with self.lock:
            old = self._pods.get(uid)
            if old is not None and old.state is not RecordState.NOMINATED:
                return
            self._put(PodRecord(uid, key, node, request, gpus, RecordState.NOMINATED, self.clock(), group))

    def assume(self, uid: str, key: str, node: str, request: PodRequest, gpus: tuple[int, ...],
               group: str | None) -> None:
        """Hold the GPUs of a bind in flight (and after it, until the watch shows the pod bound)."""
        with self.lock:
            old = self._pods.get(uid)
            if old is not None and old.state is RecordState.WATCHED and old.node == node:
                return
            self._put(PodRecord(uid, key, node, request, gpus, RecordState.ASSUMED, self.clock(), group))

    def forget(self, uid: str, *states: RecordState) -> PodRecord | None:
        """Drop the pod's record if it is in one of `states` (all states when none given)."""
        with self.lock:
            rec = self._pods.get(uid)
            if rec is None or (states and rec.state not in states):
                return None
            return self._drop(uid)

    def _group_placement(self, group: str | None, exclude_uid: str = "") -> GroupPlacement:
        if not group:
            return GroupPlacement()
        members = [self._pods[u] for u in self._groups.get(group, ()) if u != exclude_uid]
        if not members or self._table is None:
            return GroupPlacement(members=len(members))
        cliques = set()
        for m in members:
            row = self._table.row.get(m.node)
            if row is not None and self._table.clique_id[row] >= 0:
                cliques.add(int(self._table.clique_id[row]))
        return GroupPlacement(len(members), frozenset(cliques))

    # ---- the view ------------------------------------------------------------------------------------------
    @contextmanager
    def view(self) -> Iterator[View]:
        """The up-to-date Cluster and NodeTable, with the lock held for the block."""
        with self.lock:
            self._expire()
            # A node set that keeps changing (autoscaler adding nodes one by one) rebuilds the Cluster
            # at most once per interval; meanwhile new nodes count as unknown (the scheduler retries).
            if self._rebuild and (self._cluster is None
                                  or self.clock() - self._rebuilt_at >= self.min_rebuild_interval_s):
                self._rebuild_cluster()
            if self._dirty:
                self._refresh_rows()
            yield View(self._cluster, self._table, self._generation, self, self._free)

    def _expire(self) -> None:
        now = self.clock()
        for uid, rec in list(self._own.items()):
            ttl = {RecordState.NOMINATED: self.nomination_ttl_s,
                   RecordState.ASSUMED: self.assumed_ttl_s}.get(rec.state)
            if ttl is not None and now - rec.since > ttl:
                self._drop(uid)
                self.stats.expired += 1
                log.info("%s record of %s on %s lapsed after %.0fs without the watch confirming it",
                         rec.state.value, rec.key, rec.node, now - rec.since)
                if self.on_expired is not None:
                    self.on_expired(rec)

    def _rebuild_cluster(self) -> None:
        infos = [self._nodes[n] for n in sorted(self._nodes)]
        self._table = NodeTable(infos) if infos else None
        self._cluster = self._table.cluster() if self._table is not None else None
        self._free = FreeSummary.of(self._cluster) if self._cluster is not None else None
        self._generation += 1
        self._rebuild = False
        self._rebuilt_at = self.clock()
        self.stats.rebuilds += 1
        self._dirty = set(self._by_node) | set(self._nodes)

    def _refresh_rows(self) -> None:
        cluster, table = self._cluster, self._table
        dirty, self._dirty = self._dirty, set()
        if cluster is None or table is None:
            return
        for name in dirty:
            row = table.row.get(name)
            if row is None:
                continue
            info = table.infos[row]
            used = np.zeros(info.gpu_count, dtype=np.int64)
            cpu = mem = 0
            later: list[PodRecord] = []
            for uid in self._by_node.get(name, ()):
                rec = self._pods[uid]
                cpu += rec.request.cpu_milli
                mem += rec.request.memory_mib
                k = rec.request.num_gpu
                if not k:
                    continue
                gpus = rec.gpus
                if gpus and all(0 <= g < info.gpu_count for g in gpus):
                    used[list(gpus)] += rec.request.gpu_milli
                else:
                    later.append(rec)
            for rec in sorted(later, key=lambda r: r.key):
                free = np.flatnonzero(used + rec.request.gpu_milli <= MILLI)[: rec.request.num_gpu]
                if len(free) < rec.request.num_gpu:  # overcommitted as far as we can tell: count it anyway
                    free = np.argsort(used, kind="stable")[: rec.request.num_gpu]
                used[free] += rec.request.gpu_milli
            cluster.gpu_free[row, : info.gpu_count] = np.clip(MILLI - used, 0, MILLI)
            if self._free is not None:
                whole = used == 0
                self._free.whole[row] = int(whole.sum())
                size = info.domain_size
                blocks = (int(whole[s:s + size].sum()) for s in range(0, info.gpu_count, size))
                self._free.block[row] = max(blocks, default=0)
            cluster.cpu_free[row] = max(0, int(cluster.cpu_total[row]) - cpu)
            cluster.mem_free[row] = max(0, int(cluster.mem_total[row]) - mem)
            cluster.version[row] += 1

    # ---- read-only summaries (metrics, logs) ------------------------------------------------------------
    def gpu_pods_per_node(self) -> dict[str, int]:
        """GPU pods per node (nodes without any left out), kept as pods come and go."""
        with self.lock:
            return dict(self._gpu_pods)

    def counts(self) -> CacheStats:
        with self.lock:
            states = [r.state for r in self._own.values()]
            self.stats.nodes = self._node_count
            self.stats.gpu_nodes = len(self._nodes)
            self.stats.pods = len(self._pods)
            self.stats.assumed = states.count(RecordState.ASSUMED)
            self.stats.nominated = states.count(RecordState.NOMINATED)
            return self.stats
