"""Each engine's defaults, applied to an `EngineConfig` to give the concrete `ServingSetup` the memory
estimator needs. Defaults differ by engine, version and GPU; the source of each is named beside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from placement.engines.base import EngineConfig
from placement.memory import (
    NON_TORCH_NCCL_V0_GIB,
    NON_TORCH_NCCL_V1_GIB,
    SAMPLER_BYTES_FLASHINFER,
    SAMPLER_BYTES_NATIVE,
    SAMPLER_BYTES_V0,
    ServingSetup,
)

# vLLM V1 raises its batch defaults on GPUs with at least 70 GiB, except the A100 (the device name is
# checked: vllm/engine/arg_utils.py _set_default_args, tests/engine/test_arg_utils.py
# test_defaults_with_usage_context): H100, H200, MI300X get 1024 sequences / 8192 tokens for the server.
LARGE_GPU_GIB = 70.0
SMALL_DEFAULTS_GPUS = ("a100",)
VLLM_V1_SINCE = (0, 8)  # V1 became the default engine in vLLM 0.8.0
VLLM_NCCL_OUTSIDE_SINCE = (0, 11)  # memory snapshot taken after NCCL init (v1/worker/gpu_worker.py)
VLLM_GRAPHS_IN_BUDGET_SINCE = (0, 20)  # VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS default 1 (vllm/envs.py)
# Which top-k/top-p sampler V1 profiles with (vllm/v1/sample/ops/topk_topp_sampler.py TopKTopPSampler):
# up to 0.10 FlashInfer whenever it is installed (the images ship it; 0.10.1.1 logs on A100 show its
# small peak); 0.11.0 logs show the native sort's peak on H100 and H200; 0.11.1-0.20 FlashInfer only on
# VLLM_USE_FLASHINFER_SAMPLER=1 (native by default); from 0.21 FlashInfer by default (envs.py: True).
VLLM_NATIVE_SAMPLER = ((0, 11), (0, 21))
VLLM_MLA_SINCE = (0, 7, 1)  # latent-only MLA KV cache
VLLM_AUTO_CHUNKED_SINCE = (0, 5, 3)  # V0 turns chunked prefill on by itself past 32K context
# SGLang derives --mem-fraction-static from the GPU's memory, chunked-prefill size and CUDA-graph batch
# since sgl-project/sglang#10975 (merged 2025-09-27, first released in 0.5.3); before, from the TP size.
SGLANG_RESERVED_MEM_SINCE = (0, 5, 3)
# trtllm-serve runs the PyTorch executor by default from TensorRT-LLM 1.0 (the TensorRT-engine path before).
TRTLLM_PYTORCH_SINCE = (1, 0)
SGLANG_MAX_PREFILL_TOKENS = 16384  # --max-prefill-tokens default (server_args.py)
# TGI 3 sizes --max-total-tokens from the KV pool when it is not given (server warmup: min(blocks x 16,
# model max length)); 1.x/2.x default it to min(max_position_embeddings, 4096) (launcher main.rs).
TGI_AUTO_MAX_TOTAL_SINCE = (3,)

if TYPE_CHECKING:
    from placement.catalog import GpuSpec


@dataclass(frozen=True)
class Precision:
    weights: str  # key of memory.WEIGHT_BYTES
    kv: str  # key of memory.KV_BYTES
    native_mxfp4_experts: bool = False


_QUANT_TO_WEIGHTS = {
    "awq": "int4",
    "awq_marlin": "int4",
    "awq-marlin": "int4",
    "gptq": "int4",
    "gptq_marlin": "int4",
    "gptq_marlin_24": "int4",
    "marlin": "int4",
    "int4": "int4",
    "bitsandbytes": "int4",
    "bitsandbytes-nf4": "int4",
    "bitsandbytes-fp4": "int4",
    "w4a16": "int4",
    "gguf": "int4",
    "fp8": "fp8",
    "fbgemm_fp8": "fp8",
    "fp8-dynamic": "fp8",
    "w8a8_fp8": "fp8",
    "modelopt": "fp8",
    "int8": "int8",
    "w8a8_int8": "int8",
    "w8a8": "int8",
    "experts_int8": "int8",
    "eetq": "int8",
    "mxfp4": "mxfp4",
    "modelopt_fp4": "int4",
    "nvfp4": "int4",
}
_DTYPE_ALIASES = {"half": "fp16", "float16": "fp16", "bfloat16": "bf16", "float": "fp32", "float32": "fp32"}


def precision(
    cfg: EngineConfig, native_dtype: str, name_quant: str | None, override: str | None
) -> Precision:
    """Weight and KV precision: the gpuplace.io/dtype annotation, else the engine's quantization flag,
    else what the model id says (-AWQ, -FP8), else the checkpoint's own dtype (`auto`)."""
    quant = override or cfg.quantization or name_quant
    if quant in (None, "none", "auto", "bf16", "fp16", "fp32"):
        quant = None
    mxfp4_native = native_dtype == "mxfp4" and quant in (None, "mxfp4")
    if quant is not None:
        weights = _QUANT_TO_WEIGHTS.get(quant, quant if quant in {"int4", "int8", "fp8"} else "bf16")
    elif native_dtype in {"fp8", "int4", "int8"}:
        weights = native_dtype
    elif cfg.dtype and cfg.dtype != "auto":
        weights = _DTYPE_ALIASES.get(cfg.dtype, cfg.dtype)
    else:
        weights = "fp16" if native_dtype == "fp16" else "bf16"
    if mxfp4_native:
        weights = "bf16"  # only the experts are mxfp4; memory.py splits them out
    kv = (
        "fp8"
        if (cfg.kv_cache_dtype or "").startswith("fp8")
        else "int8"
        if cfg.kv_cache_dtype == "int8"
        else ("fp16" if weights == "fp16" or cfg.dtype in {"half", "float16", "fp16"} else "bf16")
    )
    return Precision(weights=weights, kv=kv, native_mxfp4_experts=mxfp4_native)


def is_vllm_v0(cfg: EngineConfig) -> bool:
    return cfg.engine == "vllm" and cfg.version is not None and cfg.version[:2] < VLLM_V1_SINCE


def default_max_model_len(cfg: EngineConfig, context: int) -> int:
    if cfg.engine == "tgi" and not tgi_auto_max_total(cfg):
        return min(context, 4096)  # TGI 1.x/2.x default --max-total-tokens
    return context  # vLLM, SGLang, TRT-LLM and TGI 3 default to the model's context length


def tgi_auto_max_total(cfg: EngineConfig) -> bool:
    return cfg.version is None or cfg.version >= TGI_AUTO_MAX_TOTAL_SINCE


def tgi_prefill_tokens(cfg: EngineConfig, max_model_len: int) -> int:
    """--max-batch-prefill-tokens default: max_input_tokens + 50 in 1.x/2.x (max_input_tokens defaults to
    min(max_position_embeddings, 4096) - 1), 4096 capped by the model's max positions in 3.x (launcher
    main.rs; 3.x may raise it from the GPU's flops, compute_optimal, which gpuplace does not model)."""
    if tgi_auto_max_total(cfg):
        return min(4096, max_model_len)
    return max(min(max_model_len, 4096) - 1, 1) + 50


def setup_on(
    cfg: EngineConfig,
    prec: Precision,
    gpu: GpuSpec,
    max_model_len: int,
    max_num_seqs: int | None = None,
    tp: int | None = None,
    usable_gib: float | None = None,
) -> ServingSetup:
    """`setup_for` on a catalog GPU: its memory (or `usable_gib` where the engine reported another
    total), and the device name and compute capability the engines' defaults read."""
    return setup_for(
        cfg,
        prec,
        usable_gib or gpu.usable_gib,
        max_model_len,
        max_num_seqs,
        tp,
        gpu.name,
        gpu.compute_capability,
    )


def setup_for(
    cfg: EngineConfig,
    prec: Precision,
    usable_gib: float,
    max_model_len: int,
    max_num_seqs: int | None = None,
    tp: int | None = None,
    gpu_name: str = "",
    compute_capability: str = "",
) -> ServingSetup:
    """Fill in the engine's defaults for everything the config leaves unset; `tp` in place of the config's
    (what-if estimates at another tensor-parallel size). `gpu_name` is the device name CUDA reports, which
    vLLM reads for its batch defaults."""
    tp = tp or cfg.tp
    seqs = max_num_seqs or cfg.max_num_seqs
    tokens = cfg.max_num_batched_tokens
    fraction = cfg.mem_fraction
    caps_context = False
    if cfg.engine == "sglang":
        seqs = seqs or 256
        # --chunked-prefill-size -1 turns chunking off: a prefill then holds up to --max-prefill-tokens
        # (16384 by default, server_args.py), which the mem_fraction_static heuristic reserves for.
        chunk = (
            tokens
            if tokens and tokens > 0
            else SGLANG_MAX_PREFILL_TOKENS
            if tokens == -1
            else sglang_chunked_prefill(cfg, usable_gib, tp)
        )
        fraction = fraction or sglang_mem_fraction(cfg, usable_gib, tp, chunk)
        tokens = chunk
        caps_context = True  # max_req_len = min(context_len, pool) - 1 (managers/tp_worker.py)
    elif cfg.engine == "tgi":
        fraction = fraction or 1.0  # CUDA_MEMORY_FRACTION default (utils/dist.py)
        seqs = seqs or 128  # --max-concurrent-requests default
        tokens = tokens or tgi_prefill_tokens(cfg, max_model_len)
        caps_context = cfg.max_model_len is None and tgi_auto_max_total(cfg)
    elif cfg.engine == "trtllm":
        fraction = fraction or 0.9  # kv_cache_free_gpu_memory_fraction default
        seqs = seqs or 2048  # trtllm-serve --max_batch_size default
        tokens = tokens or 8192  # trtllm-serve --max_num_tokens default
        # The PyTorch executor's KV cache manager lowers max_seq_len to what the blocks hold ("Attention
        # window size ... exceeds upper bound for available blocks. Reducing", _torch/pyexecutor/
        # resource_manager.py _validate_and_adjust_attention_windows) instead of refusing to start.
        caps_context = cfg.version is None or cfg.version >= TRTLLM_PYTORCH_SINCE
    else:
        fraction = fraction or 0.9  # --gpu-memory-utilization default
        seqs, tokens = _vllm_batch_defaults(cfg, usable_gib, gpu_name, max_model_len, seqs, tokens)
    # Positional, in ServingSetup's field order: this runs for every estimate of every review.
    return ServingSetup(
        cfg.engine if cfg.engine in {"sglang", "tgi", "trtllm"} else "vllm",  # engine
        usable_gib,
        fraction,  # mem_fraction
        prec.weights,  # weight_dtype
        prec.kv,  # kv_dtype
        max_model_len,
        seqs,  # max_num_seqs
        tokens,  # max_num_batched_tokens
        tp,
        cfg.pp,
        cfg.enforce_eager,
        prec.native_mxfp4_experts,
        *_vllm_accounting(cfg),
        _vllm_sampler_bytes(cfg),
        _vllm_windowed_kv(cfg),
        _vllm_mxfp4_layout(cfg, compute_capability) if prec.native_mxfp4_experts else "nominal",
        _vllm_mla_head_dim(cfg),
        is_vllm_v0(cfg),
        cfg.version,
        caps_context,
    )


def _vllm_batch_defaults(
    cfg: EngineConfig,
    usable_gib: float,
    gpu_name: str,
    max_model_len: int,
    seqs: int | None,
    tokens: int | None,
) -> tuple[int, int]:
    if is_vllm_v0(cfg):
        # V0 turned chunked prefill on by itself only past 32K context, from 0.5.3 (vllm/engine/arg_utils.py
        # create_engine_config); without it a step holds a whole prompt, so the profile runs
        # max(max_model_len, 2048) tokens.
        release = cfg.version or VLLM_V1_SINCE
        auto = max_model_len > 32768 and release[:3] >= VLLM_AUTO_CHUNKED_SINCE
        chunked = cfg.chunked_prefill if cfg.chunked_prefill is not None else auto
        default_tokens = 2048 if chunked else max(max_model_len, 2048)
        return seqs or 256, tokens or default_tokens
    name = gpu_name.lower()
    large = usable_gib >= LARGE_GPU_GIB and not any(small in name for small in SMALL_DEFAULTS_GPUS)
    return seqs or (1024 if large else 256), tokens or (8192 if large else 2048)


def _vllm_accounting(cfg: EngineConfig) -> tuple[float, float, bool]:
    """(NCCL GiB inside the budget, NCCL GiB outside it, CUDA graphs inside the budget) for vLLM's
    release; unknown versions get the latest semantics."""
    if cfg.engine != "vllm":
        return 0.0, 0.0, False
    v = cfg.version
    if v is not None and v[:2] < VLLM_V1_SINCE:
        return NON_TORCH_NCCL_V0_GIB, 0.0, False
    if v is not None and v[:2] < VLLM_NCCL_OUTSIDE_SINCE:
        return NON_TORCH_NCCL_V1_GIB, 0.0, False
    return 0.0, NON_TORCH_NCCL_V1_GIB, v is None or v[:2] >= VLLM_GRAPHS_IN_BUDGET_SINCE


# vLLM turns its hybrid KV allocator off when asked, or when a KV connector or KV events are configured
# (vllm/config/__init__.py VllmConfig.__post_init__); every layer then keeps whole sequences.
_HYBRID_KV_OFF_FLAGS = ("disable-hybrid-kv-cache-manager", "kv-transfer-config", "kv-events-config")


def _vllm_windowed_kv(cfg: EngineConfig) -> bool:
    return not is_vllm_v0(cfg) and not any(flag in cfg.flags for flag in _HYBRID_KV_OFF_FLAGS)


def _vllm_mla_head_dim(cfg: EngineConfig) -> int:
    """vLLM cached DeepSeek's MLA as a compressed latent only from 0.7.1 (config.py ModelConfig.use_mla);
    before, every head's K and V, 192 wide (qk_nope + qk_rope) in 0.7.0, padded to 256 up to 0.6.x."""
    v = cfg.version
    if cfg.engine != "vllm" or v is None or v[:3] >= VLLM_MLA_SINCE:
        return 0
    return 192 if v[:2] >= (0, 7) else 256


def _vllm_mxfp4_layout(cfg: EngineConfig, compute_capability: str) -> str:
    """vLLM's mxfp4 MoE backend by GPU generation (vllm/model_executor/layers/quantization/mxfp4.py
    get_mxfp4_backend): FlashInfer on Blackwell, triton_kernels on Hopper, Marlin below."""
    if cfg.engine != "vllm" or not compute_capability:
        return "nominal"
    major = int(compute_capability.split(".")[0])
    return "flashinfer" if major >= 10 else "triton" if major == 9 else "marlin"


def _vllm_sampler_bytes(cfg: EngineConfig) -> float:
    v = cfg.version
    if v is None:
        return SAMPLER_BYTES_FLASHINFER
    if v[:2] < VLLM_V1_SINCE:
        return SAMPLER_BYTES_V0
    since, until = VLLM_NATIVE_SAMPLER
    return SAMPLER_BYTES_NATIVE if since <= v[:2] < until else SAMPLER_BYTES_FLASHINFER


def _sglang_latest(cfg: EngineConfig) -> bool:
    return cfg.version is None or cfg.version >= SGLANG_RESERVED_MEM_SINCE


def sglang_chunked_prefill(cfg: EngineConfig, usable_gib: float, tp: int) -> int:
    """--chunked-prefill-size default: by GPU memory (server_args._handle_gpu_memory_settings since 0.5.3:
    2048 under 35 GB, 4096 under 60 GB, 8192 under 160 GB, else 16384); before, 2048 on GPUs under ~25 GB
    (sgl-project/sglang#2044) and 8192 above."""
    if not _sglang_latest(cfg):
        return 8192 if usable_gib * 1024 >= 25_000 else 2048
    mib = usable_gib * 1024
    for below, size in ((35 * 1024, 2048), (60 * 1024, 4096), (160 * 1024, 8192)):
        if mib < below:
            return size
    return 16384


def _sglang_cuda_graph_max_bs(usable_gib: float, tp: int) -> int:
    """--cuda-graph-max-bs default by GPU memory and TP size (server_args._handle_gpu_memory_settings)."""
    mib = usable_gib * 1024
    if mib < 20 * 1024:
        return 8
    if mib < 35 * 1024:
        return 24 if tp < 4 else 80
    if mib < 60 * 1024:
        return 32 if tp < 4 else 160
    if mib < 160 * 1024:
        return 256 if tp < 4 else 512
    return 512


def sglang_mem_fraction(cfg: EngineConfig, usable_gib: float, tp: int, chunk: int) -> float:
    """--mem-fraction-static default. Since 0.5.3 (SGLANG_RESERVED_MEM_SINCE): (GPU MiB - reserved) / GPU
    MiB, reserved = 512 + max(chunked prefill, 2048) x 1.5 + cuda_graph_max_bs x 2 + tp x pp / 8 x 1024
    MiB, at least 10 GiB on GPUs over 60 GB (server_args._handle_gpu_memory_settings). Before: by TP size
    (0.4.x server_args.__post_init__); 0.4.7-0.5.2 also raised it on GPUs over 96 GB (sglang#6718, #7054),
    which is not modelled."""
    if not _sglang_latest(cfg):
        for min_tp, fraction in ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87)):
            if tp >= min_tp:
                return fraction
        return 0.88
    mib = usable_gib * 1024
    reserved = 512 + max(chunk, 2048) * 1.5 + _sglang_cuda_graph_max_bs(usable_gib, tp) * 2
    reserved += tp * cfg.pp / 8 * 1024
    if mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return max(round((mib - reserved) / mib, 3), 0.0)  # under the reserve: no pool, SGLang refuses
