"""/validate and /mutate over HTTP with real AdmissionReview shapes (aiohttp test server, no TLS)."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import jsonpatch
import pytest
from aiohttp.test_utils import TestClient, TestServer

from common.config import WebhookConfig
from placement.checks import CheckContext
from placement.requirements import GPU_MEMORY_MIN, INPUTS_HASH, NVLINK
from tests.manifests import H100, L40S, vllm
from tests.webhook.reviews import review
from webhook.cluster import ClusterReader
from webhook.server import make_app
from webhook.validate import Reviewer

CTX = CheckContext.default()
OOM = vllm("meta-llama/Llama-3.1-70B-Instruct", "--max-model-len", "8192", product=L40S, name="llama-70b")
MISPLACED = vllm("meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192", product=H100, name="llama-8b")


def fake_reader(
    ns_labels: dict[str, dict[str, str]] | None = None,
    objects: dict[tuple[str, str], dict[str, Any]] | None = None,
    delay: float = 0.0,
) -> ClusterReader:
    def fetch_object(group: str, version: str, plural: str, ns: str, name: str) -> dict[str, Any]:
        if delay:
            import time

            time.sleep(delay)
        try:
            return copy.deepcopy((objects or {})[(ns, name)])
        except KeyError:
            raise LookupError(f"{name} not found") from None

    def fetch_namespace(name: str) -> dict[str, Any]:
        return {"metadata": {"labels": (ns_labels or {}).get(name, {})}}

    return ClusterReader(fetch_object, fetch_namespace, timeout_s=0.2, ttl_s=30)


async def client_for(reviewer: Reviewer) -> TestClient:
    client = TestClient(TestServer(make_app(reviewer)))
    await client.start_server()
    return client


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    c = await client_for(
        Reviewer(
            WebhookConfig(), CTX, fake_reader({"relaxed": {"gpuplace.io/mode": "warn"}}), "gpuplace-system"
        )
    )
    yield c
    await c.close()


async def post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(path, json=body)
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["apiVersion"] == "admission.k8s.io/v1" and data["kind"] == "AdmissionReview"
    assert data["response"]["uid"] == body["request"]["uid"]
    return data["response"]


async def test_oom_prone_deployment_is_denied_with_the_finding_text(client):
    r = await post(client, "/validate", review(OOM))
    assert r["allowed"] is False and r["status"]["code"] == 403
    assert r["status"]["message"].startswith("gpuplace[oom-risk]: deploy/llama-70b container server needs ")
    assert "patch" not in r  # a validating response never carries a patch
    assert "error-oom-risk" in r["auditAnnotations"] and all("/" not in k for k in r["auditAnnotations"])


async def test_misplaced_deployment_is_allowed_with_a_warning(client):
    r = await post(client, "/validate", review(MISPLACED))
    assert r["allowed"] is True
    assert any(w.startswith("gpuplace[tier-misplacement]: deploy/llama-8b") for w in r["warnings"])


async def test_namespace_labelled_warn_turns_the_denial_into_a_warning(client):
    r = await post(client, "/validate", review(OOM, namespace="relaxed"))
    assert r["allowed"] is True and r["warnings"][0].startswith("gpuplace[oom-risk]")


async def test_exempt_and_system_namespaces_are_not_judged(client):
    for ns in ("kube-system", "gpuplace-system"):
        r = await post(client, "/validate", review(OOM, namespace=ns))
        assert r == {"uid": r["uid"], "allowed": True}


async def test_update_with_unchanged_gpu_spec_is_not_rejudged(client):
    old = copy.deepcopy(OOM)
    new = copy.deepcopy(OOM)
    new["metadata"]["labels"] = {"team": "search"}
    new["spec"]["replicas"] = 3
    r = await post(client, "/validate", review(new, operation="UPDATE", old=old))
    assert r["allowed"] is True and "warnings" not in r
    changed = copy.deepcopy(OOM)
    changed["spec"]["template"]["spec"]["containers"][0]["args"][-1] = "16384"
    r = await post(client, "/validate", review(changed, operation="UPDATE", old=old))
    assert r["allowed"] is False


async def test_dry_run_gets_the_same_answer(client):
    r = await post(client, "/validate", review(OOM, dry_run=True))
    assert r["allowed"] is False


async def test_mutation_stamps_annotations_and_applies_cleanly_with_and_without_existing_ones(client):
    for obj in (copy.deepcopy(MISPLACED), _with_annotations(MISPLACED, {"team/owner": "x"})):
        r = await post(client, "/mutate", review(obj))
        assert r["allowed"] is True and r["patchType"] == "JSONPatch"
        patched = _apply(obj, r["patch"])
        annotations = patched["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations[GPU_MEMORY_MIN]) > 16000 and annotations[NVLINK] == "none"
        assert annotations[INPUTS_HASH]
        # Idempotent: the mutated object gets an empty patch.
        again = await post(client, "/mutate", review(patched))
        assert "patch" not in again


async def test_mutation_sets_scheduler_name_when_configured():
    cfg = WebhookConfig(scheduler_name="gpuplace-scheduler")
    c = await client_for(Reviewer(cfg, CTX, None, "gpuplace-system"))
    try:
        r = await post(c, "/mutate", review(copy.deepcopy(MISPLACED)))
        patched = _apply(MISPLACED, r["patch"])
        assert patched["spec"]["template"]["spec"]["schedulerName"] == "gpuplace-scheduler"
    finally:
        await c.close()


async def test_autoscaler_target_is_read_through_the_api():
    target = vllm(
        "meta-llama/Llama-3.1-70B-Instruct",
        "--tensor-parallel-size",
        "4",
        "--max-model-len",
        "8192",
        gpus=4,
        product=H100,
        name="big",
    )
    reader = fake_reader(objects={("ns", "big"): target})
    c = await client_for(Reviewer(WebhookConfig(), CTX, reader, "gpuplace-system"))
    try:
        r = await post(c, "/validate", review(_keda("big")))
        assert any("gpuplace[cold-start]" in w and "GiB of weights" in w for w in r["warnings"])
        r = await post(c, "/validate", review(_keda("missing")))
        assert any("load time unknown (target lookup failed" in w for w in r["warnings"])
    finally:
        await c.close()


async def test_slow_api_degrades_to_a_warning_not_a_stall():
    reader = fake_reader(objects={("ns", "big"): MISPLACED}, delay=1.0)
    c = await client_for(Reviewer(WebhookConfig(), CTX, reader, "gpuplace-system"))
    try:
        r = await post(c, "/validate", review(_keda("big")))
        assert any("timed out after 0.2s" in w for w in r["warnings"])
    finally:
        await c.close()


async def test_internal_error_answers_allowed_with_a_skip_warning_and_counts_it(client, monkeypatch):
    def boom(*_a, **_k):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug")

    monkeypatch.setattr("webhook.validate.check_workload", boom)
    r = await post(client, "/validate", review(OOM))
    assert r["allowed"] is True and "check skipped (internal error)" in r["warnings"][0]
    metrics = await (await client.get("/metrics")).text()
    assert 'gpuplace_webhook_checks_skipped_total{endpoint="validate",reason="error"} 1.0' in metrics


async def test_budget_exceeded_answers_allowed():
    cfg = WebhookConfig(timeout_budget_s=0.05)
    reviewer = Reviewer(cfg, CTX, None, "gpuplace-system")

    async def slow(_req):  # type: ignore[no-untyped-def]
        await asyncio.sleep(1)

    reviewer.validate = slow  # type: ignore[method-assign]
    c = await client_for(reviewer)
    try:
        r = await post(c, "/validate", review(OOM))
        assert r["allowed"] is True and "timed out after 0.05s" in r["warnings"][0]
    finally:
        await c.close()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "body is not JSON"),
        (b'{"kind": "Pod"}', "expected kind AdmissionReview"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request is missing"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "1", '
            b'"kind": {"kind": "Pod"}, "operation": "EXPLODE"}}',
            "request.operation",
        ),
    ],
)
async def test_malformed_review_is_http_400_with_a_reason(client, body, reason):
    resp = await client.post("/validate", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400 and reason in (await resp.json())["error"]


async def test_oversize_body_is_refused(client):
    resp = await client.post(
        "/validate", data=b"x" * (4 * 2**20), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413


async def test_health_and_metrics_endpoints(client):
    assert (await client.get("/healthz")).status == 200 and (await client.get("/readyz")).status == 200
    await post(client, "/validate", review(OOM))
    text = await (await client.get("/metrics")).text()
    assert 'gpuplace_findings_total{code="oom-risk",mode="enforce",severity="error"}' in text
    assert 'gpuplace_decisions_total{decision="denied",mode="enforce"}' in text


def _keda(target: str) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "so", "namespace": "ns"},
        "spec": {"scaleTargetRef": {"name": target}, "triggers": []},
    }


def _with_annotations(obj: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["spec"]["template"]["metadata"]["annotations"] = dict(annotations)
    return out


def _apply(obj: dict[str, Any], patch_b64: str) -> dict[str, Any]:
    ops = json.loads(base64.b64decode(patch_b64))
    return jsonpatch.apply_patch(copy.deepcopy(obj), ops)
