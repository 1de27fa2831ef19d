"""Objects nested far deeper than any workload (under the JSON parser's 1024 levels) get a real answer:
judged when the nesting sits where the checks do not read, else allowed with a one-line reason; never
"internal error", never a stack trace in the log."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import orjson

from common.config import WebhookConfig
from tests.webhook.reviews import review
from tests.webhook.test_server import CTX, MISPLACED, client_for
from webhook.validate import Reviewer, content_key

DEEP = '{"a":' * 1000 + "{}" + "}" * 1000


def _body(obj: dict[str, Any], **kw: Any) -> str:
    """The review as JSON with the "DEEP" placeholder replaced by 1,000 nested objects (the stdlib
    encoder could not write them itself)."""
    return json.dumps(review(obj, **kw)).replace('"DEEP"', DEEP)


async def _answer(c: Any, path: str, body: str) -> dict[str, Any]:
    resp = await c.post(path, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["response"]


def test_the_cache_key_of_a_deeply_nested_object_is_none_not_an_error():
    shallow = copy.deepcopy(MISPLACED)
    shallow["spec"]["x-extra"] = "DEEP"
    deep = orjson.loads(json.dumps(shallow).replace('"DEEP"', DEEP))  # orjson parses 1024 levels
    assert content_key(shallow, "ns") is not None
    assert content_key(deep, "ns") is None


async def test_deep_nesting_in_an_unread_spec_field_is_judged_like_the_plain_object(caplog):
    obj = copy.deepcopy(MISPLACED)
    c = await client_for(Reviewer(WebhookConfig(), CTX, None, "gpuplace-system"))
    try:
        plain = await _answer(c, "/validate", json.dumps(review(copy.deepcopy(obj))))
        obj["spec"]["template"]["spec"]["x-extra"] = "DEEP"
        with caplog.at_level(logging.INFO):
            deep = await _answer(c, "/validate", _body(obj))
            again = await _answer(c, "/validate", _body(obj))  # not remembered, judged again
            mutated = await _answer(c, "/mutate", _body(obj))
    finally:
        await c.close()
    assert deep["warnings"] == plain["warnings"] == again["warnings"]
    assert any("tier-misplacement" in w for w in deep["warnings"])
    assert mutated["allowed"] is True and mutated["patchType"] == "JSONPatch"
    assert "Traceback" not in caplog.text and "internal error" not in caplog.text


async def test_deep_nesting_where_the_checks_read_is_allowed_with_a_one_line_reason(caplog):
    obj = copy.deepcopy(MISPLACED)
    obj["spec"]["template"]["spec"]["containers"][0]["args"][0] = "DEEP"
    c = await client_for(Reviewer(WebhookConfig(), CTX, None, "gpuplace-system"))
    try:
        with caplog.at_level(logging.INFO):
            created = await _answer(c, "/validate", _body(obj))
            updated = await _answer(c, "/validate", _body(obj, operation="UPDATE", old=obj))
            mutated = await _answer(c, "/mutate", _body(obj))
    finally:
        await c.close()
    for r in (created, updated):
        assert r["allowed"] is True
        assert r["warnings"] == [
            "gpuplace: check skipped (object nested too deeply to read); see the gpuplace webhook logs"
        ]
    assert mutated == {"uid": mutated["uid"], "allowed": True}
    assert "nested too deeply" in caplog.text
    assert "Traceback" not in caplog.text and "internal error" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)
