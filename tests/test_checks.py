"""Each deploy-time finding fires on a case that should trip it and stays quiet on a near miss."""

from __future__ import annotations

from typing import Any

import pytest

from placement.checks import CheckContext, check_objects
from placement.findings import Code, Finding, Severity
from tests.manifests import A100_80, H100, L4, L40S, deployment, vllm


@pytest.fixture(scope="module")
def ctx() -> CheckContext:
    return CheckContext.default()


def run(ctx: CheckContext, *objs: dict[str, Any]) -> list[Finding]:
    result = check_objects(list(objs), ctx)
    assert result.errors == []
    return [f for _, f in result.findings]


def codes(findings: list[Finding]) -> set[str]:
    return {f.code.value for f in findings}


def by_code(findings: list[Finding], code: Code) -> Finding:
    matches = [f for f in findings if f.code == code]
    assert matches, f"no {code} in {[f.message for f in findings]}"
    return matches[0]


# --- oom-risk ----------------------------------------------------------------------------------------


def test_oom_risk_denies_70b_bf16_on_one_l40s_with_the_design_message_shape(ctx):
    f = by_code(
        run(
            ctx,
            vllm(
                "meta-llama/Llama-3.1-70B-Instruct", "--max-model-len", "8192", product=L40S, name="llama-70b"
            ),
        ),
        Code.OOM_RISK,
    )
    assert f.effective_severity == Severity.ERROR
    assert f.message.startswith("gpuplace[oom-risk]: deploy/llama-70b container server needs ")
    assert "GiB/GPU for weights at tp=1; NVIDIA-L40S gives " in f.message
    assert "x 0.90)" in f.message and "Use " in f.message
    assert len(f.message) <= 256 and "\n" not in f.message
    assert f.figures["weights_gib"] > 120


def test_oom_risk_quiet_when_70b_fp8_fits_two_h100(ctx):
    found = run(
        ctx,
        vllm(
            "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic",
            "--tensor-parallel-size",
            "2",
            "--max-model-len",
            "16384",
            gpus=2,
            product=H100,
        ),
    )
    assert Code.OOM_RISK.value not in codes(found)


def test_oom_risk_when_kv_cannot_hold_one_max_model_len_sequence(ctx):
    # 8B bf16 on an L4: weights fit (15 GiB of 19.8) but the default 128K context does not.
    f = by_code(run(ctx, vllm("meta-llama/Llama-3.1-8B-Instruct", product=L4)), Code.OOM_RISK)
    assert f.effective_severity == Severity.ERROR
    assert "max-model-len 131072 needs" in f.message and "--max-model-len <=" in f.message


def test_oom_risk_quiet_on_the_same_model_with_a_context_that_fits(ctx):
    found = run(ctx, vllm("meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "16384", product=L4))
    assert Code.OOM_RISK.value not in codes(found)


def test_oom_risk_when_utilization_leaves_no_room_for_cuda_context(ctx):
    found = run(
        ctx,
        vllm(
            "Qwen/Qwen2.5-7B-Instruct",
            "--max-model-len",
            "4096",
            "--gpu-memory-utilization",
            "0.99",
            product=L4,
        ),
    )
    assert "gpu-memory-utilization <=" in by_code(found, Code.OOM_RISK).message


def test_one_failing_tier_among_fitting_ones_is_only_a_warning(ctx):
    obj = vllm("Qwen/Qwen2.5-32B-Instruct", "--max-model-len", "8192")
    obj["spec"]["template"]["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "nvidia.com/gpu.product", "operator": "In", "values": [L4, H100]}
                        ]
                    }
                ]
            }
        }
    }
    f = by_code(run(ctx, obj), Code.OOM_RISK)
    assert f.effective_severity == Severity.WARNING and "NVIDIA-L4" in f.message


def test_unpinned_model_that_fits_no_gpu_is_denied(ctx):
    f = by_code(
        run(ctx, vllm("meta-llama/Llama-3.1-405B-Instruct", "--max-model-len", "8192")), Code.OOM_RISK
    )
    assert f.effective_severity == Severity.ERROR and "no GPU in the catalog holds it" in f.message


def test_unpinned_model_that_fits_some_tiers_warns_with_the_cheapest(ctx):
    f = by_code(run(ctx, vllm("Qwen/Qwen2.5-14B-Instruct", "--max-model-len", "8192")), Code.OOM_RISK)
    assert f.effective_severity == Severity.WARNING and "Cheapest that fits" in f.message


def test_name_only_guess_is_never_denied_when_weights_fit(ctx):
    found = run(ctx, vllm("acme/house-model-13B", "--max-model-len", "200000", product=L40S))
    assert all(f.effective_severity != Severity.ERROR for f in found)
    assert Code.UNKNOWN_MODEL.value in codes(found)


# --- config-invalid ----------------------------------------------------------------------------------


def test_config_invalid_when_tp_exceeds_gpus(ctx):
    f = by_code(
        run(ctx, vllm("Qwen/Qwen2.5-72B-Instruct", "--tensor-parallel-size", "4", gpus=2, product=H100)),
        Code.CONFIG_INVALID,
    )
    assert f.effective_severity == Severity.ERROR and "needs 4 GPUs but the pod gets 2" in f.message


def test_config_invalid_when_heads_not_divisible_by_tp(ctx):
    f = by_code(
        run(
            ctx,
            vllm(
                "meta-llama/Llama-3.1-8B-Instruct",
                "--tensor-parallel-size",
                "3",
                "--max-model-len",
                "8192",
                gpus=3,
                product=H100,
            ),
        ),
        Code.CONFIG_INVALID,
    )
    assert "not divisible by tp=3" in f.message


def test_config_invalid_on_a_value_the_engine_rejects(ctx):
    f = by_code(
        run(ctx, vllm("meta-llama/Llama-3.1-8B-Instruct", "--gpu-memory-utilization", "1.2", product=H100)),
        Code.CONFIG_INVALID,
    )
    assert "gpu-memory-utilization=1.2" in f.message


def test_config_invalid_when_max_model_len_exceeds_context(ctx):
    f = by_code(
        run(ctx, vllm("mistralai/Mistral-7B-Instruct-v0.3", "--max-model-len", "65536", product=H100)),
        Code.CONFIG_INVALID,
    )
    assert "exceeds" in f.message


def test_config_valid_near_miss_tp_equals_gpus(ctx):
    found = run(
        ctx,
        vllm(
            "Qwen/Qwen2.5-72B-Instruct",
            "--tensor-parallel-size",
            "4",
            "--max-model-len",
            "32768",
            gpus=4,
            product=H100,
        ),
    )
    assert Code.CONFIG_INVALID.value not in codes(found)


# --- kv-cache-starved --------------------------------------------------------------------------------


def test_kv_starved_when_concurrency_exceeds_the_cache(ctx):
    f = by_code(
        run(
            ctx,
            vllm(
                "meta-llama/Llama-3.1-8B-Instruct",
                "--max-model-len",
                "16384",
                "--max-num-seqs",
                "128",
                product=L4,
            ),
        ),
        Code.KV_CACHE_STARVED,
    )
    assert "--max-num-seqs" in f.message and f.figures["requests_held"] < 128


def test_kv_not_starved_with_concurrency_the_cache_holds(ctx):
    found = run(
        ctx,
        vllm(
            "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "16384", "--max-num-seqs", "16", product=L4
        ),
    )
    assert Code.KV_CACHE_STARVED.value not in codes(found)


# --- tier-misplacement, overprovisioned, batch-over-tiered ------------------------------------------


def test_tier_misplacement_for_8b_on_h100_states_the_money(ctx):
    f = by_code(
        run(ctx, vllm("meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192", product=H100)),
        Code.TIER_MISPLACEMENT,
    )
    assert "$" in f.message and "/mo" in f.message and "Pin gpu.product=" in f.message
    assert f.figures["recommended_monthly_cost"] < f.figures["monthly_cost"]


def test_no_tier_misplacement_for_70b_tp4_on_h100(ctx):
    found = run(
        ctx,
        vllm(
            "meta-llama/Llama-3.3-70B-Instruct",
            "--tensor-parallel-size",
            "4",
            "--max-model-len",
            "32768",
            gpus=4,
            product=H100,
        ),
    )
    assert Code.TIER_MISPLACEMENT.value not in codes(found)
    assert Code.OVERPROVISIONED.value not in codes(found)


def test_overprovisioned_when_gpus_sit_idle(ctx):
    f = by_code(
        run(
            ctx,
            vllm(
                "meta-llama/Llama-3.3-70B-Instruct",
                "--tensor-parallel-size",
                "4",
                "--max-model-len",
                "32768",
                gpus=8,
                product=H100,
            ),
        ),
        Code.OVERPROVISIONED,
    )
    assert "4 sit idle" in f.message


def test_overprovisioned_when_half_the_tp_holds_it(ctx):
    f = by_code(
        run(
            ctx,
            vllm(
                "meta-llama/Llama-3.1-8B-Instruct",
                "--tensor-parallel-size",
                "2",
                "--max-model-len",
                "8192",
                gpus=2,
                product=A100_80,
            ),
        ),
        Code.OVERPROVISIONED,
    )
    assert "1 GPU holds it" in f.message and "--tensor-parallel-size 1" in f.message


def test_small_model_on_a100_is_sent_to_a_cheaper_tier(ctx):
    f = by_code(
        run(
            ctx,
            vllm(
                "Qwen/Qwen2.5-1.5B-Instruct",
                "--max-model-len",
                "4096",
                "--max-num-seqs",
                "32",
                product=A100_80,
            ),
        ),
        Code.TIER_MISPLACEMENT,
    )
    assert f.figures["recommended_monthly_cost"] < f.figures["monthly_cost"] / 3


def test_overprovisioned_small_model_suggests_a_mig_slice_when_the_cluster_has_no_smaller_tier(ctx):
    only_a100 = CheckContext(ctx.gpus, ctx.models, ctx.settings, cluster_tiers=("A100-SXM-80GB",))
    f = by_code(
        run(
            only_a100,
            vllm(
                "Qwen/Qwen2.5-1.5B-Instruct",
                "--max-model-len",
                "4096",
                "--max-num-seqs",
                "32",
                product=A100_80,
            ),
        ),
        Code.OVERPROVISIONED,
    )
    assert "MIG" in f.message


def test_batch_job_on_top_tier_is_batch_over_tiered_not_misplacement(ctx):
    found = run(ctx, vllm("Qwen/Qwen2.5-7B-Instruct", "--max-model-len", "4096", product=H100, kind="Job"))
    assert Code.BATCH_OVER_TIERED.value in codes(found)
    assert Code.TIER_MISPLACEMENT.value not in codes(found)


def test_batch_job_that_needs_the_top_tier_is_quiet(ctx):
    found = run(
        ctx,
        vllm(
            "meta-llama/Llama-3.3-70B-Instruct",
            "--tensor-parallel-size",
            "4",
            "--max-model-len",
            "32768",
            gpus=4,
            product=H100,
            kind="Job",
        ),
    )
    assert Code.BATCH_OVER_TIERED.value not in codes(found)


# --- batch-size-suboptimal, low-throughput-config ---------------------------------------------------


def test_batch_size_one_is_suboptimal(ctx):
    f = by_code(
        run(ctx, vllm("microsoft/phi-4", "--max-num-seqs", "1", "--max-model-len", "16384", product=L40S)),
        Code.BATCH_SIZE_SUBOPTIMAL,
    )
    assert "--max-num-seqs 1" in f.message


def test_batch_size_sixteen_is_fine_online(ctx):
    found = run(
        ctx, vllm("microsoft/phi-4", "--max-num-seqs", "16", "--max-model-len", "16384", product=L40S)
    )
    assert Code.BATCH_SIZE_SUBOPTIMAL.value not in codes(found)


def test_enforce_eager_and_half_a_core_are_low_throughput(ctx):
    found = run(
        ctx,
        vllm(
            "google/gemma-2-27b-it",
            "--enforce-eager",
            "--max-model-len",
            "8192",
            "--max-num-seqs",
            "32",
            product=A100_80,
            cpu="500m",
        ),
    )
    messages = [f.message for f in found if f.code == Code.LOW_THROUGHPUT_CONFIG]
    assert any("--enforce-eager" in m for m in messages) and any("CPU limit 500m" in m for m in messages)


def test_default_settings_are_not_low_throughput(ctx):
    found = run(
        ctx,
        vllm(
            "google/gemma-2-27b-it",
            "--max-model-len",
            "8192",
            "--max-num-seqs",
            "32",
            product=A100_80,
            cpu="8",
        ),
    )
    assert Code.LOW_THROUGHPUT_CONFIG.value not in codes(found)


# --- unknown-model -----------------------------------------------------------------------------------


def test_unknown_model_when_model_comes_from_value_from(ctx):
    obj = vllm(
        "$(MODEL)", env=[{"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "m"}}}]
    )
    f = by_code(run(ctx, obj), Code.UNKNOWN_MODEL)
    assert f.effective_severity == Severity.INFO and "valueFrom" in f.message


def test_annotations_size_a_server_gpuplace_cannot_read(ctx):
    obj = deployment(
        command=["tritonserver"],
        product=L40S,
        annotations={"gpuplace.io/model": "meta-llama/Llama-3.1-70B-Instruct"},
    )
    assert by_code(run(ctx, obj), Code.OOM_RISK).effective_severity == Severity.ERROR


def test_pods_without_gpus_are_ignored(ctx):
    obj = vllm("meta-llama/Llama-3.1-70B-Instruct", gpus=0)
    assert run(ctx, obj) == []


# --- MIG slices are tiers of their own ---------------------------------------------------------------


def _mig(model: str, profile: str, *flags: str) -> dict[str, Any]:
    obj = vllm(model, *flags, product=A100_80)
    limits = obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    del limits["nvidia.com/gpu"]
    limits[f"nvidia.com/mig-{profile}"] = 1
    return obj


def test_model_too_big_for_its_mig_slice_is_denied(ctx):
    f = by_code(
        run(ctx, _mig("meta-llama/Llama-3.1-8B-Instruct", "1g.10gb", "--max-model-len", "4096")),
        Code.OOM_RISK,
    )
    assert f.effective_severity == Severity.ERROR and "MIG-1g.10gb" in f.message


def test_small_model_fits_its_mig_slice(ctx):
    found = run(
        ctx, _mig("Qwen/Qwen2.5-1.5B-Instruct", "3g.40gb", "--max-model-len", "4096", "--max-num-seqs", "32")
    )
    assert Code.OOM_RISK.value not in codes(found) and Code.CONFIG_INVALID.value not in codes(found)


def test_fp8_checkpoint_on_t4_is_config_invalid(ctx):
    f = by_code(
        run(
            ctx,
            vllm("RedHatAI/Llama-3.1-8B-Instruct-FP8-dynamic", "--max-model-len", "4096", product="Tesla-T4"),
        ),
        Code.CONFIG_INVALID,
    )
    assert f.effective_severity == Severity.ERROR and "compute capability >= 8.0" in f.message


def test_fp8_checkpoint_on_l4_is_valid(ctx):
    found = run(
        ctx, vllm("RedHatAI/Llama-3.1-8B-Instruct-FP8-dynamic", "--max-model-len", "4096", product=L4)
    )
    assert Code.CONFIG_INVALID.value not in codes(found)


def test_tier_label_not_in_the_catalog_is_info_not_a_guess(ctx):
    found = run(ctx, vllm("meta-llama/Llama-3.1-70B-Instruct", product="NVIDIA-Future-GPU-512GB"))
    assert [f.code for f in found] == [Code.UNKNOWN_MODEL]
    assert "NVIDIA-Future-GPU-512GB is not in the GPU catalog" in found[0].message


def test_the_image_tag_release_decides_gpt_oss_120b_at_131k_on_one_h100(ctx):
    # vllm#27508: vLLM 0.11.0 refused this (its native sampler's profile peak leaves too little for the KV
    # cache); releases that sample with FlashInfer (0.21 on, the default for an untagged image) leave room.
    args = ("--max-model-len", "131072", "--gpu-memory-utilization", "0.95")
    args += ("--max-num-batched-tokens", "1024")
    pinned = run(ctx, vllm("openai/gpt-oss-120b", *args, product=H100, image="vllm/vllm-openai:v0.11.0"))
    assert Code.OOM_RISK.value in codes(pinned)
    latest = run(ctx, vllm("openai/gpt-oss-120b", *args, product=H100, image="vllm/vllm-openai:latest"))
    assert Code.OOM_RISK.value not in codes(latest)


def test_advice_that_is_only_another_tier_reads_pin_not_use_pin(ctx):
    # One L40S cannot hold Llama-3.3-70B in FP8; an A100 80GB can, for less than two L40S.
    found = run(
        ctx,
        vllm("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", "--max-model-len", "8192", product=L40S),
    )
    message = by_code(found, Code.OOM_RISK).message
    assert "Use pin" not in message and "Pin NVIDIA-A100" in message
