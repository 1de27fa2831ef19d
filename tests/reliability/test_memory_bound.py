"""Per-object state stays bounded however many distinct objects arrive: the findings cache holds at most
webhook.findings_cache_size entries, the API read cache at most its max_entries, and the request metric
one series per kind the webhook configurations send (anything else is "other")."""

from __future__ import annotations

from bench.reliability_kit import distinct_reviews
from common.config import WebhookConfig
from placement.checks import CheckContext
from webhook.admission import parse_review
from webhook.cluster import TtlCache
from webhook.metrics import Metrics
from webhook.server import _count_request
from webhook.validate import Reviewer

CTX = CheckContext.default()


async def test_the_findings_cache_holds_at_most_its_size_over_many_distinct_objects():
    reviewer = Reviewer(WebhookConfig(findings_cache_size=64), CTX, None, "gpuplace-system")
    for data in distinct_reviews(5_000):
        req = parse_review(data)
        assert req.obj is not None
        await reviewer.findings(req.obj, req.object_namespace)
        assert len(reviewer._cache) <= 64
    assert len(reviewer._cache) == 64
    kept = b"".join(reviewer._cache)
    assert b'"llama-8b-4999"' in kept and b'"llama-8b-0"' not in kept  # the newest are the ones kept


def test_the_api_read_cache_holds_at_most_its_max_entries():
    cache = TtlCache(ttl_s=30, max_entries=100)
    for k in range(5_000):
        cache.put(("obj", "Deployment", "ns", f"d{k}"), {"k": k})
        assert len(cache._data) <= 100


def test_request_metrics_keep_one_series_per_known_kind_whatever_kinds_arrive():
    metrics = Metrics()
    for k in range(2_000):
        _count_request(metrics, "validate", f"Widget{k}", "ok", 0.001)
        _count_request(metrics, "validate", "Deployment", "ok", 0.001)
    kinds = {
        sample.labels["kind"]
        for family in metrics.registry.collect()
        if family.name == "gpuplace_webhook_requests"
        for sample in family.samples
    }
    assert kinds == {"other", "Deployment"}
