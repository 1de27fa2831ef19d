"""The CRDs that serve models through the webhook: judged like a Deployment on /validate, never patched
on /mutate, and every review's coverage counted in gpuplace_workloads_judged_total."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from common.config import WebhookConfig
from placement.checks import CheckContext
from placement.workloads import READERS
from tests.manifests import L4, vllm
from tests.test_crds import KUBEAI_L4, LLMISVC, serve_llm
from tests.webhook.reviews import review
from tests.webhook.test_server import client_for, post
from webhook.admission import Request, parse_review
from webhook.validate import Reviewer

CTX = CheckContext.default()
REPO = Path(__file__).resolve().parents[2]


def reviewer() -> Reviewer:
    return Reviewer(WebhookConfig(), CTX, None, "gpuplace-system")


async def test_an_oversized_ray_serve_model_is_denied_and_counted_as_fully_judged():
    client = await client_for(reviewer())
    try:
        answer = await post(client, "/validate", review(serve_llm("meta-llama/Llama-3.1-70B-Instruct")))
        assert answer["allowed"] is False
        message = answer["status"]["message"]
        assert message.startswith("gpuplace[oom-risk]: rayservice/llm container llms/0")
        metrics = await (await client.get("/metrics")).text()
        assert 'gpuplace_workloads_judged_total{coverage="full",reason=""} 1.0' in metrics
        assert 'gpuplace_webhook_requests_total{endpoint="validate",kind="RayService"' in metrics
    finally:
        await client.close()


async def test_coverage_metric_counts_no_model_and_not_judged_by_reason():
    client = await client_for(reviewer())
    adapter = yaml.safe_load((REPO / "examples" / "aibrix-modeladapter.yaml").read_text())
    unknown = vllm("acme/house-model", "--max-model-len", "4096", product=L4, name="house")
    try:
        for obj in (adapter, unknown, unknown):
            answer = await post(client, "/validate", review(obj))
            assert answer["allowed"] is True
        metrics = await (await client.get("/metrics")).text()
        assert 'gpuplace_workloads_judged_total{coverage="not-judged",reason="lora-adapter"} 1.0' in metrics
        # The second review of the same object comes from the findings cache: counted all the same.
        assert 'gpuplace_workloads_judged_total{coverage="no-model",reason=""} 2.0' in metrics
    finally:
        await client.close()


async def test_a_crd_is_never_patched_by_mutate():
    client = await client_for(reviewer())
    try:
        for obj in (yaml.safe_load(KUBEAI_L4), yaml.safe_load(LLMISVC)):
            answer = await post(client, "/mutate", review(obj))
            assert answer["allowed"] is True and "patch" not in answer
    finally:
        await client.close()


async def test_kubeai_scale_from_zero_is_judged_against_its_own_model():
    answer = await reviewer().validate(_request(yaml.safe_load(KUBEAI_L4)))
    codes = {f.code.value for f in answer.findings}
    assert {"cold-start", "scale-thrashing"} <= codes
    assert answer.coverage is not None and answer.coverage.level == "full"


def _request(obj: dict[str, Any]) -> Request:
    return parse_review(json.dumps(review(obj)).encode())


def test_every_crd_reader_has_a_validating_rule_and_no_mutating_one():
    docs = list(yaml.safe_load_all((REPO / "manifests" / "base" / "webhooks.yaml").read_text()))
    rules = {
        doc["kind"]: {(g, r) for hook in doc["webhooks"] for rule in hook["rules"]
                      for g in rule["apiGroups"] for r in rule["resources"]}
        for doc in docs
    }  # fmt: skip
    for group, kind in READERS:
        resource = kind.lower() + "s"
        assert (group, resource) in rules["ValidatingWebhookConfiguration"], (group, kind)
        assert (group, resource) not in rules["MutatingWebhookConfiguration"], (group, kind)


async def test_a_crd_update_that_moves_only_the_tier_is_judged_again():
    old = serve_llm("meta-llama/Llama-3.1-70B-Instruct")
    new = copy.deepcopy(old)
    [group] = new["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    group["template"]["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "8"
    answer = await reviewer().validate(parse_review(json.dumps(review(new, "UPDATE", old=old)).encode()))
    assert answer.note == "" and answer.coverage is not None  # judged, not passed as "GPU spec unchanged"
    assert not any(f.code.value == "oom-risk" for f in answer.findings)  # tp=2 on H100s holds 70B
