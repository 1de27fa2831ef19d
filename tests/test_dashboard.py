"""The Grafana dashboard (charts/gpuplace/dashboards/gpuplace.json) queries only metrics gpuplace exports:
every `gpuplace_*` series a panel names is a sample name of a metric the webhook or the extender
registers (counters as `_total`, histograms as `_bucket`/`_sum`/`_count`), so a renamed metric breaks
this test instead of leaving an empty panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

from extender.metrics import ExtenderMetrics
from webhook.metrics import Metrics

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "charts" / "gpuplace" / "dashboards" / "gpuplace.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
# Gauges computed at scrape time by the extender's ClusterCollector (no registry entry until a cache exists).
COLLECTED = re.compile(r'(?:_gauge|GaugeMetricFamily)\(\s*"(gpuplace_\w+)"')


def exported() -> set[str]:
    names: set[str] = set()
    for registry in (Metrics().registry, ExtenderMetrics().registry):
        for family in registry.collect():
            names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    names.update(COLLECTED.findall((REPO / "extender" / "metrics.py").read_text()))
    return names


def panels() -> list[dict]:
    out = []
    for p in json.loads(DASHBOARD.read_text())["panels"]:
        out.extend([p, *p.get("panels", [])])
    return [p for p in out if p.get("type") != "row"]


def test_every_panel_queries_metrics_gpuplace_exports():
    known = exported()
    for panel in panels():
        used = {m for t in panel["targets"] for m in re.findall(r"gpuplace_\w+", t["expr"])}
        assert used, panel["title"]
        assert used <= known, (panel["title"], sorted(used - known))


def test_dashboard_covers_webhook_extender_and_cluster_metrics():
    used = {m for p in panels() for t in p["targets"] for m in re.findall(r"gpuplace_\w+", t["expr"])}
    for prefix in ("gpuplace_webhook_", "gpuplace_extender_", "gpuplace_cluster_", "gpuplace_findings"):
        assert any(m.startswith(prefix) for m in used), prefix
    # Every cluster gauge the extender exports has a panel.
    cluster = {m for m in exported() if m.startswith("gpuplace_cluster_")}
    assert cluster <= used, sorted(cluster - used)


def test_panels_have_unique_ids_and_fit_the_grid():
    all_panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in all_panels)
