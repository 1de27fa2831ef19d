"""`gpuplace plan`: output, exit codes, bad input, and --apply's eviction order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpuplace.cli import main
from gpuplace.commands.plan import apply_plan
from placement.planner.defrag import DefragResult, Move
from tests.planner.k8s import as_list, node, pod


def _ones(prefix: str, on: str, gpus: tuple[int, ...]) -> list[dict[str, Any]]:
    return [pod(f"{prefix}{g}", on, at=(g,)) for g in gpus]


@pytest.fixture
def snapshot_file(tmp_path: Path) -> Path:
    objs = [node("a"), node("b"), *_ones("a", "a", (0, 2, 4)), *_ones("b", "b", (0, 2, 4, 5, 7)),
            pod("big", None, 8, ns="ml")]
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(as_list(*objs)))
    return path


def test_defrag_prints_the_ordered_plan(snapshot_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "defrag", "--snapshot", str(snapshot_file), "--pod", "ml/big"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("gpuplace[fragmentation]: pod/big needs 8 GPUs in one NVLink "
                                          "domain; 8 are free on nodes it may use, at most 5 in one NVLink")
    assert "move 3 pod(s) (cost 3) to open 8 GPUs in one NVLink domain on a" in out
    assert "proven optimal" in out
    assert [line.split(".")[0].strip() for line in out.splitlines()[3:]] == ["1", "2", "3", "4"]
    assert out.splitlines()[-1].strip() == "4. ml/big -> a GPU 0,1,2,3,4,5,6,7"


def test_defrag_json_and_a_hypothetical_pod(snapshot_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "defrag", "--snapshot", str(snapshot_file), "--gpus", "4", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["found"] and doc["status"] == "fits-now" and doc["moves"] == [] and doc["findings"] == []


def test_no_plan_exits_1_with_the_reason(snapshot_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "defrag", "--snapshot", str(snapshot_file), "--gpus", "9"]) == 1
    assert "no plan for 9-gpu-pod: the pod needs 9 GPUs in one NVLink domain" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--pod", "ml/nope"], "--pod ml/nope: no such pod"),
    (["--pod", "default/a0"], "already runs on a"),
    (["--gpus", "8", "--time-limit", "0"], "--time-limit must be positive"),
    (["--gpus", "8", "--apply"], "--apply evicts from the live cluster"),
])
def test_bad_arguments_exit_2_with_one_line(snapshot_file: Path, capsys: pytest.CaptureFixture[str],
                                            args: list[str], message: str) -> None:
    assert main(["plan", "defrag", "--snapshot", str(snapshot_file), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_unreadable_snapshot_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["plan", "batch", "--snapshot", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
    bad.write_text(json.dumps(as_list(node("a"), pod("p", "a", at=(9,)))))
    assert main(["plan", "batch", "--snapshot", str(bad)]) == 2
    assert "GPU 9 outside 0..7 of a" in capsys.readouterr().err


def test_batch_places_pending_pods_from_yaml_and_csv(snapshot_file: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pending = tmp_path / "pending.yaml"
    pending.write_text(yaml.safe_dump_all([pod("j1", None, 2, ns="batch"), pod("j2", None, 1, ns="batch")]))
    args = ["plan", "batch", "--snapshot", str(snapshot_file), "--pending", str(pending), "-o", "json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["placed_milli"] == 3000 and {p["pod"] for p in doc["placements"]} == {"batch/j1", "batch/j2"}
    csv = tmp_path / "pods.csv"
    csv.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\nx,1000,1024,1,500\ny,1000,1024,8,1000\n")
    assert main(["plan", "batch", "--snapshot", str(snapshot_file), "--pending", str(csv)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("placed 0.5 of 8.5 GPUs demanded") and "unplaced: y" in out


class FakeCore:
    """Records evictions; refuses the pods in `refuse` with 429, as a PodDisruptionBudget does."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse, self.calls = refuse, []

    def create_namespaced_pod_eviction(self, name: str, namespace: str, body: Any, **_: Any) -> None:
        from kubernetes.client import ApiException

        assert body.metadata.name == name and body.metadata.namespace == namespace
        self.calls.append(f"{namespace}/{name}")
        if self.calls[-1] in self.refuse:
            raise ApiException(status=429, reason="Too Many Requests")


PLAN = DefragResult("optimal", "", 8, "a", tuple(range(8)), moves=(
    Move("ns/p1", "a", (0,), "b", (1,), 1), Move("ns/p2", "a", (1,), "b", (2,), 1),
    Move("ns/p3", "a", (2,), "b", (3,), 1)))


def test_apply_evicts_in_plan_order_and_stops_at_the_first_refusal(
        capsys: pytest.CaptureFixture[str]) -> None:
    core = FakeCore(set())
    assert apply_plan(PLAN, core) == 0 and core.calls == ["ns/p1", "ns/p2", "ns/p3"]
    refusing = FakeCore({"ns/p2"})
    assert apply_plan(PLAN, refusing) == 1 and refusing.calls == ["ns/p1", "ns/p2"]
    assert "eviction 2/3 of ns/p2 refused: 429" in capsys.readouterr().err
