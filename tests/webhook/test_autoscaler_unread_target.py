"""An HPA whose scale-down window is shorter than the engine start-up thrashes whatever it scales: it is
warned even when its target cannot be read (no API access, or the HPA applied before its Deployment)."""

from __future__ import annotations

from typing import Any

import pytest

from common.config import WebhookConfig
from tests.webhook.reviews import review
from tests.webhook.test_server import CTX, client_for, fake_reader, post
from webhook.validate import Reviewer


def _hpa(window_s: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "llama", "namespace": "ns"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"},
            "minReplicas": 1,
            "maxReplicas": 4,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": window_s}},
        },
    }


@pytest.mark.parametrize(
    ("reader", "why"),
    [
        (None, "target not read: no API access to read the target"),
        (fake_reader(), "target not read: target lookup failed"),  # applied before its Deployment
    ],
    ids=["api-off", "target-not-created-yet"],
)
async def test_a_zero_second_window_is_warned_though_the_target_is_not_read(reader, why):
    c = await client_for(Reviewer(WebhookConfig(), CTX, reader, "gpuplace-system"))
    try:
        r = await post(c, "/validate", review(_hpa(0)))
        quiet = await post(c, "/validate", review(_hpa(600)))
    finally:
        await c.close()
    assert r["allowed"] is True
    (warning,) = [w for w in r["warnings"] if w.startswith("gpuplace[scale-thrashing]")]
    assert "down after 0s" in warning and "60s engine start-up alone. Use a window >= 120s" in warning
    assert why in warning
    assert "warnings" not in quiet
