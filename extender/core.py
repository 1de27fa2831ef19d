"""What the three verbs share: the cache, the policy, what pods need, metrics, and the binder."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from extender.cache.cluster_cache import ClusterCache, View
from extender.metrics import ExtenderMetrics
from placement.checks.settings import CheckContext
from placement.findings import Finding
from placement.node_topology import NodeTable
from placement.planner.snapshot import SnapshotError, pod_request_from_k8s
from placement.scheduling import PodNeeds, PolicyHolder, RequirementsCache, pod_needs
from placement.topology import FloatArray, IntArray, TopologyError

log = logging.getLogger("gpuplace.extender")


class Binder(Protocol):
    """Creates the pods/binding (with annotations) in the API server; raises BindError on failure."""

    async def bind(self, namespace: str, name: str, uid: str, node: str,
                   annotations: Mapping[str, str]) -> None: ...

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def close(self) -> None: ...


class BindError(Exception):
    """The API server refused or failed the binding; the message is the server's reason."""


@dataclass
class Settings:
    nomination_ttl_s: float = 30.0
    assumed_ttl_s: float = 300.0
    bind_timeout_s: float = 4.0
    shortlist: int = 1  # /filter offers the best N fitting nodes (0: every fitting node)


class _RowCache:
    """Node names -> table rows for the last few lists seen. kube-scheduler sends the same list of all
    nodes in the same order pod after pod (percentageOfNodesToScore: 100), so /filter usually hits."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._entries: list[tuple[int, list[str], IntArray]] = []

    def rows(self, generation: int, table: NodeTable | None, names: list[str]) -> IntArray:
        for gen, cached, rows in self._entries:
            if gen == generation and len(cached) == len(names) and cached == names:
                return rows
        rows = table.rows_of(names) if table is not None else np.full(len(names), -1, dtype=np.int64)
        self._entries.insert(0, (generation, names, rows))
        del self._entries[self.size:]
        return rows


class Extender:
    """The extender's state. Handlers run on one event loop thread; the cache is shared with the
    informer threads through its lock."""

    def __init__(self, cache: ClusterCache, ctx: CheckContext, policy: PolicyHolder,
                 metrics: ExtenderMetrics | None = None, binder: Binder | None = None,
                 settings: Settings | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.cache = cache
        self.ctx = ctx
        self.policy = policy
        self.metrics = metrics or ExtenderMetrics()
        self.binder = binder
        self.settings = settings or Settings()
        self.clock = clock
        self.requirements = RequirementsCache()
        self._needs: OrderedDict[str, tuple[str, PodNeeds]] = OrderedDict()  # uid -> (resourceVersion, needs)
        self._notes: OrderedDict[str, Finding] = OrderedDict()  # uid -> finding to report once bound
        self._rows = _RowCache()
        self._passed: tuple[str, int, list[str], IntArray, FloatArray | None] | None = None
        self.health_checks: list[Callable[[], str | None]] = []  # each: None when healthy, else the problem

    # ---- what pods need --------------------------------------------------------------------------------
    def needs_for(self, pod: Mapping[str, Any]) -> PodNeeds:
        meta = pod.get("metadata") or {}
        uid, rv = str(meta.get("uid") or ""), str(meta.get("resourceVersion") or "")
        hit = self._needs.get(uid) if uid else None
        if hit is not None and hit[0] == rv:
            self._needs.move_to_end(uid)
            return hit[1]
        needs = pod_needs(pod, self.ctx, self.requirements)
        if uid:
            self._needs[uid] = (rv, needs)
            if len(self._needs) > 8192:
                self._needs.popitem(last=False)
        return needs

    def known_needs(self, uid: str) -> PodNeeds | None:
        hit = self._needs.get(uid)
        return hit[1] if hit is not None else None

    def note(self, uid: str, finding: Finding | None) -> None:
        """A finding to report when (if) the pod gets bound (tier-misplacement)."""
        if finding is None:
            self._notes.pop(uid, None)
            return
        self._notes[uid] = finding
        if len(self._notes) > 4096:
            self._notes.popitem(last=False)

    def take_note(self, uid: str) -> Finding | None:
        return self._notes.pop(uid, None)

    def report(self, finding: Finding) -> None:
        """Log a finding (one line) and count it."""
        severity = self.ctx.settings.severity_overrides.get(finding.code.value, finding.effective_severity)
        self.metrics.findings.labels(finding.code.value, severity.value).inc()
        log.info("%s", finding.message)

    # ---- shapes -----------------------------------------------------------------------------------------
    def observe_bound(self, pod: Mapping[str, Any]) -> None:
        """A pod got bound (by anyone): its GPU shape joins the recent shapes the policy packs for."""
        try:
            request = pod_request_from_k8s(pod, self.ctx.gpus)
        except (SnapshotError, TopologyError, TypeError, AttributeError):
            return
        self.policy.observe(request)

    # ---- rows ---------------------------------------------------------------------------------------------
    def rows_for(self, view: View, names: Sequence[str], uid: str = "") -> IntArray:
        """Table rows of the names. /prioritize gets the names /filter just passed for the same pod;
        their rows are reused then."""
        last = self._passed
        if uid and last is not None and last[0] == uid and last[1] == view.generation and last[2] == names:
            return last[3]
        return self._rows.rows(view.generation, view.table, list(names))

    def remember_passed(self, uid: str, generation: int, names: list[str], rows: IntArray,
                        values: FloatArray | None = None) -> None:
        """What /filter offered for the pod, with its ranking values when it ranked them."""
        self._passed = (uid, generation, names, rows, values) if uid else None

    def ranked_by_filter(self, view: View, uid: str,
                         names: Sequence[str]) -> tuple[IntArray, FloatArray] | None:
        """(rows, ranking values) when /filter just ranked exactly these nodes for this pod."""
        last = self._passed
        if (uid and last is not None and last[4] is not None and last[0] == uid and last[1] == view.generation
                and last[2] == names):
            return last[3], last[4]
        return None

    # ---- health -----------------------------------------------------------------------------------------
    def problems(self) -> list[str]:
        return [p for p in (check() for check in self.health_checks) if p]

    def readiness(self) -> str | None:
        """None when ready to serve, else why not."""
        if not self.cache.synced:
            return (f"cluster cache not synced (nodes listed: {self.cache.nodes_synced}, "
                    f"pods listed: {self.cache.pods_synced})")
        return None
