"""--prometheus: idle allocation from DCGM utilisation, low throughput against the roofline, and an
unreachable Prometheus or absent series said once while the rest of the scan is reported."""

from __future__ import annotations

import urllib.parse
from typing import Any

from placement.checks import CheckContext
from placement.findings import Code
from scan.cost import Prices
from scan.inventory import Inventory
from scan.metrics import PrometheusMetrics
from scan.scanner import ScanResult, scan
from tests.scan.objects import NOW, node, pod

CTX = CheckContext.default()


def answer(series: dict[str, dict[str, float]]) -> Any:
    """A fake Prometheus: the first series name found in the PromQL picks the per-pod values."""

    def get(url: str) -> dict[str, Any]:
        promql = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["query"][0]
        values = next((v for name, v in series.items() if name in promql), {})
        return {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"namespace": "ml", "pod": pod_name}, "value": [NOW.timestamp(), str(v)]}
            for pod_name, v in values.items()]}}

    return get


def run(series: dict[str, dict[str, float]] | None = None, fail: bool = False) -> ScanResult:
    def down(url: str) -> dict[str, Any]:
        raise OSError("connection refused")

    http_get = down if fail else answer(series or {})
    metrics = PrometheusMetrics("http://prom:9090", 3600, NOW, http_get=http_get)
    objs = [node("n1"), pod("idle", gpus=2), pod("busy")]
    return scan(Inventory.from_objects(objs, now=NOW), CTX, Prices(CTX.gpus), metrics=metrics)


def by(result: ScanResult, code: Code) -> dict[str, Any]:
    return {f.obj.name: f for f in result.all_findings() if f.code == code}


def test_allocated_gpus_at_low_utilisation_are_idle_with_their_daily_cost() -> None:
    result = run({"DCGM_FI_DEV_GPU_UTIL": {"idle": 1.5, "busy": 64.0},
                  "DCGM_FI_DEV_FB_USED": {"idle": 70000.0}})
    idle = by(result, Code.IDLE_GPU)
    assert list(idle) == ["idle"]
    price = CTX.gpus.get("H100-SXM-80GB").price_per_hour
    assert idle["idle"].figures["waste_per_day"] == round(2 * price * 24, 2)
    assert "1.5%" in idle["idle"].message and "68.4 GiB" in idle["idle"].message


def test_decode_rate_far_under_the_roofline_at_its_concurrency_is_low_throughput() -> None:
    result = run({"DCGM_FI_DEV_GPU_UTIL": {"busy": 90.0}, "generation_tokens_total": {"busy": 40.0},
                  "num_requests_running": {"busy": 16.0}, "num_preemptions_total": {"busy": 120.0}})
    (slow,) = by(result, Code.LOW_THROUGHPUT).values()
    assert slow.figures["share"] < 0.3 and slow.figures["roofline_tokens_per_s"] > 1000
    assert "120 preemptions" in slow.message


def test_a_rate_near_the_roofline_is_not_low_throughput() -> None:
    result = run({"DCGM_FI_DEV_GPU_UTIL": {"busy": 90.0}, "generation_tokens_total": {"busy": 2500.0},
                  "num_requests_running": {"busy": 16.0}})
    assert by(result, Code.LOW_THROUGHPUT) == {}


def test_unreachable_prometheus_is_said_once_and_the_scan_goes_on() -> None:
    result = run(fail=True)
    assert len([g for g in result.gaps if "unreachable" in g]) == 1
    assert result.workloads and by(result, Code.IDLE_GPU) == {}


def test_absent_dcgm_series_is_said_once() -> None:
    result = run({})
    assert [g for g in result.gaps if "DCGM_FI_DEV_GPU_UTIL" in g] == [
        "Prometheus has no DCGM_FI_DEV_GPU_UTIL with pod labels: idle GPUs not judged"]
