"""/validate for DRA workloads: the claim template is read through the API (bounded, cached), and the
workload is judged as its nvidia.com/gpu form would be; claim objects themselves are never denied."""

from __future__ import annotations

import copy
import json

from common.config import WebhookConfig
from placement.checks import CheckContext
from tests.test_dra import PRODUCT, deployment, exactly, template
from tests.webhook.reviews import review
from tests.webhook.test_server import client_for, fake_reader, post
from webhook.validate import Reviewer

CTX = CheckContext.default()
L40S_TEMPLATE = template("gpus", exactly("gpu", f'{PRODUCT} == "NVIDIA L40S"'))


def reviewer_with(*objects: dict) -> Reviewer:
    reader = fake_reader(objects={(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects})
    return Reviewer(WebhookConfig(), CTX, reader, "gpuplace-system")


async def test_dra_deployment_on_one_l40s_is_denied_with_the_nvidia_gpu_message():
    c = await client_for(reviewer_with(L40S_TEMPLATE))
    try:
        dra = await post(c, "/validate", review(deployment()))
        labelled = deployment()
        pod = labelled["spec"]["template"]["spec"]
        del pod["resourceClaims"]
        pod["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-L40S"}
        pod["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
        plain = await post(c, "/validate", review(labelled))
    finally:
        await c.close()
    assert dra["allowed"] is False and dra["status"]["message"].startswith("gpuplace[oom-risk]: deploy/llm")
    assert dra["status"]["message"] == plain["status"]["message"]


async def test_a_template_that_cannot_be_read_is_a_warning_not_a_denial():
    c = await client_for(reviewer_with())
    try:
        r = await post(c, "/validate", review(deployment()))
    finally:
        await c.close()
    assert r["allowed"] is True
    [warning] = r["warnings"]
    assert warning.startswith("gpuplace[unknown-model]")
    assert "ResourceClaimTemplate gpus lookup failed" in warning


async def test_findings_follow_a_changed_template_not_a_stale_cache():
    reviewer = reviewer_with(L40S_TEMPLATE)
    assert any(f.code == "oom-risk" for f in await reviewer.findings(deployment(), "ml"))
    b200 = copy.deepcopy(L40S_TEMPLATE)
    b200["spec"]["spec"]["devices"]["requests"][0]["exactly"]["selectors"][0]["cel"]["expression"] = (
        f'{PRODUCT} == "NVIDIA B200"'
    )
    other = reviewer_with(b200)
    other._cache = reviewer._cache  # the same findings cache, the template now says B200
    assert not any(f.code == "oom-risk" for f in await other.findings(deployment(), "ml"))


async def test_claim_templates_are_admitted_with_at_most_one_info_finding():
    c = await client_for(reviewer_with())
    try:
        fine = await post(c, "/validate", review(L40S_TEMPLATE))
        z9 = template("x", exactly("gpu", f'{PRODUCT} == "NVIDIA Z9"'))
        unknown = await post(c, "/validate", review(z9))
        broken = await post(c, "/validate", review(template("y", exactly("gpu", f"{PRODUCT} == 'x"))))
    finally:
        await c.close()
    assert fine["allowed"] is True and not fine.get("warnings")
    assert unknown["allowed"] is True and len(unknown["warnings"]) == 1
    assert "NVIDIA Z9" in unknown["warnings"][0]
    assert broken["allowed"] is True and "not valid CEL" in broken["warnings"][0]


def generated_claim(request: dict) -> dict:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {
            "name": "llm-abc-gpu-x1",
            "namespace": "ml",
            "annotations": {"resource.kubernetes.io/pod-claim-name": "gpu"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": "llm-abc", "uid": "u", "controller": True}
            ],
        },
        "spec": {"devices": {"requests": [request]}},
    }


async def test_memory_floor_mutation_is_off_by_default_then_adds_one_idempotent_selector():
    import jsonpatch

    from placement.dra import claim_spec as read_claim
    from webhook.admission import parse_review

    pod = {
        "metadata": {
            "name": "llm-abc",
            "namespace": "ml",
            "annotations": {"gpuplace.io/gpu-memory-min": "70000"},
        }
    }
    reader = fake_reader(objects={("ml", "llm-abc"): pod})
    claim = generated_claim(exactly("gpu", f'{PRODUCT}.startsWith("NVIDIA")'))
    req = parse_review(json.dumps(review(claim)).encode())
    assert await Reviewer(WebhookConfig(), CTX, reader, "gpuplace-system").claim_memory_floor(req) == []
    on = Reviewer(WebhookConfig(dra_memory_floor=True), CTX, reader, "gpuplace-system")
    ops = await on.claim_memory_floor(req)
    patched = jsonpatch.apply_patch(claim, ops)
    [request] = read_claim(patched).requests
    assert request.choices[0].reading.memory_min_bytes == 70000 * 2**20
    assert await on.claim_memory_floor(parse_review(json.dumps(review(patched)).encode())) == []
    # A claim the user wrote (not made from a template for a pod) is left alone.
    del claim["metadata"]["annotations"]
    assert await on.claim_memory_floor(parse_review(json.dumps(review(claim)).encode())) == []
