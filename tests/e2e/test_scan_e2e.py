"""`gpuplace scan` on the harness's real kube-apiserver: fake GPU nodes (two dark), GPU pods bound to them
with statuses patched through the API (one OOMKilled, one Pending while 8 GPUs are free in pieces), an
HPA with scale Events, a misplaced and an OOM-prone Deployment. The scan reports each finding with its
dollar figure, and --report creates PolicyReports that `kubectl get policyreports -A` lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ControlPlane

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "tests" / "scan" / "wgpolicyk8s.io-v1alpha2-crds.yaml"
H100 = "NVIDIA-H100-80GB-HBM3"


def stamp(ago: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def container(model: str, gpus: int) -> dict[str, Any]:
    return {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.9.0",
        "command": ["vllm", "serve", model],
        "resources": {"limits": {"nvidia.com/gpu": str(gpus), "cpu": "8", "memory": "64Gi"}},
    }


def template(model: str, gpus: int) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"nodeSelector": {"nvidia.com/gpu.product": H100}, "containers": [container(model, gpus)]},
    }


def ref(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"],
            "controller": True,
        }
    ]


class Fleet:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.ns = cp.create_namespace("scan")

    def get(self, kind: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.cp.kubectl_json("-n", self.ns, "get", kind, name)
        return obj

    def deployment(self, name: str, model: str) -> dict[str, Any]:
        self.cp.create(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": self.ns},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "x"}},
                    "template": template(model, 1),
                },
            }
        )
        deploy = self.get("deployment", name)
        self.cp.create(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": f"{name}-rs", "namespace": self.ns, "ownerReferences": ref(deploy)},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "x"}},
                    "template": template(model, 1),
                },
            }
        )
        return self.get("replicaset", f"{name}-rs")

    def pod(
        self,
        name: str,
        model: str,
        gpus: int,
        node: str | None,
        owner: dict[str, Any] | None = None,
        status: dict[str, Any] | None = None,
    ) -> None:
        meta: dict[str, Any] = {"name": name, "namespace": self.ns, "labels": {"app": "x"}}
        if owner is not None:
            meta["ownerReferences"] = ref(owner)
        spec = template(model, gpus)["spec"]
        if node:
            spec["nodeName"] = node
        self.cp.create({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
        if status:
            self.cp.kubectl(
                "-n",
                self.ns,
                "patch",
                "pod",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps({"status": status}),
            )

    def event(self, kind: str, name: str, reason: str, message: str, ago: timedelta, i: int) -> None:
        self.cp.create(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{name}.scale-{i}", "namespace": self.ns},
                "involvedObject": {"kind": kind, "name": name, "namespace": self.ns, "apiVersion": "apps/v1"},
                "reason": reason,
                "message": message,
                "type": "Normal",
                "count": 1,
                "firstTimestamp": stamp(ago),
                "lastTimestamp": stamp(ago),
                "source": {"component": "deployment-controller"},
            }
        )


RUNNING = {
    "phase": "Running",
    "conditions": [{"type": "Ready", "status": "True"}],
    "containerStatuses": [
        {
            "name": "vllm",
            "ready": True,
            "restartCount": 0,
            "image": "x",
            "imageID": "",
            "state": {"running": {"startedAt": stamp(timedelta(hours=1))}},
        }
    ],
}
OOM = {
    "phase": "Running",
    "containerStatuses": [
        {
            "name": "vllm",
            "ready": False,
            "restartCount": 6,
            "image": "x",
            "imageID": "",
            "state": {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": "back-off 5m0s restarting failed container",
                }
            },
            "lastState": {
                "terminated": {
                    "reason": "OOMKilled",
                    "exitCode": 137,
                    "startedAt": stamp(timedelta(minutes=9)),
                    "finishedAt": stamp(timedelta(minutes=8)),
                }
            },
        }
    ],
}
PENDING = {
    "phase": "Pending",
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/6 nodes are available: 6 Insufficient nvidia.com/gpu.",
            "lastTransitionTime": stamp(timedelta(minutes=20)),
        }
    ],
}


@pytest.fixture
def fleet(control_plane: ControlPlane) -> Fleet:
    cp = control_plane
    f = Fleet(cp)
    tag = f.ns.rsplit("-", 1)[1]
    busy = [f"scan-{tag}-h100-{i}" for i in range(4)]
    for name in busy:
        cp.add_gpu_node(name, product=H100, gpus=8)
    cp.add_gpu_node(f"scan-{tag}-dark-l4", product="NVIDIA-L4", gpus=4, memory_mib=23034)
    cp.add_gpu_node(f"scan-{tag}-dark-l40s", product="NVIDIA-L40S", gpus=8, memory_mib=46068)
    small = "meta-llama/Llama-3.1-8B-Instruct"
    misplaced = f.deployment("misplaced", small)
    oom_prone = f.deployment("oom-prone", "meta-llama/Llama-3.1-70B-Instruct")
    # 6 of 8 GPUs taken on every H100 node: 8 free, at most 2 together.
    f.pod("misplaced-rs-a", small, 1, busy[0], misplaced, RUNNING)
    f.pod("oom-prone-rs-a", "meta-llama/Llama-3.1-70B-Instruct", 1, busy[1], oom_prone, OOM)
    for i, node in enumerate(busy):
        f.pod(f"filler-{i}", small, 5 if i < 2 else 6, node, status=RUNNING)
    f.pod("big", "meta-llama/Llama-3.1-405B-Instruct-FP8", 8, None, status=PENDING)
    cp.create(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "misplaced", "namespace": f.ns},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "misplaced"},
                "minReplicas": 1,
                "maxReplicas": 4,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 60},
                        },
                    }
                ],
            },
        }
    )
    for i in range(8):
        up = i % 2 == 0
        f.event(
            "Deployment",
            "misplaced",
            "ScalingReplicaSet",
            f"Scaled {'up' if up else 'down'} replica set misplaced-rs to {1 if up else 0} from "
            f"{0 if up else 1}",
            timedelta(minutes=40 - 4 * i),
            i,
        )
    return f


def scan(cp: ControlPlane, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("GPUPLACE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "gpuplace", "scan", "--kubeconfig", str(cp.kubeconfig), "-n", ns, "-q", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )


def findings(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {(f["code"], f["name"]): f for w in doc["workloads"] for f in w["findings"]}
    out.update({(f["code"], f["name"]): f for f in doc["cluster_findings"]})
    return out


def test_scan_reports_each_finding_with_its_dollar_figure(control_plane: ControlPlane, fleet: Fleet) -> None:
    proc = scan(control_plane, fleet.ns, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    found = findings(doc)
    workloads = {w["name"]: w for w in doc["workloads"]}
    assert workloads["misplaced"]["kind"] == "Deployment" and workloads["misplaced"]["running"] == 1
    assert found[("tier-misplacement", "misplaced")]["waste_per_day"] > 0
    oom = found[("observed-oom", "oom-prone")]
    assert oom["memory_verdict"] == "oom-risk" and oom["waste_per_day"] > 0
    assert ("oom-risk", "oom-prone") in found
    thrash = found[("observed-thrashing", "misplaced")]
    assert thrash["scale_events"] == 8 and thrash["scale_to_zero"] == 4 and thrash["waste_per_day"] > 0
    dark = {name for code, name in found if code == "dark-capacity"}
    assert {n for n in dark if fleet.ns.rsplit("-", 1)[1] in n} == {
        f"scan-{fleet.ns.rsplit('-', 1)[1]}-dark-l4",
        f"scan-{fleet.ns.rsplit('-', 1)[1]}-dark-l40s",
    }
    assert all(found[("dark-capacity", n)]["waste_per_day"] > 0 for n in dark)
    assert found[("pending-gpu-pod", "big")]["wait_s"] >= 0
    frag = found[("fragmentation", "big")]
    assert (frag["free_gpus"], frag["largest_free_block"]) == (8, 2) and frag["waste_per_day"] > 0
    assert frag["defrag_command"] == f"gpuplace plan defrag --pod {fleet.ns}/big"
    assert doc["cost"]["spend_per_hour"] > 0 and doc["cost"]["total_waste_per_year"] > 0

    table = scan(control_plane, fleet.ns)
    assert table.returncode == 0, table.stderr
    for code in ("tier-misplacement", "observed-oom", "observed-thrashing", "dark-capacity", "fragmentation"):
        line = next(ln for ln in table.stdout.splitlines() if f"gpuplace[{code}]" in ln)
        assert "$" in line, line


def test_report_creates_policy_reports_that_kubectl_lists(control_plane: ControlPlane, fleet: Fleet) -> None:
    cp = control_plane
    crds = list(yaml.safe_load_all(CRDS.read_text()))
    cp.apply(*crds)
    try:
        cp.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            *(f"crd/{c['metadata']['name']}" for c in crds),
        )
        proc = scan(cp, fleet.ns, "--report")
        assert proc.returncode == 0, proc.stderr
        assert "wrote 2 reports" in proc.stdout, proc.stdout
        listed = cp.kubectl("get", "policyreports", "-A").stdout
        assert fleet.ns in listed and "gpuplace-scan" in listed
        report = cp.kubectl_json("-n", fleet.ns, "get", "policyreport", "gpuplace-scan")
        rules = {r["rule"] for r in report["results"]}
        assert {"observed-oom", "tier-misplacement", "fragmentation", "observed-thrashing"} <= rules
        assert report["summary"]["fail"] >= 1
        cluster = cp.kubectl_json("get", "clusterpolicyreport", "gpuplace-scan")
        assert {r["rule"] for r in cluster["results"]} == {"dark-capacity"}
        again = scan(cp, fleet.ns, "--report")  # applying again replaces, never duplicates
        assert again.returncode == 0, again.stderr
        assert len(cp.kubectl_json("-n", fleet.ns, "get", "policyreports")["items"]) == 1
    finally:
        cp.kubectl("delete", "-f", str(CRDS), "--ignore-not-found", "--wait=false", check=False)
