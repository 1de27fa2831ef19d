"""PolicyReports in the wgpolicyk8s.io/v1alpha2 shape: one per namespace, a ClusterPolicyReport for
nodes, results with policy/rule/result/severity/message/resources/properties, and a matching summary."""

from __future__ import annotations

from datetime import timedelta

from placement.checks import CheckContext
from scan.cost import Prices
from scan.inventory import Inventory
from scan.report import policy_reports
from scan.scanner import scan
from tests.scan.objects import NOW, node, oom_status, pod

CTX = CheckContext.default()
RESULTS = {"pass", "fail", "warn", "error", "skip"}
SEVERITIES = {"critical", "high", "medium", "low", "info"}


def reports() -> list[dict]:
    objs = [node("busy"), node("dark"), pod("crashy", node_name="busy", statuses=oom_status()),
            pod("fine", ns="other", node_name="busy", model="meta-llama/Llama-3.1-70B-Instruct", gpus=2,
                age=timedelta(hours=1))]
    result = scan(Inventory.from_objects(objs, now=NOW), CTX, Prices(CTX.gpus))
    return policy_reports(result, NOW)


def test_one_policy_report_per_namespace_and_a_cluster_report_for_nodes() -> None:
    out = reports()
    assert [(r["kind"], r["metadata"].get("namespace")) for r in out] == [
        ("PolicyReport", "ml"), ("PolicyReport", "other"), ("ClusterPolicyReport", None)]
    assert all(r["apiVersion"] == "wgpolicyk8s.io/v1alpha2" and r["metadata"]["name"] == "gpuplace-scan"
               for r in out)
    cluster = out[-1]
    assert [r["rule"] for r in cluster["results"]] == ["dark-capacity"]
    assert cluster["results"][0]["resources"] == [{"apiVersion": "v1", "kind": "Node", "name": "dark"}]


def test_results_use_the_apis_enums_and_string_properties_and_the_summary_counts_them() -> None:
    for report in reports():
        counts = dict.fromkeys(RESULTS, 0)
        for r in report["results"]:
            assert r["policy"] == "gpuplace" and r["result"] in RESULTS and r["severity"] in SEVERITIES
            assert r["message"].startswith("gpuplace[") or r["result"] == "pass"
            assert all(isinstance(v, str) for v in (r.get("properties") or {}).values())
            assert set(r["timestamp"]) == {"seconds", "nanos"}
            counts[r["result"]] += 1
        assert report["summary"] == counts


def test_an_observed_oom_is_a_failing_high_severity_result() -> None:
    ml = reports()[0]
    (oom,) = [r for r in ml["results"] if r["rule"] == "observed-oom"]
    assert (oom["result"], oom["severity"]) == ("fail", "high")
    assert oom["resources"][0]["kind"] == "Pod" and oom["properties"]["memory_verdict"] == "fits"


def test_a_workload_without_findings_is_one_pass_result_so_the_summary_counts_it() -> None:
    qwen = pod("qwen", node_name="l4", product="NVIDIA-L4", model="Qwen/Qwen2.5-7B-Instruct")
    qwen["spec"]["containers"][0]["command"] += ["--max-model-len", "8192"]
    objs = [node("l4", product="NVIDIA-L4", gpus=1), qwen]
    result = scan(Inventory.from_objects(objs, now=NOW), CTX, Prices(CTX.gpus))
    assert result.workloads[0].findings == []
    (ml, _cluster) = policy_reports(result, NOW)
    assert [(r["rule"], r["result"]) for r in ml["results"]] == [("gpu-workload", "pass")]
    assert ml["summary"]["pass"] == 1
