"""Native constraints (webhook.native_constraints): /mutate writes the memory floor and a pinned tier as
required node affinity on GPU Feature Discovery and Karpenter labels, AND-ed into the pod's own affinity,
idempotent, and never on a Pod UPDATE (a Pod's affinity is immutable)."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from common.config import ConfigError, WebhookConfig, load_config
from placement.native_affinity import (
    GFD_MEMORY_LABEL,
    KARPENTER_MEMORY_LABEL,
    NODE_AFFINITY,
    REQUIRED,
    merge_terms,
)
from placement.requirements import GPU_MEMORY_MIN
from tests.manifests import H100, vllm
from tests.webhook.reviews import review
from tests.webhook.test_server import CTX, _apply, client_for, post
from webhook.validate import Reviewer

KARPENTER_NAME = "karpenter.k8s.aws/instance-gpu-name"
ZONE = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a"]}
SPOT = {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LLAMA_70B = ("meta-llama/Llama-3.1-70B-Instruct", "--tensor-parallel-size", "2", "--max-model-len", "8192")


@pytest.fixture
async def native() -> AsyncIterator[TestClient]:
    c = await client_for(Reviewer(WebhookConfig(native_constraints=True), CTX, None, "gpuplace-system"))
    yield c
    await c.close()


async def _mutate(client: TestClient, obj: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[Any]]:
    r = await post(client, "/mutate", review(obj, **kw))
    if "patch" not in r:
        return copy.deepcopy(obj), []
    return _apply(obj, r["patch"]), json.loads(base64.b64decode(r["patch"]))


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"] if obj["kind"] != "Pod" else obj["spec"]


def _terms(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return _pod_spec(obj)["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]


def _floor(obj: dict[str, Any]) -> int:
    return int(obj["spec"]["template"]["metadata"]["annotations"][GPU_MEMORY_MIN])


def _with_required(obj: dict[str, Any], *terms: dict[str, Any]) -> dict[str, Any]:
    _pod_spec(obj)["affinity"] = {
        "nodeAffinity": {REQUIRED: {"nodeSelectorTerms": list(terms)}},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []},
    }
    return obj


async def test_off_by_default_no_affinity_is_written():
    c = await client_for(Reviewer(WebhookConfig(), CTX, None, "gpuplace-system"))
    try:
        out, _ = await _mutate(c, vllm(*LLAMA_70B, gpus=2))
    finally:
        await c.close()
    assert "affinity" not in _pod_spec(out)
    assert NODE_AFFINITY not in out["spec"]["template"]["metadata"]["annotations"]


async def test_floor_becomes_one_term_per_label_family_when_the_pod_has_no_affinity(native):
    out, _ = await _mutate(native, vllm(*LLAMA_70B, gpus=2))
    bound = [str(_floor(out) - 1)]
    assert _terms(out) == [
        {"matchExpressions": [{"key": GFD_MEMORY_LABEL, "operator": "Gt", "values": bound}]},
        {"matchExpressions": [{"key": KARPENTER_MEMORY_LABEL, "operator": "Gt", "values": bound}]},
    ]
    # The 70B model at tp=2 needs more than an L40S (46068 MiB) and less than an H100 (81559 MiB).
    assert 46068 < _floor(out) < 81559


async def test_pinned_tier_adds_karpenter_gpu_name_and_keeps_the_users_node_selector(native):
    out, _ = await _mutate(native, vllm(*LLAMA_70B, gpus=2, product=H100))
    assert _pod_spec(out)["nodeSelector"] == {"nvidia.com/gpu.product": H100}
    karpenter = _terms(out)[1]["matchExpressions"]
    assert {"key": KARPENTER_NAME, "operator": "In", "values": ["h100"]} in karpenter


async def test_users_required_terms_each_get_every_alternative_so_nothing_widens(native):
    obj = _with_required(vllm(*LLAMA_70B, gpus=2), {"matchExpressions": [ZONE]}, {"matchExpressions": [SPOT]})
    out, _ = await _mutate(native, obj)
    terms = _terms(out)
    assert len(terms) == 4
    # Every resulting term still holds one of the user's terms whole: the union allows no new node.
    assert all(ZONE in t["matchExpressions"] or SPOT in t["matchExpressions"] for t in terms)
    keys = [{e["key"] for e in t["matchExpressions"]} for t in terms]
    assert keys == [
        {ZONE["key"], GFD_MEMORY_LABEL},
        {ZONE["key"], KARPENTER_MEMORY_LABEL},
        {SPOT["key"], GFD_MEMORY_LABEL},
        {SPOT["key"], KARPENTER_MEMORY_LABEL},
    ]
    # The rest of the user's affinity is untouched.
    assert _pod_spec(out)["affinity"]["podAntiAffinity"] == {
        "preferredDuringSchedulingIgnoredDuringExecution": []
    }


async def test_second_mutate_is_an_empty_patch(native):
    obj = _with_required(vllm(*LLAMA_70B, gpus=2, product=H100), {"matchExpressions": [ZONE]})
    once, _ = await _mutate(native, obj)
    twice, ops = await _mutate(native, once)
    assert ops == [] and twice == once


async def test_changed_floor_replaces_gpuplaces_own_expressions_and_keeps_the_users(native):
    obj = _with_required(vllm(*LLAMA_70B, gpus=2), {"matchExpressions": [ZONE]})
    once, _ = await _mutate(native, obj)
    smaller = copy.deepcopy(once)
    container = smaller["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct"]
    container["args"] = ["--max-model-len", "8192"]
    out, _ = await _mutate(native, smaller, operation="UPDATE", old=once)
    bound = [str(_floor(out) - 1)]
    assert _floor(out) < _floor(once)
    assert _terms(out) == [
        {"matchExpressions": [ZONE, {"key": GFD_MEMORY_LABEL, "operator": "Gt", "values": bound}]},
        {"matchExpressions": [ZONE, {"key": KARPENTER_MEMORY_LABEL, "operator": "Gt", "values": bound}]},
    ]


async def test_pod_create_gets_affinity_but_pod_update_never_touches_it(native):
    deploy = vllm(*LLAMA_70B, gpus=2)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "llama", "namespace": "ns"},
        "spec": copy.deepcopy(deploy["spec"]["template"]["spec"]),
    }
    created, _ = await _mutate(native, pod)
    assert len(_terms(created)) == 2
    relabelled = copy.deepcopy(pod)  # a Pod from before the option was turned on
    relabelled["metadata"]["labels"] = {"team": "search"}
    _, ops = await _mutate(native, relabelled, operation="UPDATE", old=pod)
    assert not any("affinity" in op["path"] for op in ops)


async def test_unknown_model_gets_no_constraint(native):
    obj = vllm("acme/house-model", gpus=1)
    out, _ = await _mutate(native, obj)
    assert "affinity" not in _pod_spec(out)


async def test_only_the_configured_family_is_written():
    cfg = WebhookConfig(native_constraints=True, native_constraint_labels=("gpu-feature-discovery",))
    c = await client_for(Reviewer(cfg, CTX, None, "gpuplace-system"))
    try:
        out, _ = await _mutate(c, vllm(*LLAMA_70B, gpus=2))
    finally:
        await c.close()
    assert [t["matchExpressions"][0]["key"] for t in _terms(out)] == [GFD_MEMORY_LABEL]


def test_term_that_already_holds_an_alternative_is_left_as_the_user_wrote_it():
    gfd = {"key": GFD_MEMORY_LABEL, "operator": "Gt", "values": ["80000"]}
    karpenter = {"key": KARPENTER_MEMORY_LABEL, "operator": "Gt", "values": ["80000"]}
    terms = [{"matchExpressions": [ZONE, gfd]}]
    assert merge_terms(terms, [], [[gfd], [karpenter]]) == terms


def test_unknown_label_family_is_a_config_error_naming_the_field(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("webhook:\n  native_constraints: true\n  native_constraint_labels: [gke]\n")
    with pytest.raises(ConfigError, match=r"webhook\.native_constraint_labels"):
        load_config(str(path), environ={})


async def test_pod_made_from_a_constrained_template_gets_an_empty_patch(native):
    """The ReplicaSet's pod carries the template's affinity and stamps: the pods webhook has nothing to add
    (the inputs hash leaves gpuplace's own expressions out)."""
    deploy, _ = await _mutate(native, vllm(*LLAMA_70B, gpus=2, product=H100))
    template = deploy["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": "llama-abc", "namespace": "ns"},
        "spec": copy.deepcopy(template["spec"]),
    }
    _, ops = await _mutate(native, pod)
    assert ops == []


async def test_replace_that_drops_the_constraints_gets_them_back(native):
    live, _ = await _mutate(native, vllm(*LLAMA_70B, gpus=2))
    replaced = copy.deepcopy(live)
    del replaced["spec"]["template"]["spec"]["affinity"]
    del replaced["spec"]["template"]["metadata"]["annotations"]
    out, _ = await _mutate(native, replaced, operation="UPDATE", old=live)
    assert out["spec"]["template"] == live["spec"]["template"]


async def test_leaderworkerset_gpu_template_is_constrained_and_a_cpu_only_leader_is_not(native):
    lws = yaml.safe_load((EXAMPLES / "lws-llama405b-multinode.yaml").read_text())
    worker = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]
    leader = copy.deepcopy(worker)
    leader["spec"]["containers"][0].pop("resources")  # a coordinator with no GPU
    lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"] = leader
    out, _ = await _mutate(native, lws)
    templates = out["spec"]["leaderWorkerTemplate"]
    worker_terms = templates["workerTemplate"]["spec"]["affinity"]["nodeAffinity"][REQUIRED][
        "nodeSelectorTerms"
    ]
    assert {e["key"] for t in worker_terms for e in t["matchExpressions"]} >= {GFD_MEMORY_LABEL}
    assert "affinity" not in templates["leaderTemplate"]["spec"]
    _, ops = await _mutate(native, out)
    assert ops == []
