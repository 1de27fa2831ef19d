"""Prometheus metrics of the webhook (names prefixed gpuplace_, design.md Operations)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "gpuplace_webhook_requests_total",
            "Admission requests by endpoint, kind and outcome",
            ["endpoint", "kind", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "gpuplace_webhook_request_seconds",
            "Time to answer an admission request",
            ["endpoint"],
            registry=r,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.findings = Counter(
            "gpuplace_findings_total",
            "Findings by code, severity and mode",
            ["code", "severity", "mode"],
            registry=r,
        )
        self.decisions = Counter(
            "gpuplace_decisions_total", "Validation decisions", ["decision", "mode"], registry=r
        )
        self.judged = Counter(
            "gpuplace_workloads_judged_total",
            "GPU workloads validated, by how much was judged (full, no-model, not-judged) and why not",
            ["coverage", "reason"],
            registry=r,
        )
        self.skipped = Counter(
            "gpuplace_webhook_checks_skipped_total",
            "Requests answered allowed because the check failed or ran out of time",
            ["endpoint", "reason"],
            registry=r,
        )

    def child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: prometheus_client takes a lock and builds the label key on
        every call, several times per review. Label values here come from bounded sets (endpoints, the
        kinds the webhook rules match, finding codes, modes)."""
        key = (id(metric), labels)
        hit = self._children.get(key)
        if hit is None:
            hit = self._children[key] = metric.labels(*labels)
        return hit
