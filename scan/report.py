"""Findings as PolicyReport / ClusterPolicyReport objects (wgpolicyk8s.io/v1alpha2), the shape Kyverno
background scans and Gatekeeper audits write and Policy Reporter dashboards read.

One PolicyReport per namespace (named `gpuplace-scan`) holds the findings about its workloads and pods,
plus one `pass` result per GPU workload with no finding, so the summary counts the good ones too; one
ClusterPolicyReport (`gpuplace-scan`) holds the findings about nodes. Field names are those of the
wg-policy API types (policy-report/apis/wgpolicyk8s.io/v1alpha2): result pass|fail|warn|error|skip,
severity critical|high|medium|low|info, properties a map of strings, timestamp {seconds, nanos}.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from placement.findings import Code, Finding, ObjectRef, Severity
from scan.scanner import ScanResult, WorkloadReport

API_VERSION = "wgpolicyk8s.io/v1alpha2"
REPORT_NAME = "gpuplace-scan"
POLICY = "gpuplace"
SOURCE = "gpuplace"
CATEGORY = "GPU placement"
LABELS = {"app.kubernetes.io/managed-by": "gpuplace", "app.kubernetes.io/component": "scan"}
SEVERITY = {Severity.ERROR: "high", Severity.WARNING: "medium", Severity.INFO: "info"}
RESULT = {Severity.ERROR: "fail", Severity.WARNING: "warn", Severity.INFO: "warn"}
API_OF_KIND = {
    "Deployment": "apps/v1", "StatefulSet": "apps/v1", "ReplicaSet": "apps/v1", "Job": "batch/v1",
    "CronJob": "batch/v1", "Pod": "v1", "Node": "v1", "LeaderWorkerSet": "leaderworkerset.x-k8s.io/v1",
    "InferenceService": "serving.kserve.io/v1beta1", "Service": "serving.knative.dev/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2", "ScaledObject": "keda.sh/v1alpha1",
}


def result_entry(f: Finding, now: datetime) -> dict[str, Any]:
    sev = f.effective_severity
    # unknown-model: gpuplace could not judge the workload, which the API calls a skip.
    outcome = "skip" if f.code == Code.UNKNOWN_MODEL else RESULT[sev]
    return {
        "source": SOURCE, "policy": POLICY, "rule": str(f.code), "category": CATEGORY,
        "result": outcome, "severity": SEVERITY[sev], "scored": True,
        "timestamp": {"seconds": int(now.timestamp()), "nanos": 0},
        "message": f.message, "resources": [resource(f.obj)],
        "properties": properties(f),
    }


def resource(ref: ObjectRef) -> dict[str, str]:
    out = {"apiVersion": API_OF_KIND.get(ref.kind, "v1"), "kind": ref.kind, "name": ref.name}
    if ref.namespace:
        out["namespace"] = ref.namespace
    return out


def properties(f: Finding) -> dict[str, str]:
    """Figures as strings (the API's map[string]string); None figures left out."""
    out = {"severity": f.effective_severity.value}
    if f.container:
        out["container"] = f.container
    for key, value in f.figures.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return out


def _pass_entry(w: WorkloadReport, now: datetime) -> dict[str, Any]:
    return {
        "source": SOURCE, "policy": POLICY, "rule": "gpu-workload", "category": CATEGORY, "result": "pass",
        "severity": "info", "scored": True, "timestamp": {"seconds": int(now.timestamp()), "nanos": 0},
        "message": f"gpuplace: {w.workload.ref.short} has no finding",
        "resources": [resource(w.workload.ref)],
    }


def summary(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0}
    for r in results:
        counts[str(r["result"])] += 1
    return counts


def _report(kind: str, namespace: str | None, results: list[dict[str, Any]]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": REPORT_NAME, "labels": dict(LABELS)}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "summary": summary(results),
            "results": results}


def policy_reports(result: ScanResult, now: datetime) -> list[dict[str, Any]]:
    """PolicyReports per namespace (sorted), then the ClusterPolicyReport."""
    by_ns: dict[str, list[dict[str, Any]]] = {}
    for w in result.workloads:
        entries = [result_entry(f, now) for f in w.findings] or [_pass_entry(w, now)]
        by_ns.setdefault(w.workload.namespace, []).extend(entries)
    reports = [_report("PolicyReport", ns, by_ns[ns]) for ns in sorted(by_ns)]
    cluster = [result_entry(f, now) for f in result.cluster_findings]
    reports.append(_report("ClusterPolicyReport", None, cluster))
    return reports
