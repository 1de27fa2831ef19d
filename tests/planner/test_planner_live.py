"""`gpuplace plan` against a real kube-apiserver (tests/harness): reading the live cluster through the
official client, and `--apply` evicting through policy/v1 Eviction in plan order.

Needs the control-plane binaries (`make e2e-binaries`); skips without them, except under CI=true.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpuplace.cli import main
from tests.harness import ControlPlane, find_bin_dir, gpu_pod, missing_binaries

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    bin_dir = find_bin_dir()
    missing = missing_binaries(bin_dir)
    if missing:
        reason = f"control-plane binaries missing ({', '.join(missing)}): make e2e-binaries"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    cp = ControlPlane.start_local(bin_dir, tmp_path_factory.mktemp("planner-cp"))
    try:
        yield cp
    finally:
        cp.cleanup()
        cp.stop()


def _bound(name: str, ns: str, node: str, gpu: int) -> dict[str, Any]:
    pod = gpu_pod(name, 1, namespace=ns, annotations={"gpuplace.io/movable": "true",
                                                        "gpuplace.io/gpus": str(gpu)})
    pod["spec"]["nodeName"] = node  # bound at creation: no scheduler needed
    return pod


def test_live_defrag_plans_from_the_api_and_apply_evicts_the_planned_pods(
        cluster: ControlPlane, capsys: pytest.CaptureFixture[str]) -> None:
    ns = cluster.create_namespace("plan")
    a, b = f"{ns}-a", f"{ns}-b"
    cluster.add_gpu_node(a)
    cluster.add_gpu_node(b)
    pods = [_bound(f"a{g}", ns, a, g) for g in (0, 2, 4)]
    pods += [_bound(f"b{g}", ns, b, g) for g in (0, 2, 4, 5, 7)]
    pending = gpu_pod("big", 8, namespace=ns, scheduler_name="nobody")  # stays pending
    cluster.create(*pods, pending)
    kubeconfig = str(Path(cluster.kubeconfig))

    assert main(["plan", "defrag", "--kubeconfig", kubeconfig, "--pod", f"{ns}/big", "-o", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["node"] == a and plan["cost"] == 3
    assert sorted(m["pod"] for m in plan["moves"]) == [f"{ns}/a0", f"{ns}/a2", f"{ns}/a4"]

    assert main(["plan", "defrag", "--kubeconfig", kubeconfig, "--pod", f"{ns}/big", "--apply"]) == 0
    out = capsys.readouterr().out
    assert out.count("evicted ") == 3
    left = cluster.kubectl_json("-n", ns, "get", "pods")["items"]
    alive = {p["metadata"]["name"] for p in left if not p["metadata"].get("deletionTimestamp")}
    assert alive == {"b0", "b2", "b4", "b5", "b7", "big"}


def test_apply_refuses_a_snapshot_file(cluster: ControlPlane, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    snap = tmp_path / "s.json"
    snap.write_text(cluster.kubectl("get", "nodes,pods,pdb", "-A", "-o", "json").stdout)
    assert main(["plan", "defrag", "--snapshot", str(snap), "--gpus", "8", "--apply"]) == 2
    assert "--apply evicts from the live cluster" in capsys.readouterr().err
