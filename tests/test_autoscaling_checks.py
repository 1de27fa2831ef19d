"""cold-start and scale-thrashing, with each autoscaler's own defaults."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from placement.autoscaling import duration_s
from placement.checks import CheckContext, CheckSettings, check_objects
from placement.findings import Code
from placement.workload import WorkloadError
from tests.manifests import H100, L4, vllm


@pytest.fixture(scope="module")
def ctx() -> CheckContext:
    return CheckContext.default()


def big() -> dict[str, Any]:
    return vllm(
        "meta-llama/Llama-3.1-70B-Instruct",
        "--tensor-parallel-size",
        "4",
        "--max-model-len",
        "8192",
        gpus=4,
        product=H100,
        name="llama-70b",
    )


def keda(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "so", "namespace": "ns"},
        "spec": {"scaleTargetRef": {"name": "llama-70b"}, "triggers": [], **spec},
    }


def hpa(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h", "namespace": "ns"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama-70b"},
            "maxReplicas": 4,
            **spec,
        },
    }


def codes(ctx: CheckContext, *objs: dict[str, Any]) -> dict[str, str]:
    result = check_objects(list(objs), ctx)
    assert result.errors == []
    return {
        f.code.value: f.message
        for _, f in result.findings
        if f.obj.kind in {"ScaledObject", "HorizontalPodAutoscaler", "Service", "InferenceService"}
    }


def test_keda_default_min_replica_count_is_zero_and_warns_cold_start_with_load_time(ctx):
    found = codes(ctx, big(), keda())
    msg = found[Code.COLD_START.value]
    assert "KEDA default minReplicaCount 0" in msg and "GiB of weights at 1 GiB/s" in msg and "min" in msg


def test_keda_with_min_replica_count_one_has_no_cold_start(ctx):
    assert Code.COLD_START.value not in codes(ctx, big(), keda(minReplicaCount=1))


def test_keda_cooldown_shorter_than_cold_start_thrashes(ctx):
    found = codes(ctx, big(), keda(cooldownPeriod=30))
    assert "after 30s (cooldownPeriod)" in found[Code.SCALE_THRASHING.value]


def test_hpa_short_stabilization_window_thrashes_but_default_does_not(ctx):
    short = hpa(minReplicas=1, behavior={"scaleDown": {"stabilizationWindowSeconds": 30}})
    assert Code.SCALE_THRASHING.value in codes(ctx, big(), short)
    assert codes(ctx, big(), hpa(minReplicas=1)) == {}


def test_hpa_with_scale_down_disabled_never_thrashes(ctx):
    disabled = hpa(behavior={"scaleDown": {"selectPolicy": "Disabled", "stabilizationWindowSeconds": 0}})
    assert codes(ctx, big(), disabled) == {}


def test_autoscaler_of_a_target_not_in_the_input_says_so(ctx):
    found = codes(ctx, keda())
    assert "load time unknown (Deployment/llama-70b is not in the input)" in found[Code.COLD_START.value]


def test_autoscaler_of_a_workload_without_gpus_is_ignored(ctx):
    no_gpu = vllm("meta-llama/Llama-3.1-70B-Instruct", gpus=0, name="llama-70b")
    assert codes(ctx, no_gpu, keda()) == {}


def test_knative_service_scales_to_zero_by_default_with_a_60s_window(ctx):
    ksvc = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "qwen", "namespace": "ns"},
        "spec": {
            "template": {
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": L4},
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.10.1",
                            "args": [
                                "--model",
                                "Qwen/Qwen2.5-7B-Instruct",
                                "--max-model-len",
                                "8192",
                                "--max-num-seqs",
                                "16",
                            ],
                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        }
                    ],
                }
            }
        },
    }
    found = codes(ctx, ksvc)
    assert "Knative default min-scale 0" in found[Code.COLD_START.value]
    assert "window (Knative default 60s)" in found[Code.SCALE_THRASHING.value]
    ksvc["spec"]["template"]["metadata"] = {
        "annotations": {"autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/window": "10m"}
    }
    assert codes(ctx, ksvc) == {}


def test_inference_service_min_replicas_zero_is_cold_start(ctx):
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "llama", "namespace": "ns"},
        "spec": {
            "predictor": {
                "minReplicas": 0,
                "nodeSelector": {"nvidia.com/gpu.product": L4},
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
                    "args": ["--max-model-len=4096", "--max-num-seqs=16"],
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                },
            }
        },
    }
    assert Code.COLD_START.value in codes(ctx, isvc)
    isvc["spec"]["predictor"]["minReplicas"] = 1
    assert Code.COLD_START.value not in codes(ctx, isvc)


def test_bad_autoscaler_fields_are_errors_naming_the_field(ctx):
    result = check_objects([keda(minReplicaCount="none")], ctx)
    assert result.errors and "spec.minReplicaCount" in result.errors[0][1]


@pytest.mark.parametrize(("text", "seconds"), [("60s", 60), ("1m30s", 90), ("2h", 7200), ("45", 45)])
def test_knative_durations(text, seconds):
    assert duration_s(text, "x") == seconds


def test_bad_duration_names_the_field():
    with pytest.raises(WorkloadError, match="window"):
        duration_s("soon", "autoscaling.knative.dev/window")


def _window(seconds: int) -> dict[str, Any]:
    return hpa(minReplicas=1, behavior={"scaleDown": {"stabilizationWindowSeconds": seconds}})


def test_a_zero_window_on_an_unread_target_thrashes_against_the_engine_start_up_alone(ctx):
    msg = codes(ctx, _window(0))[Code.SCALE_THRASHING.value]
    assert "down after 0s (scaleDown.stabilizationWindowSeconds)" in msg
    assert "shorter than the 60s engine start-up alone. Use a window >= 120s" in msg
    assert "(target not read: Deployment/llama-70b is not in the input)" in msg


def test_a_window_past_the_engine_start_up_is_not_judged_when_the_target_is_unread(ctx):
    assert Code.SCALE_THRASHING.value not in codes(ctx, _window(60))


def test_the_start_up_floor_follows_the_configured_engine_start_up(ctx):
    slow_start = replace(ctx, settings=CheckSettings(startup_overhead_s=180))
    assert "3.0 min engine start-up alone" in codes(slow_start, _window(120))[Code.SCALE_THRASHING.value]


def test_a_zero_window_on_a_target_with_an_unsized_model_thrashes_against_the_start_up(ctx):
    custom = vllm("example.com/in-house-model", gpus=1, product=H100, name="llama-70b")
    msg = codes(ctx, custom, _window(0))[Code.SCALE_THRASHING.value]
    assert "60s engine start-up alone" in msg and "target not read" not in msg


def _isvc(min_replicas: int, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "llama", "namespace": "ns", "annotations": annotations},
        "spec": {
            "predictor": {
                "minReplicas": min_replicas,
                "nodeSelector": {"nvidia.com/gpu.product": L4},
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
                    "args": ["--max-model-len=4096", "--max-num-seqs=16"],
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                },
            }
        },
    }


@pytest.mark.parametrize("mode", ["Standard", "RawDeployment"])
def test_kserve_standard_mode_runs_an_hpa_that_never_scales_to_zero(ctx, mode):
    # KServe 0.15 renamed RawDeployment to Standard: a Deployment and an HPA (minReplicas >= 1), so
    # minReplicas 0 and Knative's window annotations make no cold-start or 60s-window claim.
    annotations = {"serving.kserve.io/deploymentMode": mode, "autoscaling.knative.dev/window": "10s"}
    found = codes(ctx, _isvc(0, annotations))
    assert Code.COLD_START.value not in found
    assert Code.SCALE_THRASHING.value not in found  # judged on the HPA's 300s window, not Knative's 10s


def test_kserve_serverless_mode_still_scales_to_zero(ctx):
    found = codes(ctx, _isvc(0, {"serving.kserve.io/deploymentMode": "Serverless"}))
    assert Code.COLD_START.value in found
