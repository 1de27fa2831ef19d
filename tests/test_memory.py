"""The estimator's engine mechanisms, each keyed on the release that has it, against hand-worked figures."""

from __future__ import annotations

import pytest

from placement.catalog import GpuSpec, default_gpu_catalog
from placement.engines import EngineConfig
from placement.engines.base import parse_version
from placement.engines.defaults import precision, setup_on
from placement.memory import (
    CUDA_CONTEXT_GIB,
    CUDA_GRAPHS_GIB,
    GIB,
    NON_TORCH_NCCL_V0_GIB,
    NON_TORCH_NCCL_V1_GIB,
    NON_TORCH_SINGLE_GIB,
    MemoryEstimate,
    _mxfp4_expert_bytes,
    estimate,
    kv_bytes_per_token,
    sampler_bytes,
)
from placement.models import ModelArch, default_model_catalog


def gpu(name: str) -> GpuSpec:
    spec = default_gpu_catalog().resolve(name)
    assert spec is not None
    return spec


def arch(model: str) -> ModelArch:
    resolved = default_model_catalog().resolve(model)
    assert resolved is not None
    return resolved.arch


def run(
    model: str,
    gpu_name: str,
    version: tuple[int, ...] | None,
    max_len: int,
    **settings: object,
) -> MemoryEstimate:
    resolved = default_model_catalog().resolve(model)
    assert resolved is not None
    cfg = EngineConfig(engine="vllm", model=model, version=version, **settings)  # type: ignore[arg-type]
    prec = precision(cfg, resolved.arch.dtype, resolved.quant, None)
    setup = setup_on(cfg, prec, gpu(gpu_name), max_len)
    return estimate(resolved.arch, setup)


# --- batch defaults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu_name", "seqs", "tokens"),
    [("H100", 1024, 8192), ("H200", 1024, 8192), ("A100-SXM-80GB", 256, 2048), ("L40S", 256, 2048)],
)
def test_v1_batch_defaults_are_large_on_70_gib_gpus_except_the_a100(gpu_name, seqs, tokens):
    est = run("meta-llama/Llama-3.1-8B-Instruct", gpu_name, (0, 11, 0), 16000)
    assert (est.setup.max_num_seqs, est.setup.max_num_batched_tokens) == (seqs, tokens)


# --- sampler ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "per_element"),
    [
        ((0, 10, 1), 14.0),
        ((0, 11, 0), 38.0),
        ((0, 20, 0), 38.0),
        ((0, 21, 0), 14.0),
        (None, 14.0),
        ((0, 6, 4), 6.0),
    ],
)
def test_sampler_peak_is_rows_times_vocab_times_the_release_sampler_path_bytes(version, per_element):
    est = run("meta-llama/Llama-3.1-8B-Instruct", "H100", version, 16000)
    rows = 1024 if version is None or version >= (0, 8) else 256
    assert sampler_bytes(arch("meta-llama/Llama-3.1-8B-Instruct"), est.setup) == rows * 128256 * per_element


def test_sampler_rows_are_capped_by_the_batched_tokens():
    est = run("meta-llama/Llama-3.1-8B-Instruct", "H100", (0, 11, 0), 16000, max_num_batched_tokens=512)
    assert sampler_bytes(arch("meta-llama/Llama-3.1-8B-Instruct"), est.setup) == 512 * 128256 * 38.0


def test_vllm_0_11_h100_peak_is_the_native_sampler_not_forward_plus_sampler():
    # llm-d logged 4.76 GiB peak activation for Llama-3.1-8B on H100 with vLLM 0.11 (1024 rows).
    est = run("meta-llama/Llama-3.1-8B-Instruct", "H100", (0, 11, 0), 16000)
    assert est.activation_bytes / GIB == pytest.approx(4.76, rel=0.03)


# --- NCCL and CUDA graphs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "inside", "outside"),
    [
        ((0, 6, 4), NON_TORCH_NCCL_V0_GIB, 0.0),
        ((0, 10, 1), NON_TORCH_NCCL_V1_GIB, 0.0),
        ((0, 11, 0), 0.0, NON_TORCH_NCCL_V1_GIB),
    ],
)
def test_nccl_memory_moves_out_of_the_budget_when_the_snapshot_follows_distributed_init(
    version, inside, outside
):
    est = run("Qwen/Qwen2-7B-Instruct", "A100-SXM-80GB", version, 16384, tp=2, enforce_eager=True)
    assert est.non_torch_bytes == pytest.approx((NON_TORCH_SINGLE_GIB + inside) * GIB)
    assert est.outside_budget_bytes == pytest.approx((CUDA_CONTEXT_GIB + outside) * GIB)


def test_a_single_gpu_has_no_nccl_memory_in_any_release():
    for version in ((0, 6, 4), (0, 10, 1), None):
        est = run("Qwen/Qwen2-7B-Instruct", "A100-SXM-80GB", version, 16384)
        assert est.non_torch_bytes == pytest.approx(NON_TORCH_SINGLE_GIB * GIB)


def test_cuda_graphs_come_out_of_the_kv_budget_from_0_20_unless_eager():
    before = run("Qwen/Qwen3-14B", "L40S", (0, 19, 0), 40960)
    after = run("Qwen/Qwen3-14B", "L40S", (0, 20, 0), 40960)
    assert before.kv_bytes - after.kv_bytes == pytest.approx(CUDA_GRAPHS_GIB * GIB)
    assert before.outside_budget_bytes - after.outside_budget_bytes == pytest.approx(CUDA_GRAPHS_GIB * GIB)
    eager = run("Qwen/Qwen3-14B", "L40S", (0, 20, 0), 40960, enforce_eager=True)
    assert eager.kv_bytes > after.kv_bytes and eager.graphs_bytes == 0


# --- sliding windows -------------------------------------------------------------------------------------


def test_sliding_layers_keep_window_minus_one_plus_a_chunk_and_a_block():
    est = run("openai/gpt-oss-120b", "H100", (0, 11, 0), 131072, max_num_batched_tokens=1024)
    per_layer = 2 * 8 * 64 * 2  # K and V, 8 KV heads of 64, bf16
    need = per_layer * (18 * 131072 + 18 * (128 - 1 + 1024 + 16))
    assert kv_bytes_per_token(arch("openai/gpt-oss-120b"), est.setup) * 131072 == pytest.approx(need)


def test_without_the_hybrid_allocator_sliding_layers_keep_whole_sequences():
    est = run(
        "openai/gpt-oss-120b", "H100", (0, 11, 0), 131072, flags={"disable-hybrid-kv-cache-manager": "true"}
    )
    assert kv_bytes_per_token(arch("openai/gpt-oss-120b"), est.setup) == 36 * 2 * 8 * 64 * 2


# --- mxfp4 --------------------------------------------------------------------------------------------


def test_hopper_mxfp4_experts_hold_two_scale_copies_and_fp32_biases():
    est = run("openai/gpt-oss-120b", "H100", (0, 11, 0), 16000)
    assert est.setup.mxfp4_layout == "triton"
    values = 3 * 2880 * 2880  # gate/up and down of one expert; 2880 is already a multiple of 64
    per_expert = values / 2 + values / 32 * 2 + (2 * 2880 + 2880) * 2
    assert _mxfp4_expert_bytes(arch("openai/gpt-oss-120b"), est.setup) == pytest.approx(36 * 128 * per_expert)


def test_marlin_pads_mxfp4_experts_on_ampere():
    est = run("openai/gpt-oss-20b", "A100-SXM-80GB", (0, 11, 0), 16000)
    assert est.setup.mxfp4_layout == "marlin"
    values = 3 * 3072 * 2944  # hidden 2880 -> 3072 (256), intermediate 2880 -> 2944 (128)
    expected = 24 * 32 * (values / 2 + values / 32)
    assert _mxfp4_expert_bytes(arch("openai/gpt-oss-20b"), est.setup) == pytest.approx(expected)


# --- verdicts from published logs ----------------------------------------------------------------------


def test_gpt_oss_120b_on_one_h100_starts_at_16k_and_is_refused_at_131k():
    # llm-d (vLLM 0.11.0) started it at 16000; vllm#27508 was refused at 131072 with util 0.95.
    assert run("openai/gpt-oss-120b", "H100", (0, 11, 0), 16000, mem_fraction=0.95).fits
    long = run(
        "openai/gpt-oss-120b", "H100", (0, 11, 0), 131072, mem_fraction=0.95, max_num_batched_tokens=1024
    )
    assert long.weights_fit and not long.sequence_fits


def test_qwen3_32b_on_one_h100_is_refused_at_32k():
    assert not run("Qwen/Qwen3-32B", "H100", (0, 11, 0), 32000).fits


# --- versions ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("0.11.0", (0, 11, 0)),
        ("v0.4.3.post4", (0, 4, 3)),
        ("1.2.0rc4", (1, 2, 0)),
        ("0.10.1.1", (0, 10, 1)),
        ("latest", None),
    ],
)
def test_parse_version_reads_release_numbers_and_stops_at_suffixes(text, version):
    assert parse_version(text) == version


# --- MLA and V0 chunked prefill ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "per_layer"),
    [((0, 6, 6), 2 * 16 * 256 * 2), ((0, 7, 0), 2 * 16 * 192 * 2), ((0, 7, 1), 576 * 2)],
)
def test_mla_is_cached_as_full_heads_before_0_7_1_and_as_the_latent_after(version, per_layer):
    est = run("deepseek-ai/DeepSeek-V2-Lite", "L40S", version, 4096)
    assert kv_bytes_per_token(arch("deepseek-ai/DeepSeek-V2-Lite"), est.setup) == 27 * per_layer


@pytest.mark.parametrize(("version", "tokens"), [((0, 5, 2), 65536), ((0, 5, 3), 2048), ((0, 6, 4), 2048)])
def test_v0_turns_chunked_prefill_on_past_32k_only_from_0_5_3(version, tokens):
    est = run("meta-llama/Llama-3.1-8B-Instruct", "H100", version, 65536)
    assert est.setup.max_num_batched_tokens == tokens


def test_v0_profile_peak_adds_forward_and_sampler_from_the_reserved_pool():
    v0 = run("meta-llama/Llama-3.1-8B-Instruct", "A100-SXM-80GB", (0, 6, 4), 16000)
    v1 = run("meta-llama/Llama-3.1-8B-Instruct", "A100-SXM-80GB", (0, 10, 1), 16000)
    assert v0.setup.reserved_peak and not v1.setup.reserved_peak
    model = arch("meta-llama/Llama-3.1-8B-Instruct")
    assert v0.activation_bytes > sampler_bytes(model, v0.setup)
