"""Engine-correct advice: a fix names the engine's own setting (placement/advice.py, spelled in
placement/data/engine_flags.yaml), the GPU count that holds the model, and whether the concurrency it
rests on was configured or assumed."""

from __future__ import annotations

from typing import Any

import pytest

from placement.advice import SETTINGS, setting, spellings
from placement.checks import CheckContext, check_objects
from placement.engines import Container
from placement.findings import MAX_MESSAGE_CHARS, Code, Finding
from tests.manifests import H100, L4, deployment, vllm

CTX = CheckContext.default()
T4 = "Tesla-T4"
VLLM_ONLY = ("--max-model-len", "--gpu-memory-utilization", "--tensor-parallel-size", "--max-num-seqs")


def run(*objs: dict[str, Any]) -> list[Finding]:
    result = check_objects(list(objs), CTX)
    assert result.errors == []
    return [f for _, f in result.findings]


def by_code(found: list[Finding], code: Code) -> Finding:
    hits = [f for f in found if f.code is code]
    assert hits, [f.message for f in found]
    return hits[0]


def tgi(*args: str, env: dict[str, str] | None = None, product: str = L4, gpus: int = 1) -> dict[str, Any]:
    return deployment(
        name="tgi",
        image="ghcr.io/huggingface/text-generation-inference:2.4.0",
        args=list(args),
        env=[{"name": k, "value": v} for k, v in (env or {}).items()],
        product=product,
        gpus=gpus,
    )


def sglang(*flags: str, product: str = L4, gpus: int = 1) -> dict[str, Any]:
    return deployment(
        name="sglang",
        image="lmsysorg/sglang:v0.4.6",
        command=["python3", "-m", "sglang.launch_server", *flags],
        product=product,
        gpus=gpus,
    )


@pytest.mark.parametrize("engine", sorted(set(spellings()) - {"generic"}))
def test_every_engine_spells_each_setting_or_falls_back_to_words(engine):
    for name in SETTINGS:
        text = setting(engine, name, 2)
        assert text and "{" not in text
        if name in spellings()[engine] and spellings()[engine][name].flag:
            assert text.startswith(spellings()[engine][name].flag)


def test_the_same_fix_in_each_engines_words():
    assert setting("vllm", "max_model_len", 4096, "<= ") == "--max-model-len <= 4096"
    assert setting("sglang", "max_model_len", 4096) == "--context-length 4096"
    assert setting("tgi", "max_model_len", 4096) == "--max-total-tokens 4096"
    assert setting("trtllm", "max_num_seqs", 8) == "--max_batch_size 8"
    assert setting("tgi", "tp", 2) == "--num-shard 2"
    assert setting("annotations", "tp", 2) == "tensor parallel 2"  # no engine known: words, no flag


def test_tgi_configured_by_env_is_told_the_env_var():
    container = Container(name="c", image="tgi", env={"MAX_TOTAL_TOKENS": "131072"})
    assert setting("tgi", "max_model_len", 4096, "<= ", container) == "MAX_TOTAL_TOKENS <= 4096"
    assert setting("tgi", "max_model_len", 4096, "", container) == "MAX_TOTAL_TOKENS=4096"


def test_a_tgi_oom_fix_uses_tgi_settings_never_vllm_flags():
    env = {"MODEL_ID": "meta-llama/Llama-3.1-8B-Instruct", "MAX_TOTAL_TOKENS": "131072"}
    f = by_code(run(tgi(env=env)), Code.OOM_RISK)
    assert "MAX_TOTAL_TOKENS <= " in f.message
    assert not any(flag in f.message for flag in VLLM_ONLY), f.message
    by_flag = tgi("--model-id", "meta-llama/Llama-3.1-8B-Instruct", "--max-total-tokens", "131072")
    f = by_code(run(by_flag), Code.OOM_RISK)
    assert "--max-total-tokens <= " in f.message and not any(flag in f.message for flag in VLLM_ONLY)


def test_sglang_fixes_use_sglang_settings():
    # SGLang starts with a pool shorter than --context-length (it refuses longer requests at run time):
    # a kv-cache-starved warning, whose fix is spelled in SGLang's flags.
    obj = sglang("--model-path", "meta-llama/Llama-3.1-8B-Instruct", "--context-length", "131072")
    found = run(obj)
    assert Code.OOM_RISK not in {f.code for f in found}
    f = by_code(found, Code.KV_CACHE_STARVED)
    assert "--context-length <= " in f.message and not any(flag in f.message for flag in VLLM_ONLY)


def test_a_2b_model_on_eight_h100s_is_told_one_gpu_holds_it():
    obj = vllm(
        "google/gemma-2b-it", "--tensor-parallel-size", "8", "--max-model-len", "8192", gpus=8, product=H100
    )
    f = next(f for f in run(obj) if f.code is Code.OVERPROVISIONED and "tp=8" in f.message)
    assert "1 GPU holds it" in f.message and "nvidia.com/gpu: 1" in f.message
    assert f.figures["recommended_tp"] == 1


def test_no_advice_to_split_over_two_older_gpus_when_one_current_gpu_holds_it():
    # fp16 8B does not fit one T4; two T4s would, but one L4 holds it for less than two T4s cost.
    obj = vllm("meta-llama/Llama-3.1-8B-Instruct", "--dtype", "half", "--max-model-len", "8192", product=T4)
    f = by_code(run(obj), Code.OOM_RISK)
    l4, t4 = CTX.gpus.get("L4"), CTX.gpus.get("T4")
    assert l4.price_per_hour <= 2 * t4.price_per_hour
    assert "Pin NVIDIA-L4 or use an FP8 build." in f.message
    assert "--tensor-parallel-size 2 on" not in f.message


def test_splitting_is_still_advised_when_no_single_gpu_is_cheaper():
    obj = vllm("meta-llama/Llama-3.1-70B-Instruct", "--max-model-len", "8192", product=H100)
    f = by_code(run(obj), Code.OOM_RISK)
    assert "--tensor-parallel-size 2 on NVIDIA-H100-80GB-HBM3" in f.message


def test_a_kv_starved_warning_says_the_concurrency_is_assumed_when_none_is_set():
    # Llama 3.1 8B at a 16K context on one L4 holds a few dozen 1K requests.
    assumed = vllm("meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "16384", product=L4)
    f = by_code(run(assumed), Code.KV_CACHE_STARVED)
    assert "assumed concurrency 64 (none set)" in f.message
    configured = vllm(
        "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "16384", "--max-num-seqs", "128", product=L4
    )
    f = by_code(run(configured), Code.KV_CACHE_STARVED)
    assert "--max-num-seqs 128 preempts" in f.message and "assumed" not in f.message


def test_a_sglang_batch_warning_names_its_own_flag():
    flags = ("--model-path", "Qwen/Qwen2.5-0.5B-Instruct", "--max-running-requests", "2")
    obj = sglang(*flags, "--context-length", "4096", product=H100)
    f = by_code(run(obj), Code.BATCH_SIZE_SUBOPTIMAL)
    assert f.message.count("--max-running-requests") == 2 and "--max-num-seqs" not in f.message


def test_every_advice_message_keeps_the_message_shape():
    objs = [
        tgi(env={"MODEL_ID": "meta-llama/Llama-3.1-8B-Instruct", "MAX_TOTAL_TOKENS": "131072"}),
        sglang("--model-path", "meta-llama/Llama-3.1-8B-Instruct", "--context-length", "131072"),
        vllm("google/gemma-2b-it", "--tensor-parallel-size", "8", gpus=8, product=H100),
    ]
    for f in run(*objs):
        assert f.message.startswith(f"gpuplace[{f.code}]: ") and "\n" not in f.message
        assert len(f.message) <= MAX_MESSAGE_CHARS and not f.message.endswith("..."), f.message


def test_a_tgi_fix_changes_the_batch_flag_the_pod_set():
    container = Container(name="c", image="tgi", env={"MAX_BATCH_SIZE": "4"})
    assert setting("tgi", "max_num_seqs", 64, "", container, {"max-batch-size": "4"}) == "MAX_BATCH_SIZE=64"
    assert setting("tgi", "max_num_seqs", 64, "", None, {"max-batch-size": "4"}) == "--max-batch-size 64"
    assert setting("tgi", "max_num_seqs", 64) == "--max-concurrent-requests 64"
