"""The scan's RBAC is least privilege and matches what it reads: every kind scan/collect.py lists is
granted `list`, nothing else is readable, the only writes are the PolicyReports, and the chart's
ClusterRole grants the same as manifests/scan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from scan.collect import KINDS
from tests.chart import by_key, render

REPO = Path(__file__).resolve().parents[2]


def manifests() -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((REPO / "manifests" / "scan" / "rbac.yaml").read_text())
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}


def grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"]}


def reads() -> set[tuple[str, str, str]]:
    group = {k: (k.api_version.rpartition("/")[0] if "/" in k.api_version else "") for k in KINDS}
    return {(group[k], k.plural, "list") for k in KINDS} | {("", "namespaces", "list")}


def test_read_role_lists_exactly_what_the_collector_reads() -> None:
    assert grants(manifests()["gpuplace-scan"]) == reads()


def test_the_only_writes_are_gpuplaces_policy_reports() -> None:
    report = grants(manifests()["gpuplace-scan-report"])
    assert {g for g, _, _ in report} == {"wgpolicyk8s.io"}
    assert {r for _, r, _ in report} == {"policyreports", "clusterpolicyreports"}


def test_chart_scan_role_grants_what_the_manifests_grant() -> None:
    docs = by_key(render("scan.enabled=true"))
    chart = grants(docs[("ClusterRole", "", "gpuplace-scan")])
    roles = manifests()
    assert chart == grants(roles["gpuplace-scan"]) | grants(roles["gpuplace-scan-report"])
    without_report = by_key(render("scan.enabled=true", set_json=('scan.args=["scan"]',)))
    assert grants(without_report[("ClusterRole", "", "gpuplace-scan")]) == grants(roles["gpuplace-scan"])
