"""`gpuplace scan` end to end on a fake API server: table and JSON output, --report applies the reports
(server-side apply, the only writes), --fail-on, and an unreachable cluster as a usage error."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

import gpuplace.commands.scan as command
from gpuplace.cli import main
from scan.collect import ClusterUnreachable
from tests.scan.objects import node, oom_status, pod

OBJECTS = {"/api/v1/nodes": [node("busy"), node("dark")],
           "/api/v1/pods": [pod("crashy", node_name="busy", statuses=oom_status())]}


class FakeKube:
    writes: ClassVar[list[tuple[str, str, str]]] = []

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        FakeKube.writes = []

    def get(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        return {"items": [dict(o) for o in OBJECTS.get(path, [])]}

    def request(self, method: str, path: str, query: list[tuple[str, str]] | None = None, body: Any = None,
                content_type: str = "application/json") -> dict[str, Any]:
        if method == "GET":
            return {"items": []}
        FakeKube.writes.append((method, path, content_type))
        return {}


@pytest.fixture(autouse=True)
def fake_kube(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command, "KubeApi", FakeKube)


def test_table_lists_workloads_findings_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "-q"]) == 0
    out = capsys.readouterr().out
    assert "pod/crashy" in out and "gpuplace[observed-oom]" in out and "gpuplace[dark-capacity]" in out
    assert "GPU spend:" in out and "dark-capacity" in out.split("COST")[1]
    assert FakeKube.writes == []  # read-only without --report


def test_json_output_has_workloads_cluster_findings_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    main(["scan", "-q", "-o", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert [w["name"] for w in doc["workloads"]] == ["crashy"]
    assert [f["code"] for f in doc["cluster_findings"]] == ["dark-capacity"]
    assert doc["cost"]["waste_per_day"]["dark-capacity"] > 0


def test_report_applies_one_policy_report_per_namespace_and_the_cluster_report(
        capsys: pytest.CaptureFixture[str]) -> None:
    main(["scan", "-q", "--report"])
    assert FakeKube.writes == [
        ("PATCH", "/apis/wgpolicyk8s.io/v1alpha2/namespaces/ml/policyreports/gpuplace-scan",
         "application/apply-patch+yaml"),
        ("PATCH", "/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports/gpuplace-scan",
         "application/apply-patch+yaml")]
    assert "wrote 2 reports" in capsys.readouterr().out


def test_fail_on_error_exits_1_for_an_observed_oom() -> None:
    assert main(["scan", "-q", "--fail-on", "error"]) == 1


def test_unreachable_cluster_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(*_: Any) -> None:
        raise ClusterUnreachable("no usable Kubernetes credentials: none")

    monkeypatch.setattr(command, "KubeApi", refuse)
    assert main(["scan", "-q"]) == 2
    assert "cannot reach a cluster" in capsys.readouterr().err


def test_bad_window_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--window", "soon"]) == 2
