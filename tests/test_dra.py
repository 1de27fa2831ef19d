"""DRA workloads (resource.k8s.io/v1): claims resolved to GPU counts and tiers, judged like nvidia.com/gpu."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from placement.cel import read_selector
from placement.checks import CheckContext, check_objects
from placement.dra import ClaimIndex, claim_spec
from placement.findings import Severity
from placement.workload import extract

CTX = CheckContext.default()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PRODUCT = 'device.attributes["gpu.nvidia.com"].productName'


def template(name: str, *requests: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"spec": {"devices": {"requests": list(requests)}}},
    }


def exactly(name: str, expression: str | None = None, count: int = 1, cls: str = "gpu.nvidia.com") -> dict:
    body: dict[str, Any] = {"deviceClassName": cls, "count": count}
    if expression:
        body["selectors"] = [{"cel": {"expression": expression}}]
    return {"name": name, "exactly": body}


def deployment(claim: str = "gpus", model: str = "meta-llama/Llama-3.1-70B-Instruct", **spec: Any) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "ml"},
        "spec": {
            "template": {
                "spec": {
                    "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": claim}],
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai",
                            "args": ["--model", model, "--max-model-len", "8192"],
                            "resources": {"claims": [{"name": "gpu"}]},
                        }
                    ],
                    **spec,
                }
            }
        },
    }


def findings(*objects: dict[str, Any]) -> list[Any]:
    result = check_objects(list(objects), CTX)
    assert not result.errors, result.errors
    return [f for _, f in result.findings]


# --- the CEL reader ------------------------------------------------------------------------------------


def test_selector_reader_reads_products_memory_and_driver():
    r = read_selector(f'device.driver == "gpu.nvidia.com" && {PRODUCT} in ["NVIDIA L40S", "NVIDIA L4"]')
    assert r.drivers == ["gpu.nvidia.com"] and [t.value for t in r.products[0]] == [
        "NVIDIA L40S",
        "NVIDIA L4",
    ]
    r = read_selector("device.capacity['gpu.nvidia.com'].memory.compareTo(quantity('40Gi')) >= 0")
    assert r.memory_min_bytes == 40 * 2**30 and not r.unread


def test_selector_reader_keeps_what_it_cannot_read_and_reports_text_that_is_not_cel():
    r = read_selector(
        f'{PRODUCT}.matches("H100") && '
        'device.attributes["gpu.nvidia.com"].cudaComputeCapability >= semver("9.0")'
    )
    assert r.products and len(r.unread) == 1
    assert read_selector(f'{PRODUCT} == "NVIDIA L40S').invalid == ["unterminated string literal"]
    assert read_selector(f"({PRODUCT} == 'x'").invalid


# --- claims to workloads -------------------------------------------------------------------------------


def test_claim_template_pins_tier_and_count():
    objs = [template("gpus", exactly("gpu", f'{PRODUCT} == "NVIDIA L40S"', count=2)), deployment()]
    w = extract(objs[1], CTX.gpus, ClaimIndex(objs).lookup("ml"))
    assert w is not None
    [c] = w.gpu_containers
    assert c.gpus == 2 and [g.id for g in w.tier.gpus] == ["L40S"]


def test_dra_oom_is_denied_with_the_same_message_as_the_nvidia_gpu_form():
    dra = findings(template("gpus", exactly("gpu", f'{PRODUCT} == "NVIDIA L40S"')), deployment())
    labelled = deployment()
    pod = labelled["spec"]["template"]["spec"]
    del pod["resourceClaims"]
    pod["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-L40S"}
    pod["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    plain = findings(labelled)
    assert [f.message for f in dra] == [f.message for f in plain]
    assert dra[0].code == "oom-risk" and dra[0].effective_severity == Severity.ERROR


def test_memory_floor_selector_pins_the_tiers_that_have_it():
    floor = "device.capacity['gpu.nvidia.com'].memory.compareTo(quantity('140Gi')) >= 0"
    objs = [template("gpus", exactly("gpu", floor)), deployment()]
    w = extract(objs[1], CTX.gpus, ClaimIndex(objs).lookup("ml"))
    assert w is not None and w.tier.gpus
    assert all(g.memory_gib >= 140 for g in w.tier.gpus)


def test_first_available_is_judged_per_choice():
    request = {
        "name": "gpu",
        "firstAvailable": [
            {
                "name": "h100",
                "deviceClassName": "gpu.nvidia.com",
                "selectors": [{"cel": {"expression": f'{PRODUCT} == "NVIDIA H100 80GB HBM3"'}}],
            },
            {
                "name": "l40s",
                "deviceClassName": "gpu.nvidia.com",
                "count": 2,
                "selectors": [{"cel": {"expression": f'{PRODUCT} == "NVIDIA L40S"'}}],
            },
        ],
    }
    model = "Qwen/Qwen2.5-32B-Instruct"
    found = findings(template("gpus", request), deployment(model=model))
    assert all(f.effective_severity != Severity.ERROR for f in found)
    assert any("firstAvailable gpu/l40s" in f.message and f.code == "oom-risk" for f in found)
    # Neither choice holds 70B bf16 at tp=1: denied, each choice named.
    denied = findings(template("gpus", request), deployment())
    errors = [f for f in denied if f.effective_severity == Severity.ERROR]
    assert {"gpu/h100", "gpu/l40s"} == {
        lbl for f in errors for lbl in ("gpu/h100", "gpu/l40s") if lbl in f.message
    }


def test_mig_device_class_with_profile_is_a_slice_tier():
    expr = 'device.attributes["gpu.nvidia.com"].profile == "1g.10gb"'
    objs = [template("gpus", exactly("gpu", expr, cls="mig.nvidia.com")), deployment()]
    w = extract(objs[1], CTX.gpus, ClaimIndex(objs).lookup("ml"))
    assert w is not None and w.gpu_containers[0].mig_profile == "1g.10gb"
    assert any(f.code == "oom-risk" and "1g.10gb" in f.message for f in findings(*objs))


# --- bad input: a reason, never a crash or a denial on a guess ----------------------------------------


def test_missing_template_gives_one_unknown_finding():
    [f] = findings(deployment(claim="nowhere"))
    assert f.code == "unknown-model" and "ResourceClaimTemplate nowhere is not in the input" in f.message


def test_unreadable_or_invalid_selector_is_an_unknown_tier_not_a_denial():
    for expr in (f"{PRODUCT}.size() > 3", f'{PRODUCT} == "NVIDIA L40S'):
        found = findings(template("gpus", exactly("gpu", expr)), deployment())
        [f] = [f for f in found if f.obj.kind == "Deployment"]
        assert f.code == "unknown-model" and f.effective_severity == Severity.INFO, f.message


def test_template_with_100_requests_is_read_to_the_kubernetes_limit():
    requests = [exactly(f"r{i}", f'{PRODUCT} == "NVIDIA L40S"') for i in range(100)]
    spec = claim_spec(template("gpus", *requests))
    assert len(spec.requests) == 32 and "100 entries" in spec.problems[0]
    found = findings(template("gpus", *requests), deployment())  # Kubernetes refuses it: no judgement
    assert {f.code for f in found} == {"unknown-model"} and all("100 entries" in f.message for f in found)


def test_unknown_gpu_in_a_template_gets_one_info_finding():
    [f] = findings(template("gpus", exactly("gpu", f'{PRODUCT} == "NVIDIA Z9000"')))
    assert f.code == "unknown-model" and "NVIDIA Z9000" in f.message and f.obj.kind == "ResourceClaimTemplate"
    assert findings(template("ok", exactly("gpu", f'{PRODUCT} == "NVIDIA L40S"'))) == []


def test_a_claim_for_another_device_class_leaves_the_container_alone():
    objs = [template("gpus", exactly("nic", None, cls="sriov.example.com")), deployment()]
    w = extract(objs[1], CTX.gpus, ClaimIndex(objs).lookup("ml"))
    assert w is not None and w.gpu_containers == []


def test_the_dra_examples():
    objs = [o for p in sorted(EXAMPLES.glob("dra-*.yaml")) for o in yaml.safe_load_all(p.read_text()) if o]
    found = findings(*copy.deepcopy(objs))
    errors = [f for f in found if f.effective_severity == Severity.ERROR]
    assert [f.obj.name for f in errors] == ["llama-70b-dra"]
    assert any(f.code == "tier-misplacement" and f.obj.name == "llama-8b-dra" for f in found)
