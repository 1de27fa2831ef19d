"""A real Prometheus (Debian's package, hack/prometheus.sh) scraping a fixture exporter that serves
DCGM-exporter and vLLM metrics with their names and labels as those exporters publish them; scan reads
an idle GPU allocation and a low-throughput deployment from it. Skipped when Prometheus is missing
(fails under CI=true, like the chart and e2e tests)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from placement.checks import CheckContext
from placement.findings import Code
from scan.cost import Prices
from scan.inventory import Inventory
from scan.metrics import PrometheusMetrics
from scan.scanner import scan
from tests.harness.controlplane import free_port
from tests.scan.objects import node, pod

REPO = Path(__file__).resolve().parents[2]
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
NS = "ml"
UUIDS = {
    "idle-0": "GPU-5f3c2a1e-0b7d-4c8e-9a61-2d4f6b8c0e12",
    "slow-0": "GPU-a4e1c9d2-7f3b-4e6a-8c5d-1b2e3f4a5b6c",
}
UTIL = {"idle-0": 0, "slow-0": 87}
SLOW_TOKENS_PER_S = 40.0  # far under what an 8B model decodes on an H100 at 16 running requests
RUNNING = 16
WINDOW_S = 3


def prometheus_binary() -> Path:
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "prometheus.sh"), "path"], capture_output=True, text=True
    )
    path = Path(out.stdout.strip())
    if out.returncode != 0 or not path.is_file():
        reason = f"prometheus missing ({path}): run `bash hack/prometheus.sh install`"
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


def dcgm_page() -> str:
    """dcgm-exporter's format: HELP/TYPE text, labels gpu, UUID, pci_bus_id, device, modelName,
    Hostname, DCGM_FI_DRIVER_VERSION, then the pod mapping's container, namespace, pod."""
    lines = []
    for name, help_text, values in (
        ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", UTIL),
        ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", {"idle-0": 71234, "slow-0": 72011}),
    ):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for gpu, (pod_name, value) in enumerate(values.items()):
            lines.append(
                f'{name}{{gpu="{gpu}",UUID="{UUIDS[pod_name]}",pci_bus_id="00000000:{gpu + 4:02X}:00.0",'
                f'device="nvidia{gpu}",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",'
                f'DCGM_FI_DRIVER_VERSION="550.54.15",container="vllm",namespace="{NS}",'
                f'pod="{pod_name}"}} {value}'
            )
    return "\n".join(lines) + "\n"


def vllm_page(started: float) -> str:
    """vLLM V1's prometheus_client output: `vllm:` names, labels engine and model_name."""
    labels = f'engine="0",model_name="{MODEL}"'
    tokens = SLOW_TOKENS_PER_S * (time.monotonic() - started)
    return (
        "\n".join(
            [
                "# HELP vllm:num_requests_running Number of requests in model execution batches.",
                "# TYPE vllm:num_requests_running gauge",
                f"vllm:num_requests_running{{{labels}}} {RUNNING}.0",
                "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
                "# TYPE vllm:num_requests_waiting gauge",
                f"vllm:num_requests_waiting{{{labels}}} 9.0",
                "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
                "# TYPE vllm:kv_cache_usage_perc gauge",
                f"vllm:kv_cache_usage_perc{{{labels}}} 0.97",
                "# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.",
                "# TYPE vllm:num_preemptions_total counter",
                f"vllm:num_preemptions_total{{{labels}}} 0.0",
                "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
                "# TYPE vllm:generation_tokens_total counter",
                f"vllm:generation_tokens_total{{{labels}}} {tokens:.1f}",
            ]
        )
        + "\n"
    )


@pytest.fixture
def exporter() -> Iterator[int]:
    port, started = free_port(), time.monotonic()
    app = web.Application()

    async def dcgm(_: web.Request) -> web.Response:
        return web.Response(text=dcgm_page())

    async def vllm(_: web.Request) -> web.Response:
        return web.Response(text=vllm_page(started))

    app.router.add_get("/dcgm/metrics", dcgm)
    app.router.add_get("/vllm/metrics", vllm)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


@pytest.fixture
def prometheus(exporter: int, tmp_path: Path) -> Iterator[str]:
    binary, port = prometheus_binary(), free_port()
    target = f"127.0.0.1:{exporter}"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            # dcgm-exporter's pod labels are the workload's, not the exporter pod's: honor them.
            {
                "job_name": "dcgm",
                "honor_labels": True,
                "metrics_path": "/dcgm/metrics",
                "static_configs": [{"targets": [target]}],
            },
            # What a ServiceMonitor's relabeling adds to an engine's series: the pod it scraped.
            {
                "job_name": "vllm",
                "metrics_path": "/vllm/metrics",
                "static_configs": [{"targets": [target], "labels": {"namespace": NS, "pod": "slow-0"}}],
            },
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            str(binary),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail(
                f"prometheus did not become ready: {(tmp_path / 'prometheus.log').read_text()[-2000:]}"
            )
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def wait_for_history(url: str, seconds: int, timeout: float = 40) -> None:
    query = urllib.parse.urlencode({"query": f"count_over_time(vllm:generation_tokens_total[{seconds}s])"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as resp:
            result = json.loads(resp.read())["data"]["result"]
        if result and float(result[0]["value"][1]) >= seconds - 0.5:
            return
        time.sleep(0.5)
    pytest.fail(f"prometheus scraped less than {seconds}s of history in {timeout}s")


def test_scan_reads_idle_gpus_and_low_throughput_from_prometheus(prometheus: str) -> None:
    ctx = CheckContext.default()
    objs = [node("n1"), pod("idle-0", ns=NS, model=MODEL), pod("slow-0", ns=NS, model=MODEL)]
    # rate() divides by the window: wait until scrapes (1 s apart) cover more than the window.
    wait_for_history(prometheus, WINDOW_S + 2)
    metrics = PrometheusMetrics(prometheus, WINDOW_S, datetime.now(UTC))
    inv = Inventory.from_objects(objs, now=datetime.now(UTC))
    result = scan(inv, ctx, Prices(ctx.gpus), metrics=metrics)
    found = {(f.code, f.obj.name): f for f in result.all_findings()}
    idle = found[(Code.IDLE_GPU, "idle-0")]
    assert idle.figures["gpu_util_percent"] == 0 and idle.figures["fb_used_mib"] == 71234
    assert idle.figures["waste_per_day"] > 0
    slow = found[(Code.LOW_THROUGHPUT, "slow-0")]
    assert slow.figures["tokens_per_s"] == pytest.approx(SLOW_TOKENS_PER_S, rel=0.25)
    assert slow.figures["running"] == RUNNING and slow.figures["share"] < 0.3
    assert "KV cache 97% used" in slow.message
    assert (Code.IDLE_GPU, "slow-0") not in found and (Code.LOW_THROUGHPUT, "idle-0") not in found
    assert result.gaps == []
