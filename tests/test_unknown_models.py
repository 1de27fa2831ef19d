"""Unknown models: the checks that need no model still run, a name guess makes no long-context claim, and
the catalog knows the models published manifests serve (Gemma 1, Llama 4, Falcon-40B, third-party FP8)."""

from __future__ import annotations

from typing import Any

import pytest

from placement.checks import CheckContext, check_objects
from placement.findings import Code, Finding, Severity
from placement.models import GUESS_CONTEXT, ModelCatalog, default_model_catalog
from tests.manifests import H100, L4, deployment, vllm


@pytest.fixture(scope="module")
def ctx() -> CheckContext:
    return CheckContext.default()


@pytest.fixture(scope="module")
def models() -> ModelCatalog:
    return default_model_catalog()


def run(ctx: CheckContext, *objs: dict[str, Any]) -> list[Finding]:
    result = check_objects(list(objs), ctx)
    assert result.errors == []
    return [f for _, f in result.findings]


def test_idle_gpus_are_reported_when_the_model_is_unknown(ctx):
    # A private fine-tune with no size in its name on 8 x H100 at tp=2: 6 GPUs idle, model or not.
    found = run(ctx, vllm("acme/support-bot", "--tensor-parallel-size", "2", gpus=8, product=H100))
    assert [f.code for f in found] == [Code.OVERPROVISIONED, Code.UNKNOWN_MODEL]
    assert "requests 8 GPUs but tp=2 x pp=1 uses 2; 6 sit idle ($" in found[0].message
    assert found[0].figures["used_gpus"] == 2


def test_idle_gpus_without_a_pinned_tier_name_no_cost(ctx):
    found = run(ctx, vllm("acme/support-bot", gpus=4))
    idle = next(f for f in found if f.code == Code.OVERPROVISIONED)
    assert "3 sit idle. Set nvidia.com/gpu: 1." in idle.message
    assert idle.figures["wasted_monthly_cost"] is None


def test_config_invalid_is_reported_when_the_model_is_unknown(ctx):
    found = run(ctx, vllm("acme/support-bot", "--tensor-parallel-size", "4", gpus=2, product=H100))
    invalid = next(f for f in found if f.code == Code.CONFIG_INVALID)
    assert invalid.effective_severity == Severity.ERROR
    assert "needs 4 GPUs but the pod gets 2" in invalid.message
    assert Code.UNKNOWN_MODEL in {f.code for f in found}


def test_name_guess_uses_a_short_guessed_context_not_the_reference_models(models):
    r = models.resolve("acme/private-13b-chat")
    assert r is not None and r.how == "name"
    assert r.arch.context == GUESS_CONTEXT == 2048
    assert "context guessed" in r.arch.source


def test_name_guess_of_a_small_model_on_a_small_gpu_is_no_oom_warning(ctx):
    # A 7B from a name alone on one L4: 13 GiB of weights fit its 22 GiB; with a borrowed 128k context the
    # default max-model-len would not, which is a claim about a context the name does not give.
    found = run(ctx, vllm("acme/private-7b-chat", product=L4))
    assert Code.OOM_RISK not in {f.code for f in found}
    assert Code.KV_CACHE_STARVED not in {f.code for f in found}
    note = next(f for f in found if f.code == Code.UNKNOWN_MODEL)
    assert "guessed 2048-token context" in note.message


def test_name_guess_with_an_explicit_max_model_len_does_not_claim_a_guessed_context(ctx):
    found = run(ctx, vllm("acme/private-7b-chat", "--max-model-len", "4096", product=L4))
    note = next(f for f in found if f.code == Code.UNKNOWN_MODEL)
    assert "guessed" not in note.message and "~7.0B" in note.message


@pytest.mark.parametrize(
    ("name", "model_id", "params"),
    [
        ("google/gemma-2b-it", "google/gemma-2b-it", 2_506_172_416),
        ("google/gemma-7b", "google/gemma-7b-it", 8_537_680_896),
        ("google/gemma-1.1-7b-it", "google/gemma-7b-it", 8_537_680_896),
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "meta-llama/Llama-4-Scout-17B-16E-Instruct",
         108_641_793_536),
        ("meta-llama/Llama-4-Maverick-17B-128E-Instruct", "meta-llama/Llama-4-Maverick-17B-128E-Instruct",
         401_583_781_376),
        ("tiiuae/falcon-40b", "tiiuae/falcon-40b-instruct", 41_303_293_952),
    ],
)
def test_catalog_knows_models_of_published_manifests(models, name, model_id, params):
    r = models.resolve(name)
    assert r is not None and r.how == "catalog" and r.arch.id == model_id and r.arch.params == params


def test_falcon_40b_context_is_the_config_default_2048(models):
    arch = models.get("tiiuae/falcon-40b-instruct")
    assert arch is not None and (arch.context, arch.kv_heads, arch.head_dim) == (2048, 8, 64)


def test_llama4_scout_active_parameters_are_17b(models):
    arch = models.get("meta-llama/Llama-4-Scout-17B-16E-Instruct")
    assert arch is not None and arch.moe is not None
    assert 16.5e9 < arch.active_params - arch.vision_params < 17.5e9


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("RedHatAI/Meta-Llama-3.1-405B-Instruct-FP8", "meta-llama/Llama-3.1-405B-Instruct"),
        ("neuralmagic/Meta-Llama-3.1-405B-Instruct-FP8", "meta-llama/Llama-3.1-405B-Instruct"),
        ("RedHatAI/Llama-4-Maverick-17B-128E-Instruct-FP8", "meta-llama/Llama-4-Maverick-17B-128E-Instruct"),
        ("RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic", "meta-llama/Llama-4-Scout-17B-16E-Instruct"),
        ("RedHatAI/Qwen3-8B-FP8-dynamic", "Qwen/Qwen3-8B"),
        ("neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8", "meta-llama/Llama-3.1-70B-Instruct"),
    ],
)
def test_third_party_fp8_builds_are_the_base_model_at_fp8(models, name, base):
    r = models.resolve(name)
    assert r is not None and r.arch.id == base and r.quant == "fp8"
    assert r.arch.unquantized_params == 0  # all linear layers FP8, not the vendor build's bf16 attention


def test_the_vendors_own_fp8_build_keeps_its_bf16_layers(models):
    r = models.resolve("meta-llama/Llama-3.1-405B-Instruct-FP8")
    assert r is not None and r.arch.id == "meta-llama/Llama-3.1-405B-Instruct-FP8"
    assert r.arch.unquantized_params > 0


def test_gemma_2b_is_judged_from_the_catalog_not_the_name(ctx):
    found = run(ctx, deployment(
        image="ghcr.io/huggingface/text-generation-inference:2.4.0",
        env=[{"name": "MODEL_ID", "value": "google/gemma-2b-it"}], product=L4,
    ))
    assert Code.UNKNOWN_MODEL not in {f.code for f in found}
