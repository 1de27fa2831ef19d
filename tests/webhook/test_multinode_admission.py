"""Multi-node workloads through /mutate and /validate: a LeaderWorkerSet group is stamped on both of its
pod templates and judged as one instance."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from common.config import WebhookConfig
from placement.requirements import GPU_MEMORY_MIN, GROUP, INPUTS_HASH
from tests.published import one
from tests.webhook.reviews import review
from tests.webhook.test_server import CTX, _apply, client_for, post
from webhook.validate import Reviewer


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    c = await client_for(Reviewer(WebhookConfig(scheduler_name="gpuplace"), CTX, None, "gpuplace-system"))
    yield c
    await c.close()


async def test_lws_mutate_stamps_the_leader_and_the_worker_templates_alike(client):
    lws = one("lws-vllm-multinode.yaml")
    r = await post(client, "/mutate", review(lws))
    mutated = _apply(lws, r["patch"])
    lwt = mutated["spec"]["leaderWorkerTemplate"]
    leader, worker = lwt["leaderTemplate"], lwt["workerTemplate"]
    for template in (leader, worker):
        stamps = template["metadata"]["annotations"]
        assert stamps[GROUP] == "leaderworkerset/vllm"
        assert int(stamps[GPU_MEMORY_MIN]) > 40_000  # ~51 GiB of 405B weights per GPU and its KV
        assert template["spec"]["schedulerName"] == "gpuplace"
    assert leader["metadata"]["annotations"] == worker["metadata"]["annotations"]
    again = await post(client, "/mutate", review(mutated))
    assert "patch" not in again  # idempotent on both templates


async def test_lws_inputs_hash_changes_when_only_the_worker_template_changes(client):
    lws = one("lws-vllm-multinode.yaml")
    first = _apply(lws, (await post(client, "/mutate", review(lws)))["patch"])
    changed = one("lws-vllm-multinode.yaml")
    changed["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["resources"]["limits"][
        "nvidia.com/gpu"
    ] = "4"
    second = _apply(changed, (await post(client, "/mutate", review(changed)))["patch"])
    key = ("spec", "leaderWorkerTemplate", "leaderTemplate")
    a, b = first, second
    for k in key:
        a, b = a[k], b[k]
    assert a["metadata"]["annotations"][INPUTS_HASH] != b["metadata"]["annotations"][INPUTS_HASH]


async def test_lws_405b_overflowing_its_group_is_denied_at_admission(client):
    lws = one("lws-vllm-multinode.yaml")
    command = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]["command"]
    command[2] = command[2].replace("--pipeline_parallel_size 2", "--pipeline_parallel_size 1")
    r = await post(client, "/validate", review(lws))
    assert r["allowed"] is False
    assert "gpuplace[oom-risk]: lws/vllm container vllm-leader" in r["status"]["message"]
