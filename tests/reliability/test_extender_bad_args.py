"""Malformed ExtenderArgs and ExtenderBindingArgs (no Pod, wrong types, NodeNames not a list, 10k node
names, an unreadable GPU count) get a 4xx with the reason or an answer whose Error field says why; never
a 5xx, never a stack trace in the log."""

from __future__ import annotations

import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bench.reliability_kit import extender_corpus, extender_verdict, gpu_node, synced_extender
from extender.server import build_app

CORPUS = extender_corpus()


@pytest.fixture(scope="module")
def extender():  # type: ignore[no-untyped-def]
    return synced_extender([gpu_node("node-a"), gpu_node("node-b", 4)])


@pytest.mark.parametrize(("name", "verb", "body"), CORPUS, ids=[f"{v}-{n}" for n, v, _ in CORPUS])
async def test_malformed_scheduler_requests_get_a_reason_never_a_server_error(
    extender, name, verb, body, caplog
):
    client = TestClient(TestServer(build_app(extender)))
    await client.start_server()
    try:
        with caplog.at_level(logging.INFO):
            resp = await client.post(f"/{verb}", data=body, headers={"Content-Type": "application/json"})
            text = await resp.text()
            healthy = (await client.get("/healthz")).status
    finally:
        await client.close()
    assert extender_verdict(verb, resp.status, text) is None, (resp.status, text[:300])
    assert healthy == 200
    assert all(r.exc_info is None for r in caplog.records), [r.getMessage() for r in caplog.records]


async def test_the_reason_names_the_field(extender):
    client = TestClient(TestServer(build_app(extender)))
    await client.start_server()
    by_name = {(n, v): b for n, v, b in CORPUS}
    try:
        for (name, verb), expected in {
            ("missing Pod", "filter"): "Pod: Field required",
            ("NodeNames a string", "prioritize"): "NodeNames: Input should be a valid array",
            ("GPU count a word", "prioritize"): "'many' is not a Kubernetes quantity",
        }.items():
            resp = await client.post(f"/{verb}", data=by_name[(name, verb)])
            assert resp.status == 400 and expected in await resp.text()
        resp = await client.post("/filter", data=by_name[("10k node names", "filter")])
        answer = await resp.json()
        assert resp.status == 200 and len(answer["FailedNodes"]) == 10_000 and answer["Error"] == ""
    finally:
        await client.close()
