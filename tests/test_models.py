"""The model catalog and name parsing: exact parameter counts, resolution of ids, aliases, quantized
re-uploads and local paths, config.json parsing, and size/quantization hints from a bare name."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from placement.models import (
    RESOLVE_MEMO_SIZE,
    ModelCatalog,
    ModelError,
    arch_param_count,
    count_params,
    default_model_catalog,
    from_hf_config,
    load_model_catalog,
    quant_from_hf_config,
)
from placement.names import parse_model_name, strip_quant_suffix


@pytest.fixture(scope="module")
def models() -> ModelCatalog:
    return default_model_catalog()


# ------------------------------------------------------------------------------------- catalog contents


@pytest.mark.parametrize(("model_id", "params"), [
    ("meta-llama/Llama-3.1-8B-Instruct", 8_030_261_248),
    ("mistralai/Mistral-7B-Instruct-v0.1", 7_241_732_096),
    ("Qwen/Qwen2.5-7B-Instruct", 7_615_616_512),
    ("meta-llama/Llama-3.1-70B-Instruct", 70_553_706_496),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", 46_702_792_704),
    ("deepseek-ai/DeepSeek-V3", 671_026_419_200),
    ("openai/gpt-oss-20b", 20_914_757_184),
    ("openai/gpt-oss-120b", 116_829_156_672),
    ("google/gemma-3-27b-it", 27_432_406_640),
])
def test_catalog_has_exact_published_parameter_counts(
    models: ModelCatalog, model_id: str, params: int
) -> None:
    arch = models.get(model_id)
    assert arch is not None and arch.params == params


def test_every_entry_has_a_parameter_count_its_shape_explains(models: ModelCatalog) -> None:
    """Guards against a typo in any shape field: params must match the architecture within 1%."""
    for arch in models.all():
        computed = arch_param_count(arch) + arch.vision_params
        assert abs(computed - arch.params) / arch.params < 0.01, (arch.id, computed, arch.params)


def test_every_entry_cites_its_config_json(models: ModelCatalog) -> None:
    for arch in models.all():
        assert arch.source.startswith("https://huggingface.co/"), arch.id
        assert arch.source.endswith("config.json"), arch.id


def test_catalog_covers_the_popular_open_models(models: ModelCatalog) -> None:
    for name in [
        "meta-llama/Llama-3.1-405B-Instruct-FP8", "meta-llama/Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct",
        "meta-llama/Llama-3.3-70B-Instruct", "mistralai/Mistral-7B-v0.3",
        "mistralai/Mistral-Nemo-Instruct-2407",
        "mistralai/Mistral-Small-24B-Instruct-2501", "mistralai/Mixtral-8x22B-Instruct-v0.1",
        "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-Coder-32B-Instruct",
        "Qwen/Qwen3-0.6B", "Qwen/Qwen3-32B", "Qwen/Qwen3-30B-A3B", "Qwen/Qwen3-235B-A22B-FP8",
        "google/gemma-2-27b-it", "google/gemma-3-1b-it", "microsoft/Phi-3-mini-4k-instruct",
        "microsoft/Phi-3-medium-128k-instruct", "microsoft/phi-4", "deepseek-ai/DeepSeek-R1",
        "deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
        "openai/gpt-oss-20b",
    ]:
        assert models.get(name) is not None, name


@pytest.mark.parametrize(("model_id", "active_b"), [
    ("Qwen/Qwen3-235B-A22B", 22.2), ("Qwen/Qwen3-30B-A3B", 3.35), ("deepseek-ai/DeepSeek-V3", 37.6),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", 12.9), ("meta-llama/Llama-3.1-8B-Instruct", 8.03),
])
def test_active_parameters_leave_out_idle_experts(
    models: ModelCatalog, model_id: str, active_b: float
) -> None:
    arch = models.get(model_id)
    assert arch is not None and arch.active_params / 1e9 == pytest.approx(active_b, rel=0.01)


def test_embedding_params_count_a_tied_head_once(models: ModelCatalog) -> None:
    tied, untied = models.get("Qwen/Qwen3-0.6B"), models.get("Qwen/Qwen3-8B")
    assert tied is not None and untied is not None
    assert tied.embedding_params == 151936 * 1024
    assert untied.embedding_params == 2 * 151936 * 4096


@pytest.mark.parametrize(("model_id", "window", "sliding"), [
    ("google/gemma-2-9b-it", 4096, 21), ("google/gemma-3-27b-it", 1024, 52), ("google/gemma-3-1b-it", 512,
    22),
    ("openai/gpt-oss-120b", 128, 18), ("mistralai/Mistral-7B-Instruct-v0.1", 4096, 32),
])
def test_sliding_window_layers_follow_the_family_pattern(models: ModelCatalog, model_id: str, window: int,
                                                         sliding: int) -> None:
    arch = models.get(model_id)
    assert arch is not None and arch.sliding_window is not None
    assert (arch.sliding_window.window, arch.sliding_window.sliding_layers) == (window, sliding)


def test_models_without_a_usable_window_have_none(models: ModelCatalog) -> None:
    names = ["mistralai/Mistral-7B-Instruct-v0.3", "Qwen/Qwen2.5-7B-Instruct",
             "microsoft/Phi-3-mini-128k-instruct"]
    for name in names:
        assert models.get(name).sliding_window is None, name  # type: ignore[union-attr]


def test_deepseek_records_mla_and_native_fp8(models: ModelCatalog) -> None:
    arch = models.get("deepseek-ai/DeepSeek-R1")
    assert arch is not None and arch.mla is not None and arch.moe is not None
    assert (arch.mla.kv_lora_rank, arch.mla.qk_rope_head_dim) == (512, 64)
    assert (arch.moe.experts, arch.moe.shared_experts, arch.moe.dense_layers) == (256, 1, 3)
    assert arch.dtype == "fp8" and arch.kv_cache_heads == 1


def test_variants_inherit_the_architecture_with_their_own_dtype_and_context(models: ModelCatalog) -> None:
    base, fp8 = models.get("Qwen/Qwen3-235B-A22B"), models.get("Qwen/Qwen3-235B-A22B-FP8")
    long = models.get("Qwen/Qwen3-235B-A22B-Instruct-2507")
    assert base is not None and fp8 is not None and long is not None
    assert (fp8.dtype, fp8.layers, fp8.params) == ("fp8", base.layers, base.params)
    assert base.dtype == "bf16" and long.context == 262144 and base.context == 40960


# --------------------------------------------------------------------------------------------- lookup


@pytest.mark.parametrize(("name", "model_id"), [
    ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
    ("meta-llama/Meta-Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
    ("META-LLAMA/LLAMA-3.1-8B-INSTRUCT", "meta-llama/Llama-3.1-8B-Instruct"),
    ("Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
    ("llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct"),
    ("Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B"),
    ("mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-Instruct-v0.1"),
])
def test_get_finds_ids_and_aliases_case_insensitively(models: ModelCatalog, name: str, model_id: str) -> None:
    arch = models.get(name)
    assert arch is not None and arch.id == model_id


@pytest.mark.parametrize("name", ["", "gpt-5", "meta-llama/Llama-9-8B"])
def test_get_of_unknown_names_is_none(models: ModelCatalog, name: str) -> None:
    assert models.get(name) is None


@pytest.mark.parametrize(("name", "model_id", "quant"), [
    ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", None),
    ("Qwen/Qwen2.5-72B-Instruct-AWQ", "Qwen/Qwen2.5-72B-Instruct", "awq"),
    ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", "Qwen/Qwen2.5-7B-Instruct", "gptq"),
    ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8", "Qwen/Qwen2.5-7B-Instruct", "int8"),
    ("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "meta-llama/Llama-3.1-70B-Instruct", "awq"),
    ("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", "meta-llama/Llama-3.1-8B-Instruct", "fp8"),
    ("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", "meta-llama/Llama-3.3-70B-Instruct", "fp8"),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16", "meta-llama/Llama-3.1-8B-Instruct", "int4"),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8", "meta-llama/Llama-3.1-8B-Instruct", "int8"),
    ("unsloth/Llama-3.3-70B-Instruct-bnb-4bit", "meta-llama/Llama-3.3-70B-Instruct", "int4"),
    ("TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ", "mistralai/Mixtral-8x7B-Instruct-v0.1", "awq"),
    ("TheBloke/Mistral-7B-Instruct-v0.2-GPTQ", "mistralai/Mistral-7B-Instruct-v0.2", "gptq"),
    ("Qwen/Qwen3-235B-A22B-FP8", "Qwen/Qwen3-235B-A22B-FP8", "fp8"),
    ("Qwen/Qwen3-8B-FP8", "Qwen/Qwen3-8B-FP8", "fp8"),
    ("meta-llama/Llama-3.1-405B-Instruct-FP8", "meta-llama/Llama-3.1-405B-Instruct-FP8", "fp8"),
    ("deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-V3", "fp8"),
    ("openai/gpt-oss-120b", "openai/gpt-oss-120b", "mxfp4"),
])
def test_resolve_returns_architecture_and_quantization(models: ModelCatalog, name: str, model_id: str,
                                                       quant: str | None) -> None:
    resolved = models.resolve(name)
    assert resolved is not None
    assert (resolved.arch.id, resolved.quant, resolved.how) == (model_id, quant, "catalog")
    assert not resolved.arch.estimated


@pytest.mark.parametrize(("ref", "model_id"), [
    ("/models/llama-3.1-70b-instruct", "meta-llama/Llama-3.1-70B-Instruct"),
    ("/models/llama-3.1-70b-instruct/", "meta-llama/Llama-3.1-70B-Instruct"),
    ("s3://bucket/Llama-3.1-70B/", "meta-llama/Llama-3.1-70B-Instruct"),
    ("gs://models/qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),
    ("pvc://model-store/Mistral-7B-Instruct-v0.3", "mistralai/Mistral-7B-Instruct-v0.3"),
    ("hf://meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
    ("https://huggingface.co/google/gemma-3-27b-it", "google/gemma-3-27b-it"),
    ("https://huggingface.co/google/gemma-3-27b-it/tree/main", "google/gemma-3-27b-it"),
    ("/root/.cache/huggingface/hub/models--Qwen--Qwen2.5-7B-Instruct/snapshots/0123abc",
     "Qwen/Qwen2.5-7B-Instruct"),
    ("/mnt/models/qwen2.5-72b-instruct-awq", "Qwen/Qwen2.5-72B-Instruct"),
])
def test_local_paths_and_urls_resolve_by_their_last_component(models: ModelCatalog, ref: str,
                                                              model_id: str) -> None:
    resolved = models.resolve(ref)
    assert resolved is not None and resolved.arch.id == model_id


def test_unknown_model_with_a_size_gets_an_estimated_shape(models: ModelCatalog) -> None:
    resolved = models.resolve("acme/SuperChat-70B-v2")
    assert resolved is not None and resolved.how == "name" and resolved.arch.estimated
    arch = resolved.arch
    assert arch.params == 70_000_000_000 and arch.layers == 80 and arch.kv_heads == 8  # Llama-70B shape
    assert "Llama-3.1-70B" in arch.source


def test_unknown_quantized_model_keeps_its_quantization(models: ModelCatalog) -> None:
    resolved = models.resolve("acme/SuperChat-13B-AWQ")
    assert resolved is not None and resolved.how == "name"
    assert resolved.quant == "awq" and resolved.arch.params == 13_000_000_000
    assert resolved.weight_dtype == "int4"


def test_mixtral_style_name_estimates_total_and_experts(models: ModelCatalog) -> None:
    resolved = models.resolve("acme/Mega-8x7B")
    assert resolved is not None and resolved.arch.moe is not None
    assert resolved.arch.params / 1e9 == pytest.approx(46.7, rel=0.03)
    assert resolved.arch.moe.experts == 8 and resolved.arch.layers == 32  # the 8B reference shape


@pytest.mark.parametrize("name", ["", "my-finetune", "/mnt/models", "microsoft/phi-5"])
def test_names_without_catalog_entry_or_size_resolve_to_nothing(models: ModelCatalog, name: str) -> None:
    assert models.resolve(name) is None


def test_weight_dtype_follows_quant_else_the_checkpoint(models: ModelCatalog) -> None:
    assert models.resolve("Qwen/Qwen2.5-7B-Instruct").weight_dtype == "bf16"  # type: ignore[union-attr]
    assert models.resolve("Qwen/Qwen2.5-7B-Instruct-AWQ").weight_dtype == "int4"  # type: ignore[union-attr]
    assert models.resolve("meta-llama/Llama-2-7b-hf").weight_dtype == "fp16"  # type: ignore[union-attr]
    assert models.resolve("openai/gpt-oss-20b").weight_dtype == "mxfp4"  # type: ignore[union-attr]


def test_shape_references_are_dense_models(models: ModelCatalog) -> None:
    refs = models.shape_references
    assert len(refs) >= 5
    assert all(r.moe is None and r.mla is None and r.sliding_window is None for r in refs)


# ---------------------------------------------------------------------------------------- from_hf_config

LLAMA_31_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": 128256,
}
QWEN3_30B_A3B: dict[str, Any] = {
    "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144,
    "max_position_embeddings": 40960, "max_window_layers": 48, "mlp_only_layers": [],
    "model_type": "qwen3_moe",
    "moe_intermediate_size": 768, "norm_topk_prob": True, "num_attention_heads": 32, "num_experts": 128,
    "num_experts_per_tok": 8, "num_hidden_layers": 48, "num_key_value_heads": 4,
    "output_router_logits": False,
    "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 151936,
}
# gemma-3-27b-it: the decoder is nested under text_config, which omits vocab_size and
# max_position_embeddings (transformers defaults); the SigLIP tower is under vision_config.
GEMMA3_27B: dict[str, Any] = {
    "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
    "eos_token_id": [1, 106], "image_token_index": 262144, "initializer_range": 0.02,
    "mm_tokens_per_image": 256, "model_type": "gemma3",
    "text_config": {
        "head_dim": 128, "hidden_size": 5376, "intermediate_size": 21504, "model_type": "gemma3_text",
        "num_attention_heads": 32, "num_hidden_layers": 62, "num_key_value_heads": 16,
        "query_pre_attn_scalar": 168, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "sliding_window": 1024,
    },
    "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
    "vision_config": {
        "hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
        "model_type": "siglip_vision_model",
        "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": False,
    },
}
DEEPSEEK_V3: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168, "initializer_range": 0.02,
    "intermediate_size": 18432, "kv_lora_rank": 512, "max_position_embeddings": 163840,
    "model_type": "deepseek_v3", "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8,
    "n_routed_experts": 256, "n_shared_experts": 1, "norm_topk_prob": True, "num_attention_heads": 128,
    "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]},
    "rms_norm_eps": 1e-06, "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
    "tie_word_embeddings": False, "topk_group": 4, "topk_method": "noaux_tc", "torch_dtype": "bfloat16",
    "v_head_dim": 128, "vocab_size": 129280,
}
GPT_OSS_20B: dict[str, Any] = {
    "architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
    "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880,
    "initial_context_length": 4096, "initializer_range": 0.02, "intermediate_size": 2880,
    "layer_types": ["sliding_attention", "full_attention"] * 12, "max_position_embeddings": 131072,
    "model_type": "gpt_oss", "num_attention_heads": 64, "num_experts_per_tok": 4, "num_hidden_layers": 24,
    "num_key_value_heads": 8, "num_local_experts": 32, "output_router_logits": False, "pad_token_id": 199999,
    "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn",
    "model.layers.*.mlp.router",
                                                       "model.embed_tokens", "lm_head"],
                                                       "quant_method": "mxfp4"},
    "rms_norm_eps": 1e-05, "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128,
    "swiglu_limit": 7.0, "tie_word_embeddings": False, "use_cache": True, "vocab_size": 201088,
}
MIXTRAL_8X7B: dict[str, Any] = {
    "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "model_type": "mixtral", "num_attention_heads": 32,
    "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 8,
    "output_router_logits": False, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
    "router_aux_loss_coef": 0.02, "sliding_window": None, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": 32000,
}
MISTRAL_7B_V01: dict[str, Any] = {
    "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": 32000,
}
QWEN25_7B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02,
    "intermediate_size": 18944, "max_position_embeddings": 32768, "max_window_layers": 28,
    "model_type": "qwen2",
    "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True, "use_sliding_window": False, "vocab_size": 152064,
}

CONFIGS = [
    (LLAMA_31_8B, "meta-llama/Llama-3.1-8B-Instruct"),
    (QWEN3_30B_A3B, "Qwen/Qwen3-30B-A3B"),
    (GEMMA3_27B, "google/gemma-3-27b-it"),
    (DEEPSEEK_V3, "deepseek-ai/DeepSeek-V3"),
    (GPT_OSS_20B, "openai/gpt-oss-20b"),
    (MIXTRAL_8X7B, "mistralai/Mixtral-8x7B-Instruct-v0.1"),
    (MISTRAL_7B_V01, "mistralai/Mistral-7B-Instruct-v0.1"),
    (QWEN25_7B, "Qwen/Qwen2.5-7B-Instruct"),
]


@pytest.mark.parametrize(("config", "model_id"), CONFIGS, ids=[m for _, m in CONFIGS])
def test_hf_config_reproduces_the_catalog_entry(models: ModelCatalog, config: dict[str, Any],
                                                model_id: str) -> None:
    arch = from_hf_config(config, model_id)
    expected = models.get(model_id)
    assert expected is not None
    assert abs(arch.params - expected.params) / expected.params < 0.01
    assert arch.params == expected.params  # the formula is exact for these families
    for field in ("layers", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab", "context",
                  "tie_embeddings", "dtype", "moe", "mla", "sliding_window", "vision_params"):
        assert getattr(arch, field) == getattr(expected, field), field


def test_hf_config_of_gemma3_reads_the_nested_text_config() -> None:
    arch = from_hf_config(GEMMA3_27B, "google/gemma-3-27b-it")
    assert (arch.layers, arch.hidden, arch.vocab, arch.context) == (62, 5376, 262208, 131072)
    assert arch.tie_embeddings and arch.vision_params == 423_060_336


def test_hf_config_missing_key_names_it() -> None:
    config = copy.deepcopy(LLAMA_31_8B)
    del config["num_hidden_layers"]
    with pytest.raises(ModelError, match="num_hidden_layers") as err:
        from_hf_config(config, "acme/broken")
    assert "acme/broken" in str(err.value)


def test_hf_config_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ModelError):
        from_hf_config([], "x")  # type: ignore[arg-type]


@pytest.mark.parametrize(("quant_config", "expected"), [
    ({"quant_method": "awq", "bits": 4, "group_size": 128}, "awq"),
    ({"quant_method": "gptq", "bits": 4}, "gptq"),
    ({"quant_method": "gptq", "bits": 8}, "int8"),
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8"),
    ({"quant_method": "mxfp4"}, "mxfp4"),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "int4"),
    ({"quant_method": "compressed-tensors",
      "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "float"}}}}, "fp8"),
    ({"quant_method": "compressed-tensors",
      "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int"}}}}, "int4"),
])
def test_quantization_config_is_detected(quant_config: dict[str, Any], expected: str) -> None:
    config = {**LLAMA_31_8B, "quantization_config": quant_config}
    assert quant_from_hf_config(config) == expected
    arch = from_hf_config(config, "q")
    assert arch.dtype == {"awq": "int4", "gptq": "int4"}.get(expected, expected)


def test_count_params_matches_hand_arithmetic_for_llama_8b() -> None:
    per_layer = 4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336 + 2 * 4096
    expected = 32 * per_layer + 2 * 128256 * 4096 + 4096
    assert count_params(layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128, intermediate=14336,
                        vocab=128256, tie_embeddings=False) == expected == 8_030_261_248


# ------------------------------------------------------------------------------------------ user models

USER_MODEL: dict[str, Any] = {
    "id": "acme/Chat-9B", "aliases": ["acme/chat-9b-latest"], "params": 9_000_000_000, "layers": 40,
    "hidden": 4096, "heads": 32, "kv_heads": 8, "head_dim": 128, "intermediate": 12288, "vocab": 100000,
    "context": 65536, "tie_embeddings": False, "dtype": "bf16",
    "source": "https://example.com/acme/Chat-9B/config.json",
}


def test_with_models_adds_user_models(models: ModelCatalog) -> None:
    extended = models.with_models([USER_MODEL])
    assert extended.get("acme/chat-9b-latest").params == 9_000_000_000  # type: ignore[union-attr]
    assert extended.resolve("acme/Chat-9B-AWQ").quant == "awq"  # type: ignore[union-attr]
    assert models.get("acme/Chat-9B") is None  # the bundled catalog is untouched


@pytest.mark.parametrize(("change", "field"), [
    ({"layers": "forty"}, "layers"), ({"dtype": "fp6"}, "dtype"), ({"kv_heads": 7}, "kv_heads"),
    ({"moe": {"experts": 8}}, "experts_per_token"), ({"source": "somewhere"}, "source"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_user_model_names_entry_and_field(
    models: ModelCatalog, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ModelError) as err:
        models.with_models([{**USER_MODEL, **change}])
    assert "acme/Chat-9B" in str(err.value) and field in str(err.value)


def test_user_model_that_reuses_an_alias_is_refused(models: ModelCatalog) -> None:
    with pytest.raises(ModelError, match=r"Llama-3\.1-8B"):
        models.with_models([{**USER_MODEL, "aliases": ["meta-llama/Llama-3.1-8B"]}])


def test_load_with_a_path_adds_the_models_in_that_file(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n  - id: acme/Tiny-1B\n    params: 1000000000\n    layers: 16\n    hidden: 2048\n"
        "    heads: 16\n    kv_heads: 4\n    head_dim: 128\n    intermediate: 8192\n"
        "    vocab: 32000\n    context: 8192\n    tie_embeddings: true\n    dtype: bf16\n"
        "    source: https://example.com/config.json\n"
    )
    catalog = load_model_catalog(path)
    assert catalog.get("Tiny-1B") is not None and len(catalog) == len(default_model_catalog()) + 1
    path.write_text("models: [{id: acme/x}]\n")
    with pytest.raises(ModelError, match=r"models\.yaml.*acme/x.*params"):
        load_model_catalog(path)


def test_default_model_catalog_is_loaded_once() -> None:
    assert default_model_catalog() is default_model_catalog()


# --------------------------------------------------------------------------------------- name parsing


@pytest.mark.parametrize(("name", "params", "active", "experts", "quant"), [
    ("meta-llama/Llama-3.1-70B-Instruct", 70, None, None, None),
    ("Qwen/Qwen2.5-0.5B-Instruct", 0.5, None, None, None),
    ("qwen2.5-1.5b", 1.5, None, None, None),
    ("HuggingFaceTB/SmolLM2-135M", 0.135, None, None, None),
    ("google/gemma-2-9b-it", 9, None, None, None),
    ("Qwen/Qwen3-235B-A22B", 235, 22, None, None),
    ("Qwen/Qwen3-30B-A3B-GPTQ-Int4", 30, 3, None, "gptq"),
    ("mistralai/Mixtral-8x7B-v0.1", 46.2, 12.6, 8, None),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", None, 17, 16, None),
    ("openai/gpt-oss-20b", 20, None, None, None),
    ("Qwen/Qwen2.5-72B-Instruct-AWQ", 72, None, None, "awq"),
    ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8", 7, None, None, "int8"),
    ("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", 70, None, None, "fp8"),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16", 8, None, None, "int4"),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8", 8, None, None, "int8"),
    ("unsloth/gemma-2-9b-it-bnb-4bit", 9, None, None, "int4"),
    ("bartowski/Qwen2.5-7B-Instruct-GGUF", 7, None, None, None),
    ("Qwen2.5-7B-Instruct-Q4_K_M", 7, None, None, "int4"),
    ("acme/model-120B-mxfp4", 120, None, None, "mxfp4"),
    ("nvidia/Llama-3.3-70B-Instruct-NVFP4", 70, None, None, "nvfp4"),
    ("microsoft/phi-4", None, None, None, None),
    ("bnb-4bit", None, None, None, "int4"),
])
def test_parse_model_name(name: str, params: float | None, active: float | None, experts: int | None,
                          quant: str | None) -> None:
    hints = parse_model_name(name)
    assert hints.params_b == (pytest.approx(params) if params is not None else None)
    assert hints.active_params_b == (pytest.approx(active) if active is not None else None)
    assert (hints.experts, hints.quant) == (experts, quant)


@pytest.mark.parametrize(("name", "base"), [
    ("mistralai/Mistral-7B-Instruct-v0.1", "mistralai/Mistral-7B-Instruct-v0.1"),
    ("TheBloke/Mistral-7B-Instruct-v0.1-AWQ", "TheBloke/Mistral-7B-Instruct-v0.1"),
    ("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "hugging-quants/Meta-Llama-3.1-70B-Instruct"),
    ("unsloth/Llama-3.3-70B-Instruct-unsloth-bnb-4bit", "unsloth/Llama-3.3-70B-Instruct"),
    ("Qwen2.5-7B-Instruct-Q8_0", "Qwen2.5-7B-Instruct"),
    ("/models/qwen3-8b-fp8/", "/models/qwen3-8b"),
    ("Qwen/Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B"),
])
def test_strip_quant_suffix_keeps_version_numbers(name: str, base: str) -> None:
    assert strip_quant_suffix(name)[0] == base


def test_mixtral_style_sizes_follow_the_documented_ffn_share() -> None:
    assert parse_model_name("Mixtral-8x22B").params_b == pytest.approx(145.2)
    assert parse_model_name("Mixtral-8x7B").expert_params_b == 7


def test_resolve_memo_answers_as_the_first_lookup_and_stays_bounded() -> None:
    base = default_model_catalog()
    catalog = ModelCatalog(base, [a.id for a in base.shape_references])  # its own instance and memo
    first = catalog.resolve("meta-llama/Llama-3.1-8B-Instruct")
    assert first is not None and catalog.resolve("meta-llama/Llama-3.1-8B-Instruct") is first
    guessed = catalog.resolve("acme/house-model-13B")
    assert guessed is not None and guessed.how == "name"
    assert catalog.resolve("acme/house-model-13B") is guessed  # one arch object: the estimate memo hits
    assert catalog.resolve("no-size-here") is None and catalog.resolve("no-size-here") is None
    info = catalog._resolve_memo.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (3, 3, RESOLVE_MEMO_SIZE)
    # Memos are per catalog: one with a user's models.yaml never answers from the bundled one's.
    assert base._resolve_memo is not catalog._resolve_memo
