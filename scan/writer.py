"""`--report`: write the PolicyReports and the ClusterPolicyReport, the scan's only writes.

Server-side apply (one PATCH per report, field manager `gpuplace-scan`, forced: the reports are
gpuplace's own), then the reports gpuplace wrote before that this scan no longer has (a namespace
whose GPU workloads are gone) are deleted, found by their `app.kubernetes.io/managed-by` label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from scan.collect import ApiError
from scan.report import API_VERSION, LABELS, REPORT_NAME

FIELD_MANAGER = "gpuplace-scan"
APPLY = "application/apply-patch+yaml"  # JSON is YAML: the body is the report as JSON


class Api(Protocol):
    def request(self, method: str, path: str, query: list[tuple[str, str]] | None = None,
                body: Any = None, content_type: str = "application/json") -> dict[str, Any]: ...


def _path(report: dict[str, Any]) -> str:
    ns = report["metadata"].get("namespace")
    base = f"/apis/{API_VERSION}"
    if ns:
        return f"{base}/namespaces/{ns}/policyreports/{report['metadata']['name']}"
    return f"{base}/clusterpolicyreports/{report['metadata']['name']}"


def write_reports(api: Api, reports: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Apply every report; returns (written as ns/name or name, problems said once each)."""
    written, problems = [], []
    for report in reports:
        where = "/".join(filter(None, (report["metadata"].get("namespace"), report["metadata"]["name"])))
        try:
            api.request("PATCH", _path(report), [("fieldManager", FIELD_MANAGER), ("force", "true")],
                        json.dumps(report), APPLY)
            written.append(f"{report['kind']} {where}")
        except ApiError as exc:
            hint = " (is the wgpolicyk8s.io PolicyReport CRD installed?)" if exc.status == 404 else ""
            problems.append(f"{report['kind']} {where}: {exc}{hint}")
    problems.extend(_delete_stale(api, reports))
    return written, problems


def _delete_stale(api: Api, reports: Sequence[dict[str, Any]]) -> list[str]:
    keep = {report["metadata"].get("namespace") for report in reports if report["kind"] == "PolicyReport"}
    selector = ",".join(f"{k}={v}" for k, v in LABELS.items())
    try:
        listed = api.request("GET", f"/apis/{API_VERSION}/policyreports", [("labelSelector", selector)])
    except ApiError as exc:
        return [] if exc.status in (403, 404) else [f"old PolicyReports not cleaned up: {exc}"]
    problems = []
    for item in listed.get("items") or []:
        meta = item.get("metadata") or {}
        if meta.get("name") != REPORT_NAME or meta.get("namespace") in keep:
            continue
        try:
            api.request("DELETE", f"/apis/{API_VERSION}/namespaces/{meta['namespace']}/policyreports/"
                        f"{REPORT_NAME}")
        except ApiError as exc:
            problems.append(f"stale PolicyReport {meta.get('namespace')}/{REPORT_NAME}: {exc}")
    return problems
