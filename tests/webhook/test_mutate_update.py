"""/mutate on UPDATE: a pod template changes only when the GPU spec does (a changed template rolls out
every pod of the workload)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from common.config import WebhookConfig
from placement.requirements import GPU_MEMORY_MIN, INPUTS_HASH, STAMPED
from tests.webhook.reviews import review
from tests.webhook.test_server import CTX, MISPLACED, _apply, client_for, post
from webhook.validate import Reviewer


@pytest.fixture
async def scheduling_client() -> AsyncIterator[TestClient]:
    c = await client_for(Reviewer(WebhookConfig(scheduler_name="gpuplace"), CTX, None, "gpuplace-system"))
    yield c
    await c.close()


async def _mutated(client: TestClient, obj: dict[str, Any]) -> dict[str, Any]:
    r = await post(client, "/mutate", review(obj))
    return _apply(obj, r["patch"]) if "patch" in r else copy.deepcopy(obj)


def _template(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]


async def test_relabelling_a_deployment_created_before_gpuplace_leaves_its_pod_template_alone(
    scheduling_client,
):
    old = copy.deepcopy(MISPLACED)  # no stamps, no schedulerName: admitted before the webhook existed
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"team": "search"}
    r = await post(scheduling_client, "/mutate", review(new, operation="UPDATE", old=old))
    assert r["allowed"] is True and "patch" not in r


async def test_replace_that_drops_the_stamps_gets_the_old_ones_back_unchanged(scheduling_client):
    live = await _mutated(scheduling_client, copy.deepcopy(MISPLACED))
    old_template = _template(live)
    # A stamp from an older gpuplace that estimated differently stays as it was: no rollout.
    old_template["metadata"]["annotations"][GPU_MEMORY_MIN] = "1"
    replaced = copy.deepcopy(live)
    replaced["metadata"]["labels"] = {"team": "search"}
    del _template(replaced)["metadata"]["annotations"]
    _template(replaced)["spec"]["schedulerName"] = "default-scheduler"  # what API defaulting fills in
    r = await post(scheduling_client, "/mutate", review(replaced, operation="UPDATE", old=live))
    restored = _apply(replaced, r["patch"])
    assert _template(restored) == old_template


async def test_a_changed_gpu_spec_is_stamped_afresh(scheduling_client):
    live = await _mutated(scheduling_client, copy.deepcopy(MISPLACED))
    changed = copy.deepcopy(live)
    changed["spec"]["template"]["spec"]["containers"][0]["args"][-1] = "16384"  # --max-model-len
    r = await post(scheduling_client, "/mutate", review(changed, operation="UPDATE", old=live))
    stamped = _template(_apply(changed, r["patch"]))["metadata"]["annotations"]
    old_stamps = _template(live)["metadata"]["annotations"]
    assert stamped[INPUTS_HASH] != old_stamps[INPUTS_HASH]
    assert set(STAMPED) - {"gpuplace.io/group", "gpuplace.io/node-affinity"} <= set(stamped)
