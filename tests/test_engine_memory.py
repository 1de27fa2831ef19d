"""SGLang, TGI and TensorRT-LLM memory accounting, keyed on the engine release, and what their start-up
rules make of a short KV pool (issue 12). Figures are checked against published start-up logs."""

from __future__ import annotations

from typing import Any

import pytest

from placement.checks import CheckContext, check_objects
from placement.engines import EngineConfig
from placement.engines.base import image_version
from placement.engines.defaults import precision, setup_on, sglang_mem_fraction
from placement.findings import Code, Finding, Severity
from placement.memory import GIB, MemoryEstimate, estimate, tgi_wiggle_room
from tests.manifests import L4, deployment

CTX = CheckContext.default()
A10G = "NVIDIA-A10G"


def run(obj: dict[str, Any]) -> list[Finding]:
    result = check_objects([obj], CTX)
    assert result.errors == []
    return [f for _, f in result.findings]


def sglang(*flags: str, image: str = "lmsysorg/sglang:v0.4.3.post4-cu124", gpus: int = 1) -> dict[str, Any]:
    command = ["python3", "-m", "sglang.launch_server", *flags]
    return deployment(command=command, image=image, gpus=gpus, product=L4)


def tgi(*flags: str, image: str = "ghcr.io/huggingface/text-generation-inference:2.2.0") -> dict[str, Any]:
    return deployment(command=["text-generation-launcher", *flags], image=image, product=A10G)


def est(engine: str, model: str, gpu: str, usable: float | None = None, **cfg: Any) -> MemoryEstimate:
    resolved = CTX.models.resolve(model)
    spec = CTX.gpus.get(gpu)
    assert resolved is not None and spec is not None
    config = EngineConfig(engine=engine, model=model, **cfg)
    prec = precision(config, resolved.arch.dtype, resolved.quant, None)
    max_len = config.max_model_len or resolved.arch.context
    return estimate(resolved.arch, setup_on(config, prec, spec, max_len, usable_gib=usable))


def severities(found: list[Finding], code: Code) -> set[Severity]:
    return {f.effective_severity for f in found if f.code == code}


# --- SGLang -------------------------------------------------------------------------------------------


def test_sglang_pool_matches_the_published_qwq_32b_log_on_four_l4():
    # didier-durand/llms-in-clouds docs/sglang.md: 0.4.3.post4, tp=4, mem_fraction_static 0.85,
    # context_len 131072 -> KV Cache is allocated. #tokens: 46611.
    e = est("sglang", "Qwen/QwQ-32B", "L4", version=(0, 4, 3), tp=4, max_model_len=131072)
    assert e.setup.mem_fraction == 0.85
    assert abs(e.kv_tokens - 46611) / 46611 <= 0.06


def test_sglang_budget_is_a_fraction_of_the_memory_free_before_weights_load():
    # Whatever is in use before the weights load (CUDA context, NCCL) is outside mem_fraction_static's share.
    e = est("sglang", "Qwen/QwQ-32B", "L4", version=(0, 4, 3), tp=4, mem_fraction=0.85)
    assert e.budget_bytes < 0.85 * e.usable_bytes
    single = est("sglang", "Qwen/Qwen2.5-7B-Instruct", "L4", version=(0, 4, 3), tp=1, mem_fraction=0.85)
    assert single.budget_bytes > e.budget_bytes  # no NCCL communicators on one GPU


def test_sglang_starts_with_a_pool_shorter_than_its_context_and_gpuplace_warns_not_denies():
    found = run(sglang("--model-path", "Qwen/QwQ-32B", "--tp", "4", "--mem-fraction-static", "0.80", gpus=4))
    assert Code.OOM_RISK not in {f.code for f in found}
    f = next(f for f in found if f.code == Code.KV_CACHE_STARVED)
    assert f.effective_severity == Severity.WARNING
    assert "refuses requests over" in f.message and "--context-length <= " in f.message
    assert f.figures["max_request_tokens"] == f.figures["kv_tokens"] - 1


def test_sglang_denied_when_the_weights_leave_no_token_pool():
    found = run(sglang("--model-path", "meta-llama/Llama-3.1-70B-Instruct"))
    assert severities(found, Code.OOM_RISK) == {Severity.ERROR}


def test_sglang_default_mem_fraction_follows_the_release():
    old = EngineConfig(engine="sglang", version=(0, 4, 3), tp=4)
    assert sglang_mem_fraction(old, 22.03, 4, 2048) == 0.85  # the TP table
    latest = EngineConfig(engine="sglang", tp=4)
    # (GPU MiB - (512 + 2048 x 1.5 + 80 x 2 + 4/8 x 1024)) / GPU MiB on a 22 GiB L4
    assert sglang_mem_fraction(latest, 22.03, 4, 2048) == pytest.approx(0.811, abs=0.001)
    h100 = EngineConfig(engine="sglang", tp=1)
    assert sglang_mem_fraction(h100, 79.2, 1, 8192) == pytest.approx(0.834, abs=0.001)


def test_an_sglang_image_without_a_release_is_not_denied_on_a_default_an_older_release_lacks():
    flags = ("--model-path", "Qwen/Qwen2.5-32B-Instruct", "--quantization", "awq")
    assert severities(run(sglang(*flags, image="lmsysorg/sglang:v0.5.4")), Code.OOM_RISK) == {Severity.ERROR}
    assert Code.OOM_RISK not in {f.code for f in run(sglang(*flags, image="lmsysorg/sglang:v0.5.2"))}
    latest = run(sglang(*flags, image="lmsysorg/sglang:latest"))
    assert severities(latest, Code.OOM_RISK) == {Severity.WARNING}


# --- TGI ----------------------------------------------------------------------------------------------


def test_tgi_warmup_keeps_the_logits_of_every_prefill_token():
    # 2.2 defaults: max_batch_prefill_tokens 4145, prefill logprobs on: logits + log_softmax in bf16.
    e = est("tgi", "meta-llama/Llama-3.1-8B-Instruct", "A10G", version=(2, 2, 0), max_model_len=4096)
    assert e.setup.max_num_batched_tokens == 4145
    assert e.activation_bytes >= 2 * 4145 * 128256 * 2


def test_tgi_pool_is_nearer_the_published_a10g_log_than_a_vllm_style_budget():
    # TGI 2.2.0, Llama-3.1-8B on one A10G, defaults: "Setting max batch total tokens to 19056".
    e = est("tgi", "meta-llama/Llama-3.1-8B-Instruct", "A10G", version=(2, 2, 0), max_model_len=4096)
    naive = int((e.usable_bytes - e.weights_bytes - e.non_torch_bytes) // e.kv_bytes_per_token)
    assert abs(e.kv_tokens - 19056) < abs(naive - 19056)
    assert e.kv_tokens % 16 == 0  # whole 16-token blocks


def test_tgi_wiggle_room_by_release():
    assert tgi_wiggle_room((2, 2, 0)) == 0.95
    assert tgi_wiggle_room((2, 4, 1)) == 0.90
    assert tgi_wiggle_room((3, 0, 1)) == 0.95
    assert tgi_wiggle_room((3, 2, 0)) == 0.93
    assert tgi_wiggle_room(None) == 0.90


def test_tgi3_wiggle_room_reserves_a_share_of_the_whole_gpu():
    # 3.x: free - (1 - fraction x wiggle) x total; 2.x: (free - (1 - fraction) x total) x wiggle.
    kw: dict[str, Any] = {"max_model_len": 4096, "max_num_batched_tokens": 4096}
    v2 = est("tgi", "meta-llama/Llama-3.1-8B-Instruct", "A100-SXM-80GB", version=(2, 3, 0), **kw)
    v3 = est("tgi", "meta-llama/Llama-3.1-8B-Instruct", "A100-SXM-80GB", version=(3, 0, 1), **kw)
    assert v2.setup.version and tgi_wiggle_room(v2.setup.version) == tgi_wiggle_room((3, 0, 1))
    # Same wiggle, same free memory F after the warm-up: 2.x keeps 0.95 F, 3.x keeps F - 0.05 total.
    warmup = 2 * 4096 * v2.kv_bytes_per_token  # two warm-up requests of 4095 input tokens
    free = v2.usable_bytes - v2.weights_bytes - v2.activation_bytes - v2.non_torch_bytes - 0.45 * GIB - warmup
    assert v2.kv_bytes - v3.kv_bytes == pytest.approx(0.05 * (v3.usable_bytes - free), rel=0.05)


def test_tgi_refuses_a_max_total_tokens_its_pool_cannot_hold():
    found = run(tgi("--model-id", "meta-llama/Llama-3.1-8B-Instruct", "--max-total-tokens", "65536"))
    f = next(f for f in found if f.code == Code.OOM_RISK)
    assert f.effective_severity == Severity.ERROR and "--max-total-tokens <= " in f.message


def test_tgi3_without_max_total_tokens_caps_it_to_the_pool_and_warns():
    image = "ghcr.io/huggingface/text-generation-inference:3.0.1"
    found = run(tgi("--model-id", "meta-llama/Llama-3.1-8B-Instruct", image=image))
    assert Code.OOM_RISK not in {f.code for f in found}
    f = next(f for f in found if f.code == Code.KV_CACHE_STARVED)
    assert "caps max total tokens" in f.message and "--max-total-tokens <= " in f.message


def test_tgi2_defaults_max_total_tokens_to_4096():
    found = run(tgi("--model-id", "meta-llama/Llama-3.1-8B-Instruct"))
    assert Code.OOM_RISK not in {f.code for f in found}
    assert not any("caps max total tokens" in f.message for f in found)


# --- TensorRT-LLM -------------------------------------------------------------------------------------


def test_trtllm_fraction_is_a_share_of_what_the_profiling_run_left_free():
    # faradawn/bench3 trtllm-serve 1.2.0rc4, Llama-3-8B on H200 (139.80 GiB), max_seq_len 1025,
    # free_gpu_memory_fraction 0.9, max_batch_size 32, max_num_tokens 1024: 900800 tokens.
    kw: dict[str, Any] = {"max_model_len": 1025, "mem_fraction": 0.9, "max_num_seqs": 32}
    e = est(
        "trtllm", "meta-llama/Meta-Llama-3-8B-Instruct", "H200-141GB", 139.80, version=(1, 2, 0),
        max_num_batched_tokens=1024, **kw,
    )  # fmt: skip
    free = e.usable_bytes - e.weights_bytes - e.activation_bytes - e.non_torch_bytes - 0.45 * GIB
    assert e.kv_bytes == pytest.approx(0.9 * free)
    assert abs(e.kv_tokens - 900800) / 900800 <= 0.03


# --- versions from image tags -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("ghcr.io/huggingface/text-generation-inference:2.2.0", (2, 2, 0)),
        ("ghcr.io/huggingface/text-generation-inference:3.0.1", (3, 0, 1)),
        ("ghcr.io/huggingface/text-generation-inference:2.4.0-intel", (2, 4, 0)),
        ("ghcr.io/huggingface/text-generation-inference:3.0.1-rocm", (3, 0, 1)),
        ("ghcr.io/huggingface/text-generation-inference:latest", None),
        ("ghcr.io/huggingface/text-generation-inference:sha-5e6ddfd", None),
        ("lmsysorg/sglang:v0.4.3.post4-cu124", (0, 4, 3)),
        ("lmsysorg/sglang:latest", None),
        ("nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc4", (1, 2, 0)),
        ("nvcr.io/nvidia/tritonserver:24.05-trtllm-python-py3", None),
        ("nvcr.io/nvidia/vllm:25.09-py3", None),
    ],
)
def test_engine_release_from_the_image_tag(image, version):
    assert image_version(image) == version


def test_sglang_without_chunked_prefill_reserves_for_a_whole_max_prefill():
    chunked = est("sglang", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM-80GB")
    unchunked = est("sglang", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM-80GB", max_num_batched_tokens=-1)
    assert unchunked.setup.max_num_batched_tokens == 16384
    assert unchunked.setup.mem_fraction < chunked.setup.mem_fraction


def test_trtllm_lowers_max_seq_len_to_its_pool_and_gpuplace_warns_not_denies():
    command = ["trtllm-serve", "meta-llama/Llama-3.1-8B-Instruct", "--max_seq_len", "131072"]
    obj = deployment(command=command, image="nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc4", product=L4)
    found = run(obj)
    assert Code.OOM_RISK not in {f.code for f in found}
    f = next(f for f in found if f.code == Code.KV_CACHE_STARVED)
    assert "lowers max_seq_len" in f.message and "--max_seq_len <= " in f.message


def test_trtllm_counts_nccl_under_tp_as_memory_outside_torch():
    kw: dict[str, Any] = {"max_model_len": 8192, "mem_fraction": 0.9, "version": (1, 2, 0)}
    e = est("trtllm", "meta-llama/Llama-3.1-70B-Instruct", "H100-SXM-80GB", tp=2, **kw)
    free = e.usable_bytes - e.weights_bytes - e.activation_bytes - e.non_torch_bytes - 0.45 * GIB
    assert e.kv_bytes == pytest.approx(0.9 * (free - 0.25 * GIB))


def test_sglang_fraction_too_high_for_graphs_and_request_table_is_a_warning():
    # At 40960 tokens the request table alone is 2049 x 40964 x 4 B = 0.3 GiB outside the fraction.
    base = ("--model-path", "Qwen/QwQ-32B", "--tp", "4", "--context-length", "40960")
    published = run(sglang(*base, "--mem-fraction-static", "0.85", gpus=4))
    assert not any("request table" in f.message for f in published)
    found = run(sglang(*base, "--mem-fraction-static", "0.97", gpus=4))
    f = next(f for f in found if f.code == Code.OOM_RISK)
    assert f.effective_severity == Severity.WARNING and "request table" in f.message
    assert "--mem-fraction-static <= 0.96" in f.message
