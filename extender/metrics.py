"""Prometheus metrics of the extender (names prefixed `gpuplace_`, design.md "Operations").

Request metrics are updated as requests are served. The cluster figures are computed when /metrics is
scraped, from a copy of the cache's arrays taken under its lock (so a scrape never holds up /filter):

| metric | what |
|---|---|
| `gpuplace_extender_requests_total{verb,outcome}` | requests per verb and outcome |
| `gpuplace_extender_request_duration_seconds{verb}` | latency per verb, as the extender serves it |
| `gpuplace_extender_binds_total{outcome}` | binds by outcome |
| `gpuplace_extender_bind_api_duration_seconds` | the pods/binding API call |
| `gpuplace_extender_refused_nodes_total{reason}` | nodes filtered out, by rule |
| `gpuplace_extender_refused_pods_total{reason}` | pods left with no node, by the rule refusing most |
| `gpuplace_extender_decisions_total{tier}` | pods bound, by GPU tier |
| `gpuplace_findings_total{code,severity}` | findings raised (fragmentation, tier-misplacement) |
| `gpuplace_extender_watch_restarts_total{resource,reason}` | watch restarts (gone: relist; error: backoff) |
| `gpuplace_extender_cache_{synced,nodes,gpu_nodes,pods,assumed_pods,nominated_pods}` | cache state |
| `gpuplace_cluster_gpus{tier}`, `gpuplace_cluster_free_gpus{tier}` | GPUs, whole free GPUs, per tier |
| `gpuplace_cluster_largest_free_block_gpus{tier}` | most free GPUs in one NVLink domain, per tier |
| `gpuplace_cluster_stranded_gpus` | free GPUs on nodes where no recent pod shape fits |
| `gpuplace_cluster_fragmentation_ratio` | share of free capacity fragmented for recent shapes |
| `gpuplace_cluster_dark_nodes{tier}`, `gpuplace_cluster_dark_gpus{tier}` | GPU nodes with no GPU pod |
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from extender.cache.cluster_cache import ClusterCache
from placement.fragmentation import ShapeDistribution, frag_ratio, stranded_gpus
from placement.topology import MILLI, Cluster

log = logging.getLogger("gpuplace.extender.metrics")

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ExtenderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("gpuplace_extender_requests", "Extender requests by verb and outcome",
                                ["verb", "outcome"], registry=r)
        self.latency = Histogram("gpuplace_extender_request_duration_seconds",
                                 "Time to serve an extender request", ["verb"], buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.binds = Counter("gpuplace_extender_binds", "Binds by outcome", ["outcome"], registry=r)
        self.bind_api = Histogram("gpuplace_extender_bind_api_duration_seconds",
                                  "Time of the pods/binding API call", buckets=LATENCY_BUCKETS, registry=r)
        self.refused_nodes = Counter("gpuplace_extender_refused_nodes", "Nodes filtered out, by rule",
                                     ["reason"], registry=r)
        self.refused_pods = Counter("gpuplace_extender_refused_pods",
                                    "Pods the filter left with no node, by the rule that refused most nodes",
                                    ["reason"], registry=r)
        self.decisions = Counter("gpuplace_extender_decisions", "Pods bound by the extender, by GPU tier",
                                 ["tier"], registry=r)
        self.findings = Counter("gpuplace_findings", "Findings raised, by code and severity",
                                ["code", "severity"], registry=r)
        self.watch_restarts = Counter("gpuplace_extender_watch_restarts",
                                      "Watch restarts by resource and reason", ["resource", "reason"],
                                      registry=r)

    def register_cluster(self, cache: ClusterCache, shapes: Callable[[], ShapeDistribution]) -> None:
        self.registry.register(ClusterCollector(cache, shapes))


class ClusterCollector(Collector):
    def __init__(self, cache: ClusterCache, shapes: Callable[[], ShapeDistribution]) -> None:
        self.cache = cache
        self.shapes = shapes

    def describe(self) -> Iterator[Metric]:
        return iter(())  # computed at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        stats = self.cache.counts()
        yield _gauge("gpuplace_extender_cache_synced", "1 once Nodes and Pods are listed", 1.0 if
                     self.cache.synced else 0.0)
        yield _gauge("gpuplace_extender_cache_nodes", "Nodes in the cluster", stats.nodes)
        yield _gauge("gpuplace_extender_cache_gpu_nodes", "Nodes with allocatable GPUs", stats.gpu_nodes)
        yield _gauge("gpuplace_extender_cache_pods",
                     "Bound pods the cache holds (incl. assumed, nominated)", stats.pods)
        yield _gauge("gpuplace_extender_cache_assumed_pods", "Binds the watch has not shown yet",
                     stats.assumed)
        yield _gauge("gpuplace_extender_cache_nominated_pods", "Pods with a node picked, not bound yet",
                     stats.nominated)
        snap = self._snapshot()
        if snap is None:
            return
        cluster, tiers, dark = snap
        yield from cluster_families(cluster, tiers, dark, self.shapes())

    def _snapshot(self) -> tuple[Cluster, list[str], np.ndarray] | None:
        gpu_pods = self.cache.gpu_pods_per_node()
        with self.cache.view() as view:
            if view.cluster is None or view.table is None:
                return None
            cluster = copy.copy(view.cluster)
            for name in ("gpu_free", "cpu_free", "mem_free", "version"):
                setattr(cluster, name, getattr(view.cluster, name).copy())
            tiers = [i.model for i in view.table.infos]
            dark = np.array([gpu_pods.get(n, 0) == 0 for n in view.table.names], dtype=bool)
        return cluster, tiers, dark


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def cluster_families(cluster: Cluster, tiers: list[str], dark: np.ndarray,
                     shapes: ShapeDistribution) -> Iterator[Metric]:
    """The cluster gauges for one snapshot (see the module docstring)."""
    tier_arr = np.array(tiers)
    whole = cluster.whole_free()
    block = cluster.largest_free_block()
    gpus = GaugeMetricFamily("gpuplace_cluster_gpus", "GPUs per tier", labels=["tier"])
    free = GaugeMetricFamily("gpuplace_cluster_free_gpus", "Whole free GPUs per tier", labels=["tier"])
    largest = GaugeMetricFamily("gpuplace_cluster_largest_free_block_gpus",
                                "Most free GPUs in one NVLink domain, per tier", labels=["tier"])
    dark_nodes = GaugeMetricFamily("gpuplace_cluster_dark_nodes", "GPU nodes with no GPU pod",
                                   labels=["tier"])
    dark_gpus = GaugeMetricFamily("gpuplace_cluster_dark_gpus", "GPUs on nodes with no GPU pod",
                                  labels=["tier"])
    for tier in sorted(set(tiers)):
        sel = tier_arr == tier
        gpus.add_metric([tier], float(cluster.gpu_count[sel].sum()))
        free.add_metric([tier], float(whole[sel].sum()))
        largest.add_metric([tier], float(block[sel].max()) if sel.any() else 0.0)
        dark_nodes.add_metric([tier], float((dark & sel).sum()))
        dark_gpus.add_metric([tier], float(cluster.gpu_count[dark & sel].sum()))
    yield from (gpus, free, largest, dark_nodes, dark_gpus)
    try:
        stranded = stranded_gpus(cluster, shapes)
        ratio = frag_ratio(cluster, shapes, domain_aware=True)
    except (ValueError, ZeroDivisionError):  # an empty distribution or cluster: nothing to report
        log.debug("fragmentation figures unavailable", exc_info=True)
        return
    yield _gauge("gpuplace_cluster_stranded_gpus",
                 "Free GPUs on nodes where no recent pod shape fits", stranded)
    yield _gauge("gpuplace_cluster_fragmentation_ratio",
                 "Share of free GPU capacity fragmented for recent pod shapes (NVLink aware)", ratio)
    yield _gauge("gpuplace_cluster_free_gpu_capacity", "Free GPU capacity in GPUs (shares included)",
                 float(cluster.gpu_free.sum()) / MILLI)
