"""Observed findings: OOM kills and crash loops, scale events in the window, dark GPU nodes, pending GPU
pods and GPUs free only in pieces. Each with a near miss that must stay quiet."""

from __future__ import annotations

from datetime import timedelta

from placement.checks import CheckContext
from placement.findings import Code, Finding
from scan.cost import Prices
from scan.inventory import Inventory
from scan.scanner import ScanOptions, ScanResult, scan
from tests.scan.objects import (
    NOW,
    deployment,
    event,
    hpa,
    node,
    oom_status,
    pod,
    replicaset,
)

CTX = CheckContext.default()
PRICES = Prices(CTX.gpus)
H100_PRICE = CTX.gpus.get("H100-SXM-80GB").price_per_hour


def run(*objs: dict, window_s: float = 3600) -> ScanResult:
    return scan(Inventory.from_objects(objs, now=NOW), CTX, PRICES, ScanOptions(window_s=window_s))


def codes(result: ScanResult, code: Code) -> list[Finding]:
    return [f for f in result.all_findings() if f.code == code]


def replica(**kw: object) -> dict:
    return pod("llama-rs-1", owned_by=("ReplicaSet", "llama-rs"), **kw)  # type: ignore[arg-type]


def llama(name: str = "llama", **kw: object) -> list[dict]:
    return [deployment(name, **kw), replicaset(f"{name}-rs", name)]  # type: ignore[arg-type]


def test_oom_killed_and_crash_looping_container_is_observed_oom_with_the_memory_verdict() -> None:
    result = run(node("n1"), *llama(), replica(statuses=oom_status(restarts=7)))
    (f,) = codes(result, Code.OBSERVED_OOM)
    assert "OOMKilled" in f.message and "7 restarts" in f.message
    assert "fits GPU memory" in f.message  # 8B on an H100: not a GPU-memory problem
    assert f.figures["memory_verdict"] == "fits"
    assert f.figures["waste_per_day"] == round(H100_PRICE * 24, 2)


def test_oom_prone_workload_that_was_killed_names_gpuplaces_oom_risk() -> None:
    big = "meta-llama/Llama-3.1-70B-Instruct"
    result = run(node("l4", product="NVIDIA-L4", gpus=4), *llama(product="NVIDIA-L4", model=big),
                 pod("llama-rs-1", node_name="l4", product="NVIDIA-L4", model=big,
                     owned_by=("ReplicaSet", "llama-rs"), statuses=oom_status()))
    assert "oom-risk" in codes(result, Code.OBSERVED_OOM)[0].message
    assert codes(result, Code.OOM_RISK)  # the deploy-time check ran on the live Deployment


def test_a_container_that_restarted_once_is_not_observed_oom() -> None:
    status = [{"name": "vllm", "restartCount": 1, "state": {"running": {}},
               "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]
    result = run(node("n1"), *llama(), replica(statuses=status))
    assert codes(result, Code.OBSERVED_OOM) == []


def _scale_events(n: int, ago: timedelta, deployment_events: bool = True) -> list[dict]:
    out = []
    for i in range(n):
        size = 0 if i % 2 else 1
        out.append(event("HorizontalPodAutoscaler", "llama", "SuccessfulRescale",
                         f"New size: {size + 1}; reason: cpu resource utilization above target",
                         ago + timedelta(minutes=i)))
        if deployment_events:
            out.append(event("Deployment", "llama", "ScalingReplicaSet",
                             f"Scaled {'down' if size == 0 else 'up'} replica set llama-rs to {size} from "
                             f"{1 - size}", ago + timedelta(minutes=i, seconds=30)))
    return out


def test_scale_events_of_the_workloads_hpa_in_the_window_are_observed_thrashing_with_cost() -> None:
    result = run(node("n1"), *llama(), hpa("llama", "llama"),
                 replica(), *_scale_events(4, timedelta(minutes=5)))
    (f,) = codes(result, Code.OBSERVED_THRASHING)
    assert f.figures["scale_events"] == 4 and f.figures["scale_to_zero"] == 2  # Deployment events, not twice
    assert "deployment/llama" in f.message
    assert f.figures["waste_per_day"] > 0


def test_hpa_events_alone_count_when_the_deployment_has_none() -> None:
    objs = _scale_events(6, timedelta(minutes=5), deployment_events=False)
    result = run(node("n1"), *llama(), hpa("llama", "llama"), replica(), *objs)
    (f,) = codes(result, Code.OBSERVED_THRASHING)
    assert f.figures["scale_events"] == 6 and "horizontalpodautoscaler/llama" in f.message


def test_scale_events_older_than_the_window_are_not_thrashing() -> None:
    result = run(node("n1"), *llama(), hpa("llama", "llama"),
                 replica(), *_scale_events(4, timedelta(hours=2)))
    assert codes(result, Code.OBSERVED_THRASHING) == []


def test_gpu_node_without_gpu_pods_is_dark_capacity_priced_per_day_since_it_came_up() -> None:
    result = run(node("busy"), node("dark", age=timedelta(hours=30)), pod("solo", node_name="busy"))
    (f,) = codes(result, Code.DARK_CAPACITY)
    assert f.obj.name == "dark" and f.figures["waste_per_day"] == round(8 * H100_PRICE * 24, 2)
    assert "1d06h" in f.message
    assert result.cost.waste_per_day["dark-capacity"] == f.figures["waste_per_day"]


def test_node_whose_last_gpu_pod_ended_is_dark_since_then() -> None:
    done = pod("batch", node_name="dark", phase="Succeeded",
               statuses=[{"name": "vllm", "restartCount": 0,
                          "state": {"terminated": {"reason": "Completed",
                                                   "finishedAt": "2026-12-06T10:00:00Z"}}}])
    (f,) = codes(run(node("dark"), done), Code.DARK_CAPACITY)
    assert f.figures["idle_since"].startswith("2026-12-06T10:00")


def _pieces() -> list[dict]:
    """Four 8-GPU H100 nodes, each with 6 GPUs taken: 8 GPUs free, at most 2 on one node."""
    objs: list[dict] = []
    for i in range(4):
        objs.append(node(f"n{i}"))
        objs.append(pod(f"busy-{i}", node_name=f"n{i}", gpus=6))
    return objs


def test_pending_pod_while_enough_gpus_are_free_in_pieces_is_fragmentation_naming_defrag() -> None:
    result = run(*_pieces(), pod("big", node_name=None, gpus=8, age=timedelta(minutes=42)))
    (pending,) = codes(result, Code.PENDING_GPU_POD)
    assert "42m" in pending.message and "Insufficient nvidia.com/gpu" in pending.message
    (frag,) = codes(result, Code.FRAGMENTATION)
    assert frag.figures["free_gpus"] == 8 and frag.figures["largest_free_block"] == 2
    assert "gpuplace plan defrag --pod ml/big" in frag.message
    assert frag.figures["waste_per_day"] == round(8 * H100_PRICE * 24, 2)


def test_pending_pod_when_too_few_gpus_are_free_is_not_fragmentation() -> None:
    result = run(*_pieces(), pod("huge", node_name=None, gpus=16))
    assert codes(result, Code.PENDING_GPU_POD) and codes(result, Code.FRAGMENTATION) == []


def test_a_namespace_scan_counts_other_namespaces_pods_on_nodes() -> None:
    inv = Inventory.from_objects([node("shared"), pod("theirs", ns="other", node_name="shared")], now=NOW)
    inv.namespace = "ml"
    result = scan(inv, CTX, PRICES)
    assert result.workloads == [] and codes(result, Code.DARK_CAPACITY) == []


def test_unreadable_pods_leave_dark_capacity_unjudged_and_say_so() -> None:
    objs = [node("maybe-busy"), *_pieces(), pod("big", node_name=None, gpus=8)]
    inv = Inventory.from_objects(objs, now=NOW)
    inv.pods_complete = False
    result = scan(inv, CTX, PRICES)
    assert codes(result, Code.DARK_CAPACITY) == [] and codes(result, Code.FRAGMENTATION) == []
    assert codes(result, Code.PENDING_GPU_POD)
    assert any("dark capacity and fragmentation not judged" in g for g in result.gaps)
