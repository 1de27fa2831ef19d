"""The findings cache: the same workload seen again (dry run then apply, GitOps drift checks) is not
re-judged; any change to what the checks read is."""

from __future__ import annotations

import copy

from common.config import WebhookConfig
from tests.webhook.reviews import review
from tests.webhook.test_server import CTX, MISPLACED, client_for, post
from webhook.validate import Reviewer


async def test_the_same_object_seen_again_is_answered_from_the_findings_cache(monkeypatch):
    import webhook.validate as validate

    calls: list[str] = []
    real = validate.check_workload

    def counting(workload, ctx):  # type: ignore[no-untyped-def]
        calls.append(workload.ref.name)
        return real(workload, ctx)

    monkeypatch.setattr(validate, "check_workload", counting)
    c = await client_for(Reviewer(WebhookConfig(), CTX, None, "gpuplace-system"))
    try:
        dry = await post(c, "/validate", review(copy.deepcopy(MISPLACED), dry_run=True))
        applied = copy.deepcopy(MISPLACED)
        applied["metadata"].update(uid="0b5c", creationTimestamp="2026-11-25T07:00:00Z")  # set by the apply
        real_apply = await post(c, "/validate", review(applied))
        assert dry["warnings"] == real_apply["warnings"] and calls == ["llama-8b"]
        changed = copy.deepcopy(MISPLACED)
        changed["spec"]["template"]["spec"]["containers"][0]["args"][-1] = "16384"
        await post(c, "/validate", review(changed))
        assert calls == ["llama-8b", "llama-8b"]
    finally:
        await c.close()


async def test_an_object_too_large_to_remember_is_judged_every_time(monkeypatch):
    import webhook.validate as validate

    calls: list[str] = []
    real = validate.check_workload

    def counting(workload, ctx):  # type: ignore[no-untyped-def]
        calls.append(workload.ref.name)
        return real(workload, ctx)

    monkeypatch.setattr(validate, "check_workload", counting)
    big = copy.deepcopy(MISPLACED)
    big["metadata"]["annotations"] = {"example.com/blob": "x" * validate.MAX_KEY_BYTES}
    reviewer = Reviewer(WebhookConfig(), CTX, None, "gpuplace-system")
    c = await client_for(reviewer)
    try:
        first = await post(c, "/validate", review(copy.deepcopy(big)))
        second = await post(c, "/validate", review(copy.deepcopy(big)))
        assert first["warnings"] == second["warnings"] and calls == ["llama-8b", "llama-8b"]
        assert not reviewer._cache
    finally:
        await c.close()
