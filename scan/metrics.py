"""`--prometheus URL`: idle GPU allocation from the DCGM exporter and observed throughput from the
serving engines' own metrics, against placement's roofline.

Series read (names and labels as the exporters publish them; the pod labels are dcgm-exporter's
Kubernetes pod mapping, and for engines the `namespace`/`pod` target labels a ServiceMonitor or
kubernetes_sd relabeling adds):
- DCGM exporter: `DCGM_FI_DEV_GPU_UTIL` (%) and `DCGM_FI_DEV_FB_USED` (MiB), labels gpu, UUID, device,
  modelName, Hostname, namespace, pod, container.
- vLLM: `vllm:generation_tokens_total` (counter), `vllm:num_requests_running`, `vllm:num_requests_waiting`,
  `vllm:num_preemptions_total`, `vllm:kv_cache_usage_perc` (V1; `vllm:gpu_cache_usage_perc` before),
  label model_name.
- SGLang: `sglang:generation_tokens_total`, `sglang:num_running_reqs`, `sglang:num_queue_reqs`,
  `sglang:token_usage`. TGI exports histograms only (tgi_request_generated_tokens), not judged here.
An unreachable Prometheus or an absent series is said once; the rest of the scan is reported.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from placement.checks import CheckContext, servings
from placement.findings import Code, Finding
from placement.roofline import decode_roofline
from placement.workload import WorkloadError, extract
from scan.cost import WASTE, money, per_day
from scan.inventory import human_duration
from scan.scanner import WorkloadReport

IDLE_UTIL_PERCENT = 5.0  # mean SM utilisation over the window below which an allocated GPU is idle
LOW_THROUGHPUT_SHARE = 0.3  # observed decode rate below this share of the roofline is low
TIMEOUT_S = 10.0

PodKey = tuple[str, str]  # (namespace, pod)


@dataclass(frozen=True)
class Query:
    name: str  # what it measures, for notes
    promql: str  # WINDOW stands for the scan's window
    series: tuple[str, ...]  # metric names it reads (to say which one is absent)


def _engine(names: str) -> str:
    return '{__name__=~"' + names + '"}'


def _queries() -> dict[str, Query]:
    """PromQL per measure, `WINDOW` replaced by the scan's window; every one aggregated per pod."""
    by = "by (namespace, pod)"
    tokens = _engine("vllm:generation_tokens_total|sglang:generation_tokens_total")
    running = _engine("vllm:num_requests_running|sglang:num_running_reqs")
    waiting = _engine("vllm:num_requests_waiting|sglang:num_queue_reqs")
    kv = _engine("vllm:kv_cache_usage_perc|vllm:gpu_cache_usage_perc|sglang:token_usage")
    return {
        "util": Query("GPU utilisation", f'avg {by} (avg_over_time(DCGM_FI_DEV_GPU_UTIL{{pod!=""}}[WINDOW]))',
                      ("DCGM_FI_DEV_GPU_UTIL",)),
        "fb": Query("framebuffer used", f'max {by} (max_over_time(DCGM_FI_DEV_FB_USED{{pod!=""}}[WINDOW]))',
                    ("DCGM_FI_DEV_FB_USED",)),
        "tokens": Query("generated tokens", f"sum {by} (rate({tokens}[WINDOW]))",
                        ("vllm:generation_tokens_total", "sglang:generation_tokens_total")),
        "running": Query("running requests", f"sum {by} (avg_over_time({running}[WINDOW]))",
                         ("vllm:num_requests_running", "sglang:num_running_reqs")),
        "waiting": Query("waiting requests", f"sum {by} (avg_over_time({waiting}[WINDOW]))",
                         ("vllm:num_requests_waiting", "sglang:num_queue_reqs")),
        "kv": Query("KV-cache usage", f"max {by} (avg_over_time({kv}[WINDOW]))",
                    ("vllm:kv_cache_usage_perc",)),
        "preempt": Query("preemptions", f"sum {by} (increase(vllm:num_preemptions_total[WINDOW]))",
                         ("vllm:num_preemptions_total",)),
    }


def prom_duration(seconds: float) -> str:
    return f"{max(1, int(seconds))}s"


HttpGet = Callable[[str], dict[str, Any]]


def urllib_get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:  # the URL the user gave
        doc = json.loads(resp.read())
    if not isinstance(doc, dict):
        raise ValueError("not a Prometheus API answer")
    return doc


class PrometheusMetrics:
    """Per-pod series read once at construction; findings per workload from them."""

    def __init__(self, base_url: str, window_s: float, now: datetime, http_get: HttpGet = urllib_get,
                 progress: Callable[[str], None] | None = None) -> None:
        self.notes: list[str] = []
        self.base_url = base_url.rstrip("/")
        self.window_s = window_s
        self.now = now
        self.values: dict[str, dict[PodKey, float]] = {}
        (progress or (lambda _m: None))(f"querying Prometheus at {self.base_url}")
        self._read(http_get)

    def _read(self, http_get: HttpGet) -> None:
        for key, q in _queries().items():
            promql = q.promql.replace("WINDOW", prom_duration(self.window_s))
            url = f"{self.base_url}/api/v1/query?" + urllib.parse.urlencode(
                {"query": promql, "time": self.now.timestamp()})
            try:
                doc = http_get(url)
            except (OSError, ValueError, urllib.error.URLError) as exc:
                self.notes.append(f"Prometheus {self.base_url} unreachable ({exc}): no idle-GPU or "
                                  f"throughput findings")
                self.values = {}
                return
            if doc.get("status") != "success":
                self.notes.append(f"Prometheus query for {q.name} failed: {doc.get('error') or doc}")
                continue
            self.values[key] = _vector(doc)
            if not self.values[key] and key in ("util", "tokens"):
                self.notes.append(f"Prometheus has no {' or '.join(q.series)} with pod labels: "
                                  f"{'idle GPUs' if key == 'util' else 'throughput'} not judged")

    def _pods(self, key: str, report: WorkloadReport) -> list[float]:
        series = self.values.get(key, {})
        keys = [(p.namespace, p.name) for p in report.workload.running]
        return [series[k] for k in keys if k in series]

    def findings(self, report: WorkloadReport, ctx: CheckContext) -> list[Finding]:
        out = []
        idle = self._idle(report)
        if idle is not None:
            out.append(idle)
        else:
            slow = self._low_throughput(report, ctx)
            if slow is not None:
                out.append(slow)
        return out

    def _idle(self, report: WorkloadReport) -> Finding | None:
        utils = self._pods("util", report)
        w = report.workload
        if not utils or w.gpus == 0:
            return None
        mean = sum(utils) / len(utils)
        if mean >= IDLE_UTIL_PERCENT:
            return None
        fb = self._pods("fb", report)
        fb_text = f", up to {max(fb) / 1024:.1f} GiB of framebuffer held" if fb else ""
        waste = per_day(report.price_per_hour, w.gpus) if report.price_per_hour else None
        cost = f" ({money(waste)}/day)" if waste else ""
        detail = (f"{w.gpus} GPUs{cost} averaged {mean:.1f}% utilisation over the last "
                  f"{human_duration(self.window_s)}{fb_text}. Scale it down, to zero off-hours, or share "
                  f"the GPUs (MIG, time-slicing).")
        return Finding(Code.IDLE_GPU, w.ref, detail, figures={
            "gpus": w.gpus, "gpu_util_percent": round(mean, 1),
            "fb_used_mib": round(max(fb)) if fb else None, WASTE: waste})

    def _low_throughput(self, report: WorkloadReport, ctx: CheckContext) -> Finding | None:
        tokens, running = self._pods("tokens", report), self._pods("running", report)
        w = report.workload
        if not tokens or not running or report.tier is None or report.tier not in ctx.gpus:
            return None
        concurrency = sum(running) / len(running)
        if concurrency < 1.0:
            return None  # no load to judge a rate by (idle is what DCGM says)
        expected = self._roofline(report, ctx, concurrency)
        if expected is None:
            return None
        replicas = max(1, len(running))
        observed = sum(tokens) / replicas
        share = observed / expected if expected else 1.0
        if share >= LOW_THROUGHPUT_SHARE:
            return None
        waste = (per_day(report.price_per_hour, w.gpus * (1 - share))
                 if report.price_per_hour else None)
        extra = []
        if pre := self._pods("preempt", report):
            extra.append(f"{sum(pre):.0f} preemptions")
        if kv := self._pods("kv", report):
            extra.append(f"KV cache {max(kv) * 100:.0f}% used")
        if waiting := self._pods("waiting", report):
            extra.append(f"{sum(waiting) / len(waiting):.1f} waiting")
        seen = f" ({', '.join(extra)})" if extra else ""
        cost = f"; {money(waste)}/day of GPU time unused" if waste else ""
        detail = (f"generates {observed:,.0f} tokens/s per replica at {concurrency:.1f} running requests; "
                  f"the roofline on {report.tier} is ~{expected:,.0f} tokens/s ({share:.0%}){seen}{cost}. "
                  f"Check preemption, enforce-eager, CPU limits, max-num-seqs.")
        return Finding(Code.LOW_THROUGHPUT, w.ref, detail, figures={
            "tokens_per_s": round(observed, 1), "roofline_tokens_per_s": round(expected),
            "share": round(share, 3), "running": round(concurrency, 1), WASTE: waste})

    def _roofline(self, report: WorkloadReport, ctx: CheckContext, concurrency: float) -> float | None:
        assert report.tier is not None
        try:
            workload = extract(report.workload.checked_object, ctx.gpus)
        except WorkloadError:
            return None
        if workload is None:
            return None
        gpu = ctx.gpus.get(report.tier)
        for s in servings(workload, ctx):
            if s.arch is None or s.precision is None:
                continue
            est = s.estimate(gpu)
            return decode_roofline(
                weights_bytes_per_rank=est.weights_bytes, kv_bytes_per_token_per_rank=est.kv_bytes_per_token,
                params=s.arch.params, active_params=s.arch.active_params, tp=est.setup.tp,
                bandwidth_gbs=gpu.bandwidth_gbs, bf16_tflops=gpu.bf16_tflops, concurrency=concurrency,
                context_tokens=ctx.settings.typical_request_tokens).tokens_per_s
        return None


def _vector(doc: dict[str, Any]) -> dict[PodKey, float]:
    out: dict[PodKey, float] = {}
    for item in (doc.get("data") or {}).get("result") or []:
        metric, value = item.get("metric") or {}, item.get("value") or [0, "NaN"]
        try:
            number = float(value[1])
        except (TypeError, ValueError, IndexError):
            continue
        if number == number and metric.get("pod"):  # NaN != NaN: a rate over too few samples
            out[(str(metric.get("namespace") or ""), str(metric["pod"]))] = number
    return out
