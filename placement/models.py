"""The model catalog: exact architectures of popular open models, and how a model name resolves to one.

Data: `placement/data/models.yaml` (figures from each model's Hugging Face config.json; schema in
`placement/data/README.md`). Resolution order (design.md, "What a workload serves"):

1. the catalog: id or alias, case-insensitive, with or without the org prefix, also the last component of a
   local path or bucket URL (`/models/llama-3.1-70b-instruct`, `s3://bucket/Llama-3.1-70B/`);
2. the catalog after stripping a quantization suffix and a re-packager's org prefix
   (`hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4` -> Llama-3.1-70B-Instruct + awq);
3. the name alone (`placement/names.py`): a size in the name ('70B', '8x7B') gives an *estimated*
   architecture: the shape (layers, hidden, heads, KV heads, head_dim, vocab) of the catalog's nearest
   `shape_reference` model by parameter count, with the parameter count from the name, and a context of
   GUESS_CONTEXT tokens (never the reference's: another family's 128k context would make the engine's
   default max-model-len, and so an oom finding, up);
4. nothing: None (the caller reports `unknown-model`).

`from_hf_config` turns a config.json dict into a ModelArch, for models the catalog lacks.
This module reads only its own data file and a path explicitly handed in.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from placement.datafiles import bundled, entry_list, user_file
from placement.names import QUANT_WEIGHT_DTYPE, QUANTS, parse_model_name, strip_quant_suffix

_BUNDLED = "models.yaml"
DTYPES = ("bf16", "fp16", "fp32", "fp8", "int8", "int4", "mxfp4")
# Checkpoint dtypes that are a weight quantization (Resolved.quant of a catalog hit with no quant suffix).
_QUANTIZED_DTYPES = {"fp8", "int8", "int4", "mxfp4"}
# Context length assumed for a model known only by its name: the shortest any current family ships
# (Falcon, Llama 1 and 2's 2k-4k), so that a guess never claims a long-context KV cache the model lacks.
GUESS_CONTEXT = 2048


class ModelError(ValueError):
    """Bad model data (catalog entry or config.json). The message names the model and the key."""


# ---------------------------------------------------------------------------------------------------------
# What the rest of gpuplace sees


@dataclass(frozen=True)
class Moe:
    experts: int  # routed experts per MoE layer
    experts_per_token: int
    moe_intermediate: int  # FFN width of one expert
    shared_experts: int = 0  # always-on experts of moe_intermediate width (DeepSeek: 1)
    dense_layers: int = 0  # leading layers with a dense FFN instead (DeepSeek first_k_dense_replace: 3)
    dense_intermediate: int | None = None  # FFN width of those dense layers


@dataclass(frozen=True)
class Mla:
    """DeepSeek multi-head latent attention: the KV cache holds one latent of kv_lora_rank + qk_rope_head_dim
    per token and layer, shared by all heads (and replicated on every TP rank)."""

    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None


@dataclass(frozen=True)
class SlidingWindow:
    window: int  # tokens a sliding-window layer attends to (and keeps in its KV cache)
    sliding_layers: int  # how many of the model's layers use the window; the rest are global


@dataclass(frozen=True)
class ModelArch:
    id: str
    params: int  # total parameters as loaded (tied embeddings once; vision tower included, see vision_params)
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    context: int  # max_position_embeddings of config.json: what engines default max_model_len to
    tie_embeddings: bool
    dtype: str  # native checkpoint dtype: bf16 | fp16 | fp32 | fp8 | int8 | int4 | mxfp4
    moe: Moe | None = None
    mla: Mla | None = None
    sliding_window: SlidingWindow | None = None
    aliases: tuple[str, ...] = ()
    source: str = ""
    estimated: bool = False  # True when built from a name guess, not from a config
    vision_params: int = 0  # parameters of a vision tower + projector included in `params`
    # Parameters besides embeddings that a quantized checkpoint keeps in 16 bits (Meta's FP8 405B keeps
    # attention and the first/last FFN in bf16). 0: every linear layer is quantized.
    unquantized_params: int = 0

    def __hash__(self) -> int:
        # The estimate memo hashes its key on every lookup: two fields, not twenty. Equal archs have equal
        # ids and sizes, so this agrees with the generated __eq__.
        return hash((self.id, self.params))

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tie_embeddings else 2)

    @property
    def active_params(self) -> int:
        """Parameters used per token: all of them for a dense model; for MoE, the inactive routed experts
        (experts - experts_per_token per MoE layer, 3 gated matrices each) are left out."""
        if self.moe is None:
            return self.params
        moe_layers = self.layers - self.moe.dense_layers
        inactive = moe_layers * (self.moe.experts - self.moe.experts_per_token) * 3 * self.hidden \
            * self.moe.moe_intermediate
        return self.params - inactive

    @property
    def kv_cache_heads(self) -> int:
        """KV heads stored per layer (MLA: one shared latent)."""
        return 1 if self.mla is not None else self.kv_heads


@dataclass(frozen=True)
class Resolved:
    arch: ModelArch
    quant: str | None  # 'fp8' | 'awq' | 'gptq' | 'int8' | 'int4' | 'mxfp4' | 'nvfp4' | None (unquantized)
    how: Literal["catalog", "hf-config", "name"]

    @property
    def weight_dtype(self) -> str:
        """Storage of the quantized linear layers, as a key of placement.memory.WEIGHT_BYTES."""
        if self.quant is not None:
            return QUANT_WEIGHT_DTYPE.get(self.quant, self.arch.dtype)
        return self.arch.dtype


# ---------------------------------------------------------------------------------------------------------
# Parameter count from the architecture


def count_params(
    *,
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    intermediate: int,
    vocab: int,
    tie_embeddings: bool,
    moe: Moe | None = None,
    mla: Mla | None = None,
    qkv_bias: bool = False,
    o_bias: bool = False,
    qk_norm: bool = False,
    norms_per_layer: int = 2,
    attn_sinks: bool = False,
    router_bias: bool = False,
    expert_bias: bool = False,
    router_score_bias: bool = False,
) -> int:
    """Parameters of a decoder-only transformer with gated (SwiGLU/GeGLU) FFNs, as loaded by an engine.

        embeddings  vocab x hidden, twice unless tied; + the final norm (hidden)
        attention   q: hidden x heads*head_dim, k and v: hidden x kv_heads*head_dim each,
                    o: heads*head_dim x hidden; + biases, per-head q/k norms (2 x head_dim), sinks (heads)
                    MLA: q_a (hidden x q_lora) + norm + q_b (q_lora x heads*(nope+rope)) [or q: hidden x
                    heads*(nope+rope)], kv_a (hidden x (kv_lora+rope)) + norm, kv_b (kv_lora x
                    heads*(nope+v)), o (heads*v x hidden)
        FFN         dense: 3 x hidden x intermediate. MoE: experts x 3 x hidden x moe_intermediate
                    + router (hidden x experts) + shared experts (3 x hidden x moe_intermediate each);
                    the first `dense_layers` layers are dense with `dense_intermediate`
        norms       norms_per_layer x hidden per layer (2; Gemma 2/3: 4)

    Multi-token-prediction heads (DeepSeek-V3 `num_nextn_predict_layers`) are not counted: engines do not
    load them unless speculative decoding asks for them. Reproduces safetensors totals exactly for Llama,
    Mistral, Qwen2/3, Gemma 2/3 text, Phi-3/4, Mixtral, DeepSeek-V3 and gpt-oss (tests/test_models.py).
    """
    embed = vocab * hidden * (1 if tie_embeddings else 2) + hidden
    if mla is not None:
        qk_head = mla.qk_nope_head_dim + mla.qk_rope_head_dim
        if mla.q_lora_rank:
            q = hidden * mla.q_lora_rank + mla.q_lora_rank + mla.q_lora_rank * heads * qk_head
        else:
            q = hidden * heads * qk_head
        kv = hidden * (mla.kv_lora_rank + mla.qk_rope_head_dim) + mla.kv_lora_rank \
            + mla.kv_lora_rank * heads * (mla.qk_nope_head_dim + mla.v_head_dim)
        attn = q + kv + heads * mla.v_head_dim * hidden
    else:
        q_width, kv_width = heads * head_dim, kv_heads * head_dim
        attn = hidden * q_width + 2 * hidden * kv_width + q_width * hidden
        if qkv_bias:
            attn += q_width + 2 * kv_width
        if o_bias:
            attn += hidden
        if qk_norm:
            attn += 2 * head_dim
    if attn_sinks:
        attn += heads
    norms = norms_per_layer * hidden
    dense_ffn = 3 * hidden * intermediate
    if moe is None:
        return embed + layers * (attn + dense_ffn + norms)
    expert = 3 * hidden * moe.moe_intermediate
    moe_ffn = moe.experts * expert + hidden * moe.experts + moe.shared_experts * expert
    if router_bias or router_score_bias:
        moe_ffn += moe.experts
    if expert_bias:
        moe_ffn += moe.experts * (2 * moe.moe_intermediate + hidden)
    first = moe.dense_layers * (attn + 3 * hidden * (moe.dense_intermediate or intermediate) + norms)
    return embed + first + (layers - moe.dense_layers) * (attn + moe_ffn + norms)


def arch_param_count(arch: ModelArch) -> int:
    """count_params on a ModelArch with default flags (no biases or q/k norms): within ~0.1% of the real
    count for the catalog's models. Excludes vision_params."""
    return count_params(layers=arch.layers, hidden=arch.hidden, heads=arch.heads, kv_heads=arch.kv_heads,
                        head_dim=arch.head_dim, intermediate=arch.intermediate, vocab=arch.vocab,
                        tie_embeddings=arch.tie_embeddings, moe=arch.moe, mla=arch.mla)


def siglip_params(vision: Mapping[str, Any]) -> int:
    """A SigLIP vision tower (Gemma 3): patch conv + position embeddings + pre-norm ViT layers with biases."""
    h = int(vision.get("hidden_size", 1152))
    inter = int(vision.get("intermediate_size", 4304))
    n = int(vision.get("num_hidden_layers", 27))
    patch = int(vision.get("patch_size", 14))
    image = int(vision.get("image_size", 896))
    channels = int(vision.get("num_channels", 3))
    patches = (image // patch) ** 2
    embed = channels * patch * patch * h + h + patches * h
    layer = 4 * (h * h + h) + (h * inter + inter) + (inter * h + h) + 2 * 2 * h
    return embed + n * layer + 2 * h


# ---------------------------------------------------------------------------------------------------------
# Hugging Face config.json

_TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32"}

# Keys that real config.json files omit because they equal transformers' defaults for that model_type.
_HF_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma3_text": {"vocab_size": 262208, "max_position_embeddings": 131072, "head_dim": 256,
                    "num_key_value_heads": 4, "sliding_window": 4096, "sliding_window_pattern": 6,
                    "tie_word_embeddings": True},
    "gemma2": {"tie_word_embeddings": True, "sliding_window": 4096, "head_dim": 256},
    "gemma": {"tie_word_embeddings": True},
}
# Per-architecture layout facts the parameter count needs (not in config.json).
_ARCH_FLAGS: dict[str, dict[str, Any]] = {
    "qwen2": {"qkv_bias": True},
    "qwen2_moe": {"qkv_bias": True},
    "qwen3": {"qk_norm": True},
    "qwen3_moe": {"qk_norm": True},
    "gemma2": {"norms_per_layer": 4},
    "gemma3_text": {"norms_per_layer": 4, "qk_norm": True},
    "gpt_oss": {"attn_sinks": True, "router_bias": True, "expert_bias": True},
    "deepseek_v3": {"router_score_bias": True},
}
# Layer patterns when config.json has no `layer_types`: model_type -> sliding layers of n.
_SLIDING_PATTERN: dict[str, Any] = {
    "gemma2": lambda n, cfg: (n + 1) // 2,  # even layers slide
    "gpt_oss": lambda n, cfg: (n + 1) // 2,
    "gemma3_text": lambda n, cfg: n - n // int(cfg.get("sliding_window_pattern", 6)),
}
# Families whose sliding_window applies to every layer when set (Mistral v0.1, Phi-3 4k).
_SLIDING_ALL = {"mistral", "mixtral", "phi3", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe", "starcoder2"}


def _first(cfg: Mapping[str, Any], *keys: str) -> Any:
    return next((cfg[k] for k in keys if cfg.get(k) is not None), None)


def quant_from_hf_config(config: Mapping[str, Any]) -> str | None:
    """The checkpoint's weight quantization from `quantization_config` ('fp8', 'awq', 'gptq', 'int8',
    'int4', 'mxfp4', 'nvfp4'), or None."""
    q = config.get("quantization_config") or (config.get("text_config") or {}).get("quantization_config")
    if not isinstance(q, Mapping):
        return None
    method = str(q.get("quant_method", "")).lower()
    bits = q.get("bits") or q.get("w_bit")
    if method in {"fp8", "fbgemm_fp8"}:
        return "fp8"
    if method in {"awq", "gptq"}:
        return "int8" if bits == 8 else method
    if method == "mxfp4":
        return "mxfp4"
    if method == "bitsandbytes":
        return "int8" if q.get("load_in_8bit") else "int4"
    if method in {"compressed-tensors", "modelopt"}:
        if "fp4" in str(q.get("quant_algo", "")).lower():
            return "nvfp4"
        for group in (q.get("config_groups") or {}).values():
            w = (group or {}).get("weights") or {}
            nbits, kind = w.get("num_bits"), str(w.get("type", "int"))
            if kind == "float" and nbits == 8:
                return "fp8"
            if kind == "float" and nbits == 4:
                return "nvfp4"
            if nbits == 8:
                return "int8"
            if nbits == 4:
                return "int4"
        if "fp8" in str(q.get("quant_algo", "")).lower():
            return "fp8"
    return None


def _dtype_of(config: Mapping[str, Any], text: Mapping[str, Any]) -> str:
    quant = quant_from_hf_config(config)
    if quant is not None:
        return {"awq": "int4", "gptq": "int4", "nvfp4": "int4"}.get(quant, quant)
    raw = _first(config, "torch_dtype", "dtype") or _first(text, "torch_dtype", "dtype") or "bfloat16"
    return _TORCH_DTYPES.get(str(raw).removeprefix("torch."), "bf16")


def from_hf_config(config: Mapping[str, Any], name: str) -> ModelArch:
    """A ModelArch from a Hugging Face config.json dict. Knows llama, mistral, mixtral, qwen2, qwen2_moe,
    qwen3, qwen3_moe, gemma2, gemma3 (decoder under `text_config`, SigLIP tower counted), gemma3_text,
    phi3, deepseek_v3 and gpt_oss; other decoder-only types with the usual key names work too. The
    parameter count is computed with `count_params` (config.json has none). ModelError names a missing key."""
    if not isinstance(config, Mapping):
        raise ModelError(f"config.json for {name!r}: expected a JSON object")
    nested = config.get("text_config")
    text: dict[str, Any] = dict(nested) if isinstance(nested, Mapping) else dict(config)
    model_type = str(text.get("model_type") or config.get("model_type") or "")
    if model_type == "gemma3" or (isinstance(nested, Mapping) and config.get("model_type") == "gemma3"):
        model_type = "gemma3_text"
    text = {**_HF_DEFAULTS.get(model_type, {}), **text}
    for key in ("tie_word_embeddings", "torch_dtype", "dtype"):
        if key not in text and key in config:
            text[key] = config[key]

    def need(*keys: str) -> Any:
        value = _first(text, *keys)
        if value is None:
            raise ModelError(f"config.json for {name!r} (model_type {model_type or '?'}): missing "
                             f"{' / '.join(repr(k) for k in keys)}")
        return value

    layers = int(need("num_hidden_layers", "n_layer", "num_layers"))
    hidden = int(need("hidden_size", "n_embd", "d_model"))
    heads = int(need("num_attention_heads", "n_head"))
    kv_heads = int(_first(text, "num_key_value_heads", "num_kv_heads") or heads)
    head_dim = int(_first(text, "head_dim") or hidden // heads)
    intermediate = int(need("intermediate_size", "ffn_dim", "n_inner"))
    vocab = int(need("vocab_size"))
    context = int(need("max_position_embeddings", "n_positions", "max_sequence_length"))
    tie = bool(text.get("tie_word_embeddings", False))

    mla = None
    if text.get("kv_lora_rank"):
        mla = Mla(kv_lora_rank=int(text["kv_lora_rank"]), qk_rope_head_dim=int(need("qk_rope_head_dim")),
                  qk_nope_head_dim=int(need("qk_nope_head_dim")), v_head_dim=int(need("v_head_dim")),
                  q_lora_rank=int(text["q_lora_rank"]) if text.get("q_lora_rank") else None)
        head_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim

    moe = None
    experts = _first(text, "num_local_experts", "num_experts", "n_routed_experts")
    if experts:
        per_token = int(need("num_experts_per_tok", "experts_per_token", "moe_topk"))
        moe_inter = int(_first(text, "moe_intermediate_size") or intermediate)
        shared = int(text.get("n_shared_experts") or 0)
        if not shared and text.get("shared_expert_intermediate_size"):
            shared = int(text["shared_expert_intermediate_size"]) // moe_inter
        dense = int(text.get("first_k_dense_replace") or len(text.get("mlp_only_layers") or []))
        moe = Moe(experts=int(experts), experts_per_token=per_token, moe_intermediate=moe_inter,
                  shared_experts=shared, dense_layers=dense,
                  dense_intermediate=intermediate if dense else None)

    window = _sliding_window(text, model_type, layers, context)
    flags = dict(_ARCH_FLAGS.get(model_type, {}))
    if text.get("attention_bias"):
        flags.update(qkv_bias=True, o_bias=True)
    params = count_params(layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                          intermediate=intermediate, vocab=vocab, tie_embeddings=tie, moe=moe, mla=mla,
                          **flags)
    vision = 0
    vcfg = config.get("vision_config")
    if isinstance(vcfg, Mapping) and str(vcfg.get("model_type", "")).startswith("siglip"):
        vh = int(vcfg.get("hidden_size", 1152))
        vision = siglip_params(vcfg) + vh * hidden + vh  # + Gemma 3 projector (linear + soft-embedding norm)
    return ModelArch(id=name, params=params + vision, layers=layers, hidden=hidden, heads=heads,
                     kv_heads=kv_heads, head_dim=head_dim, intermediate=intermediate, vocab=vocab,
                     context=context, tie_embeddings=tie, dtype=_dtype_of(config, text), moe=moe, mla=mla,
                     sliding_window=window, vision_params=vision)


def _sliding_window(
    text: Mapping[str, Any], model_type: str, layers: int, context: int
) -> SlidingWindow | None:
    window = text.get("sliding_window")
    if not window or text.get("use_sliding_window") is False or int(window) >= context:
        return None
    layer_types = text.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        sliding = sum(1 for t in layer_types if "sliding" in str(t))
    elif model_type in _SLIDING_PATTERN:
        sliding = _SLIDING_PATTERN[model_type](layers, text)
    elif model_type in _SLIDING_ALL or not model_type:
        sliding = layers
    else:
        return None
    return SlidingWindow(window=int(window), sliding_layers=sliding) if sliding else None


# ---------------------------------------------------------------------------------------------------------
# The YAML schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _MoeModel(_Strict):
    experts: int = Field(ge=2)
    experts_per_token: int = Field(ge=1)
    moe_intermediate: int = Field(ge=1)
    shared_experts: int = Field(default=0, ge=0)
    dense_layers: int = Field(default=0, ge=0)
    dense_intermediate: int | None = None


class _MlaModel(_Strict):
    kv_lora_rank: int = Field(ge=1)
    qk_rope_head_dim: int = Field(ge=1)
    qk_nope_head_dim: int = Field(ge=1)
    v_head_dim: int = Field(ge=1)
    q_lora_rank: int | None = None


class _WindowModel(_Strict):
    window: int = Field(ge=1)
    sliding_layers: int = Field(ge=1)


class _VariantModel(_Strict):
    """Another checkpoint of the same architecture (an FP8 build, a base model with a different context)."""

    id: str = Field(min_length=1)
    aliases: list[str] = []
    params: int | None = Field(default=None, ge=1)
    context: int | None = Field(default=None, ge=1)
    vocab: int | None = Field(default=None, ge=1)
    dtype: Literal["bf16", "fp16", "fp32", "fp8", "int8", "int4", "mxfp4"] | None = None
    unquantized_params: int | None = Field(default=None, ge=0)
    source: str | None = None
    notes: str = ""


class _ModelModel(_Strict):
    id: str = Field(min_length=1)
    aliases: list[str] = []
    variants: list[_VariantModel] = []
    params: int = Field(ge=1)
    layers: int = Field(ge=1)
    hidden: int = Field(ge=1)
    heads: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    intermediate: int = Field(ge=1)
    vocab: int = Field(ge=1)
    context: int = Field(ge=1)
    tie_embeddings: bool
    dtype: Literal["bf16", "fp16", "fp32", "fp8", "int8", "int4", "mxfp4"]
    moe: _MoeModel | None = None
    mla: _MlaModel | None = None
    sliding_window: _WindowModel | None = None
    vision_params: int = Field(default=0, ge=0)
    unquantized_params: int = Field(default=0, ge=0)
    quantized_modules_exclude_embeddings: bool = True
    shape_reference: bool = False
    source: str = Field(pattern=r"^https?://")
    notes: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> _ModelModel:
        if self.heads % self.kv_heads:
            raise ValueError(f"heads {self.heads} not a multiple of kv_heads {self.kv_heads}")
        if self.sliding_window and self.sliding_window.sliding_layers > self.layers:
            raise ValueError("sliding_window.sliding_layers exceeds layers")
        if self.moe and self.moe.experts_per_token > self.moe.experts:
            raise ValueError("moe.experts_per_token exceeds moe.experts")
        if self.moe and self.moe.dense_layers >= self.layers:
            raise ValueError("moe.dense_layers must be fewer than layers")
        return self

    def to_arch(self) -> ModelArch:
        return ModelArch(
            id=self.id, params=self.params, layers=self.layers, hidden=self.hidden, heads=self.heads,
            kv_heads=self.kv_heads, head_dim=self.head_dim, intermediate=self.intermediate, vocab=self.vocab,
            context=self.context, tie_embeddings=self.tie_embeddings, dtype=self.dtype,
            moe=Moe(**self.moe.model_dump()) if self.moe else None,
            mla=Mla(**self.mla.model_dump()) if self.mla else None,
            sliding_window=SlidingWindow(**self.sliding_window.model_dump()) if self.sliding_window else None,
            aliases=tuple(self.aliases), source=self.source, vision_params=self.vision_params,
            unquantized_params=self.unquantized_params,
        )

    def variant_archs(self, base: ModelArch) -> Iterator[ModelArch]:
        for v in self.variants:
            changes: dict[str, Any] = {"id": v.id, "aliases": tuple(v.aliases)}
            for key in ("params", "context", "vocab", "dtype", "unquantized_params", "source"):
                value = getattr(v, key)
                if value is not None:
                    changes[key] = value
            yield replace(base, **changes)


def _format_errors(origin: str, entry_id: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(entry)"
        parts.append(f"field {loc!r}: {e['msg']}")
    return f"{origin}: model entry {entry_id!r}: " + "; ".join(parts)


def _parse_entries(entries: Iterable[Any], origin: str) -> list[tuple[ModelArch, bool]]:
    """(arch, is shape reference) for every entry and variant."""
    out: list[tuple[ModelArch, bool]] = []
    for i, raw in enumerate(entries):
        if not isinstance(raw, Mapping):
            raise ModelError(f"{origin}: model entry #{i}: expected a mapping, got {type(raw).__name__}")
        entry_id = str(raw.get("id", f"#{i}"))
        try:
            model = _ModelModel.model_validate(dict(raw))
        except ValidationError as err:
            raise ModelError(_format_errors(origin, entry_id, err)) from None
        base = model.to_arch()
        out.append((base, model.shape_reference))
        out.extend((v, False) for v in model.variant_archs(base))
    return out


# ---------------------------------------------------------------------------------------------------------
# Name normalization and the catalog

_HF_URL = re.compile(r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*://", re.IGNORECASE)
_HF_CACHE = re.compile(r"models--([^/]+?)--([^/]+)", re.IGNORECASE)


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def _clean(name: str) -> str:
    """A model reference without URL scheme, trailing slash, HF cache layout or ':revision'."""
    name = name.strip()
    if m := _HF_CACHE.search(name):
        return f"{m.group(1)}/{m.group(2)}"
    name = _HF_URL.sub("", name)
    name = _SCHEME.sub("", name)
    name = name.rstrip("/")
    name = re.sub(r"/(?:tree|blob|resolve)/[^/]+.*$", "", name)  # huggingface.co/org/model/tree/main
    return name


def _candidates(name: str) -> Iterator[str]:
    """The name, its last two path components (org/model), and its last component."""
    parts = [p for p in name.split("/") if p]
    yield name
    if len(parts) >= 2:
        yield "/".join(parts[-2:])
    if parts:
        yield parts[-1]


RESOLVE_MEMO_SIZE = 4096


class ModelCatalog:
    """Architectures by id and alias (also without org prefix: 'Llama-3.1-8B-Instruct')."""

    def __init__(self, models: Iterable[ModelArch], shape_references: Iterable[str] = (),
                 origin: str = "model catalog") -> None:
        self._origin = origin
        self._models: dict[str, ModelArch] = {}
        for arch in models:
            self._models[arch.id] = arch  # later entries replace earlier ones (user additions win)
        self._references = tuple(r for r in dict.fromkeys(shape_references) if r in self._models)
        self._index: dict[str, str] = {}
        self._short: dict[str, str | None] = {}  # None: ambiguous without the org prefix
        for arch in self._models.values():
            for spelling in (arch.id, *arch.aliases):
                key = _key(spelling)
                owner = self._index.setdefault(key, arch.id)
                if owner != arch.id:
                    raise ModelError(f"{origin}: {spelling!r} names both {owner!r} and {arch.id!r}")
                short = key.rsplit("/", 1)[-1]
                if self._short.get(short, arch.id) != arch.id:
                    self._short[short] = None
                else:
                    self._short[short] = arch.id
        # resolve() is a pure function of the catalog and the name, and a cluster names few models: the
        # webhook asks the same names review after review. One bounded LRU per catalog.
        self._resolve_memo = functools.lru_cache(maxsize=RESOLVE_MEMO_SIZE)(self._resolve)

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[ModelArch]:
        return iter(self._models.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def all(self) -> list[ModelArch]:
        return list(self._models.values())

    @property
    def shape_references(self) -> tuple[ModelArch, ...]:
        return tuple(self._models[r] for r in self._references)

    def get(self, name: str) -> ModelArch | None:
        """Exact id or alias, case-insensitive (spaces/underscores = hyphens); also without the org prefix
        when that is unambiguous."""
        if not name or not name.strip():
            return None
        key = _key(name)
        if key in self._index:
            return self._models[self._index[key]]
        short = self._short.get(key.rsplit("/", 1)[-1])
        return self._models[short] if short else None

    def _lookup(self, name: str) -> ModelArch | None:
        for candidate in _candidates(name):
            arch = self.get(candidate)
            if arch is not None:
                return arch
        return None

    def resolve(self, name: str) -> Resolved | None:
        """Catalog (as given, then without a quantization suffix), else an estimate from the name's size,
        else None. See the module docstring."""
        return self._resolve_memo(name)

    def _resolve(self, name: str) -> Resolved | None:
        if not name or not name.strip():
            return None
        clean = _clean(name)
        arch = self._lookup(clean)
        base, quant, _bits = strip_quant_suffix(clean)
        if arch is not None and base != clean and _rebuilt_by_another(clean, arch):
            # neuralmagic/Meta-Llama-3.1-405B-Instruct-FP8 is not Meta's FP8 build (which keeps attention
            # in bf16): a re-packager's quantized checkpoint is the base model at the suffix's precision.
            rebased = self._lookup(base)
            if rebased is not None:
                return Resolved(rebased, quant or _native_quant(rebased), "catalog")
        if arch is not None:
            return Resolved(arch, _native_quant(arch), "catalog")
        if base != clean:
            arch = self._lookup(base)
            if arch is not None:
                return Resolved(arch, quant or _native_quant(arch), "catalog")
        estimated = self.estimate_from_name(clean)
        if estimated is None:
            return None
        return Resolved(estimated, quant if quant in QUANTS else None, "name")

    def estimate_from_name(self, name: str) -> ModelArch | None:
        """An estimated architecture from the size in a name: the shape of the nearest shape-reference
        model (by parameter count, on a log scale; for 'NxM' MoE names by the expert size M), the parameter
        count from the name. None when the name gives no total size."""
        hints = parse_model_name(name)
        if hints.params_b is None or not self._references:
            return None
        total = round(hints.params_b * 1e9)
        size_for_shape = hints.expert_params_b or hints.params_b
        ref = min(self.shape_references, key=lambda a: abs(math.log(a.params / (size_for_shape * 1e9))))
        moe = None
        if hints.experts and hints.expert_params_b:
            moe = Moe(experts=hints.experts, experts_per_token=2, moe_intermediate=ref.intermediate)
        dtype = "bf16"
        if hints.quant:
            dtype = {"awq": "int4", "gptq": "int4", "nvfp4": "int4"}.get(hints.quant, hints.quant)
        return ModelArch(
            id=name, params=total, layers=ref.layers, hidden=ref.hidden, heads=ref.heads,
            kv_heads=ref.kv_heads, head_dim=ref.head_dim, intermediate=ref.intermediate, vocab=ref.vocab,
            context=GUESS_CONTEXT, tie_embeddings=ref.tie_embeddings, dtype=dtype, moe=moe,
            source=f"estimated from the name ({hints.params_b:g}B parameters) with the shape of {ref.id}; "
            f"context guessed as {GUESS_CONTEXT} tokens",
            estimated=True,
        )

    def with_models(self, extra: Iterable[Mapping[str, Any]], origin: str = "user models") -> ModelCatalog:
        """A new catalog with user-added models (same schema as models.yaml); an existing id is replaced."""
        parsed = _parse_entries(extra, origin)
        refs = [*self._references, *(a.id for a, is_ref in parsed if is_ref)]
        return ModelCatalog([*self._models.values(), *(a for a, _ in parsed)], refs,
                            origin=f"{self._origin} + {origin}")


def _org(name: str) -> str:
    parts = [p for p in name.split("/") if p]
    return parts[-2].lower() if len(parts) >= 2 else ""


def _rebuilt_by_another(name: str, arch: ModelArch) -> bool:
    """A quantized catalog checkpoint reached through a name whose org is not the checkpoint's own."""
    org = _org(name)
    return bool(org) and arch.dtype in _QUANTIZED_DTYPES and org not in {
        _org(spelling) for spelling in (arch.id, *arch.aliases)
    }


def _native_quant(arch: ModelArch) -> str | None:
    return arch.dtype if arch.dtype in _QUANTIZED_DTYPES else None


def _entries(data: Any, origin: str) -> list[Any]:
    return entry_list(data, "models", origin, ModelError, bare_list=True)


def _bundled() -> ModelCatalog:
    data, origin = bundled(_BUNDLED, ModelError)
    parsed = _parse_entries(_entries(data, origin), origin)
    return ModelCatalog((a for a, _ in parsed), (a.id for a, is_ref in parsed if is_ref), origin=origin)


def load_model_catalog(path: str | Path | None = None) -> ModelCatalog:
    """The bundled catalog; with `path`, plus the models of that YAML (`{models: [...]}` or a list)."""
    catalog = default_model_catalog()
    if path is None:
        return catalog
    data, origin = user_file(path, ModelError)
    return catalog.with_models(_entries(data, origin), origin=origin)


@functools.cache
def default_model_catalog() -> ModelCatalog:
    return _bundled()
