"""The one memory estimator: per-GPU-rank memory of an LLM served by vLLM, SGLang, TGI or TensorRT-LLM.

vLLM's accounting is the reference (design.md):

    budget     = usable GPU memory x gpu_memory_utilization
    kv memory  = budget - weights - activation peak - non-torch memory
    kv tokens  = kv memory / KV bytes per token per rank
    fits       = kv tokens >= max_model_len, and the memory outside the budget holds CUDA context + graphs

Each engine differs in where the budget line is drawn (see `_kv_memory`). Constants that are not facts of
the model or GPU are named below with where they come from; `bench/estimator_accuracy.py` checks the whole
model against published vLLM start-up logs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from placement.models import ModelArch

GIB = 2**30

# Bytes per parameter of quantized linear layers, scales included: AWQ/GPTQ int4 with group size 128
# carry an fp16 scale and a 4-bit zero point per group; mxfp4 carries one 8-bit scale per 32 values.
WEIGHT_BYTES = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5 + (2 + 0.5) / 128,
    "mxfp4": 0.5 + 1 / 32,
}
KV_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}

# Memory the engine uses outside PyTorch's allocator inside the budget (cuBLAS workspaces, NCCL and
# custom all-reduce buffers). vLLM logs it as `non_torch_memory`: ~0.2 GiB on one GPU (vllm#14447 logs on
# RTX 3090). What NCCL adds per rank depends on when vLLM takes its baseline snapshot:
# - V0 (< 0.8): about 1.8 GiB inside the budget (vllm#10511: Llama-3-8B tp=1 vs tp=2 on H100);
# - V1 before 0.11: the worker snapshots memory before init_worker_distributed_environment, so NCCL and
#   custom all-reduce buffers count inside the budget; 0.10.1.1 logs on 2 x A100 show ~0.25 GiB more per
#   rank at tp=2 than at tp=1, the smaller activation at tp=2 allowed for;
# - 0.11 on: the snapshot follows the distributed init (vllm/v1/worker/gpu_worker.py init_device), so that
#   memory is outside the budget and has to fit in the headroom beside the CUDA context.
NON_TORCH_SINGLE_GIB = 0.2
NON_TORCH_NCCL_V0_GIB = 1.8
NON_TORCH_NCCL_V1_GIB = 0.25
# The profile run ends with a dummy sampler step over R = min(max_num_seqs, max_num_batched_tokens) rows of
# full-vocabulary logits (vllm/v1/worker/gpu_model_runner.py _dummy_sampler_run: every TP rank holds the
# all-gathered logits; top-k = vocab-1 and top-p 0.9 are both on). Its peak is bytes per (row x vocab)
# element, by sampler path (vllm/v1/sample/ops/topk_topp_sampler.py):
# - FlashInfer: bf16 logits 2 + their fp32 copy 4 + top-k-masked logits 4 + probabilities 4 = 14;
# - PyTorch native (apply_top_k_top_p sorts the row): bf16 2 + fp32 4 + sort input indices (int64) 8 +
#   sorted values 4 + sorted indices 8 + the segmented radix sort's double buffers 12 = 38. vLLM 0.11
#   logs on H100 at 1024 rows show 38.4-38.9 B per element for four vocabularies (llm-d's
#   empirical-vllm-memory-results.md: Llama-3.1-8B 4.76 GiB, Qwen3 5.56-5.64, gpt-oss 7.38);
# - V0 (< 0.8): max_num_seqs rows of fp32 logits with softmax/top-k/p copies, about 6.
SAMPLER_BYTES_FLASHINFER = 14.0
SAMPLER_BYTES_NATIVE = 38.0
SAMPLER_BYTES_V0 = 6.0
SAMPLER_LOGIT_COPIES = 1.5  # TensorRT-LLM: fp32 logits for max_batch_size rows, half again for copies
BLOCK_TOKENS = 16  # vLLM's default KV block size
ACTIVATION_BYTES = 2  # bf16/fp16 activations
MXFP4_BLOCK = 32  # values sharing one 8-bit scale
# Outside the budget: the CUDA context (~0.45 GiB on recent drivers). CUDA graphs (unless eager) are
# captured after the KV cache is allocated, outside the budget, up to vLLM 0.19; from 0.20 vLLM captures
# the first graphs during profiling and subtracts the estimate from the KV budget
# (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS defaults to 1 in vllm/envs.py, vllm#30515).
CUDA_CONTEXT_GIB = 0.45
CUDA_GRAPHS_GIB = 0.25
# An engine that caps the context to its pool still refuses to start on a pool this small: SGLang asserts
# max_req_input_len = pool - 1 - 5 > 0 (managers/tp_worker.py, "Memory pool size is too small").
MIN_CAPPED_POOL_TOKENS = 7

# SGLang measures the free memory once torch.distributed is up, before the weights load
# (model_runner.py: `min_per_gpu_memory = self.init_torch_distributed()`), and sizes the token pool as
# free_after_weights - free_before_weights x (1 - mem_fraction_static) (profile_max_num_token,
# 0.4.x through main). So the budget is the memory free before loading x the fraction, and whatever is
# in use by then (the CUDA context, NCCL communicators) is outside it. `Init torch distributed ends.
# mem usage=0.13 GB` is what the NCCL set-up took on 4 x L4 (PCIe, custom all-reduce off) in the
# published 0.4.3 log (github.com/didier-durand/llms-in-clouds docs/sglang.md).
SGLANG_DIST_INIT_GIB = 0.13

# TGI sizes its cache after a warm-up prefill of max_batch_prefill_tokens with prefill logprobs on
# (router warmup: `prefill_logprobs: true`), so the peak holds the logits of every prefill token and their
# log_softmax (flash_causal_lm.py generate_token), both in the model dtype, and the LM head gathers the
# full vocabulary on every shard (layers/tensor_parallel.py). The blocks then take
# free x wiggle, where free = mem_get_info() free - (1 - CUDA_MEMORY_FRACTION) x total (2.x), or
# free - (1 - CUDA_MEMORY_FRACTION x wiggle) x total since 3.0; plus the warm-up batch's own blocks.
TGI_BLOCK_TOKENS = 16  # BLOCK_SIZE of the paged cache (models/globals.py)
TGI_PREFILL_LOGIT_COPIES = 2  # logits + their log_softmax


class ServingSetup(NamedTuple):
    """Everything the estimate depends on, already resolved to concrete values (engine defaults applied).

    A NamedTuple, not a dataclass: every review builds one per GPU tier it weighs and looks it up in the
    estimate memo, and a tuple is built, hashed and compared in C."""

    engine: str
    usable_gib: float  # total memory CUDA reports for one GPU
    mem_fraction: float  # the engine's memory fraction (vLLM gpu_memory_utilization, ...)
    weight_dtype: str  # key of WEIGHT_BYTES: the dtype of quantized linear layers
    kv_dtype: str  # key of KV_BYTES
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    tp: int = 1
    pp: int = 1
    enforce_eager: bool = False
    native_mxfp4_experts: bool = False  # gpt-oss: only the experts are mxfp4, the rest bf16
    # The engine release's accounting (engines/defaults.py decides them from the version).
    nccl_in_budget_gib: float = 0.0  # NCCL memory per rank counted inside the budget (tp*pp > 1)
    nccl_outside_gib: float = NON_TORCH_NCCL_V1_GIB  # ... or outside it, in the headroom
    graphs_in_budget: bool = False  # CUDA graph memory subtracted from the KV budget
    sampler_bytes: float = SAMPLER_BYTES_FLASHINFER  # vLLM: the sampler path's bytes per logit element
    windowed_kv: bool = True  # vLLM V1 hybrid allocator: sliding layers hold window - 1 + a chunk
    mxfp4_layout: str = "nominal"  # vLLM's MoE kernel layout for mxfp4 experts (see _mxfp4_expert_bytes)
    # MLA models cached as full heads of this size (vLLM < 0.7.1: 256 up to 0.6.x, 192 in 0.7.0); 0 = latent
    mla_head_dim: int = 0
    # V0 took the profile's peak from free device memory, i.e. the allocator's reserved pool, where the
    # forward's freed blocks stay cached beside the sampler's: the two add up (vllm/worker/worker.py).
    reserved_peak: bool = False
    # The engine release (from the image tag or --engine-version); None: the latest semantics.
    version: tuple[int, ...] | None = None
    # The engine shortens the context to what its KV pool holds instead of refusing to start: SGLang
    # always, TGI 3 when --max-total-tokens is left unset, TensorRT-LLM 1.x (see `context_capped`).
    caps_context: bool = False


@dataclass(frozen=True)
class MemoryEstimate:
    setup: ServingSetup
    usable_bytes: float
    budget_bytes: float
    weights_bytes: float
    activation_bytes: float
    non_torch_bytes: float
    graphs_bytes: float  # CUDA graphs (0 when eager); inside the budget or outside, per graphs_in_budget
    kv_bytes: float  # memory left for the KV cache (may be negative)
    kv_bytes_per_token: float
    kv_tokens: int
    outside_budget_bytes: float  # what must fit in usable - budget (vLLM) for context and graphs
    headroom_bytes: float  # usable - budget
    notes: tuple[str, ...] = field(default_factory=tuple)
    # The verdicts, worked out once with the (memoised) estimate: every check of every review reads them.
    weights_fit: bool = field(init=False)
    sequence_fits: bool = field(init=False)
    # The engine starts with a shorter context than max_model_len (its KV pool's), and refuses longer
    # requests at run time: a warning, never a denial.
    context_capped: bool = field(init=False)
    headroom_fits: bool = field(init=False)
    fits: bool = field(init=False)

    def __post_init__(self) -> None:
        weights = self.weights_bytes < self.budget_bytes
        sequence = self.kv_tokens >= self.setup.max_model_len
        capped = self.setup.caps_context and not sequence and self.kv_tokens >= MIN_CAPPED_POOL_TOKENS
        headroom = self.setup.engine != "vllm" or self.headroom_bytes >= self.outside_budget_bytes
        object.__setattr__(self, "weights_fit", weights)
        object.__setattr__(self, "sequence_fits", sequence)
        object.__setattr__(self, "context_capped", capped)
        object.__setattr__(self, "headroom_fits", headroom)
        object.__setattr__(self, "fits", weights and (sequence or capped) and headroom)

    @property
    def max_request_tokens(self) -> int:
        """The longest request the engine accepts: max_model_len, or the pool's length when capped
        (SGLang: max_req_len = min(context_len, pool) - 1, managers/tp_worker.py)."""
        if not self.context_capped:
            return self.setup.max_model_len
        return max(self.kv_tokens - 1, 0)

    @property
    def max_len_that_fits(self) -> int:
        return max(self.kv_tokens, 0)

    def as_figures(self) -> dict[str, float | int]:
        """The numbers findings print and JSON output carries (GiB rounded to one decimal)."""
        return {
            "usable_gib": round(self.usable_bytes / GIB, 1),
            "budget_gib": round(self.budget_bytes / GIB, 1),
            "weights_gib": round(self.weights_bytes / GIB, 1),
            "activation_gib": round(self.activation_bytes / GIB, 1),
            "non_torch_gib": round(self.non_torch_bytes / GIB, 1),
            "kv_gib": round(self.kv_bytes / GIB, 1),
            "kv_tokens": self.kv_tokens,
            "kv_bytes_per_token": int(self.kv_bytes_per_token),
            "max_model_len": self.setup.max_model_len,
            "tp": self.setup.tp,
            "pp": self.setup.pp,
        }


@lru_cache(maxsize=8192)
def estimate(arch: ModelArch, setup: ServingSetup) -> MemoryEstimate:
    """Memoised: both arguments are frozen, and a cluster serves few distinct (model, GPU, settings)
    combinations, while every admission review asks about the same ones across the catalog's tiers."""
    usable = setup.usable_gib * GIB
    weights = weight_bytes_per_rank(arch, setup)
    activation = activation_bytes_per_rank(arch, setup)
    non_torch = _non_torch_bytes(setup)
    graphs = 0.0 if setup.enforce_eager else CUDA_GRAPHS_GIB * GIB
    inside_graphs = graphs if setup.graphs_in_budget and setup.engine == "vllm" else 0.0
    per_token = kv_bytes_per_token(arch, setup)
    if setup.engine == "tgi":
        budget, kv = _tgi_kv_memory(setup, usable, weights, activation, non_torch, per_token)
    else:
        budget, kv = _kv_memory(setup, usable, weights, activation, non_torch + inside_graphs)
    kv_tokens = int(kv // per_token) if kv > 0 else 0
    nccl_outside = setup.nccl_outside_gib * GIB if setup.tp * setup.pp > 1 else 0.0
    outside = CUDA_CONTEXT_GIB * GIB + (graphs - inside_graphs) + nccl_outside
    return MemoryEstimate(
        setup=setup,
        usable_bytes=usable,
        budget_bytes=budget,
        weights_bytes=weights,
        activation_bytes=activation,
        non_torch_bytes=non_torch,
        graphs_bytes=graphs,
        kv_bytes=kv,
        kv_bytes_per_token=per_token,
        kv_tokens=kv_tokens,
        outside_budget_bytes=outside,
        headroom_bytes=usable - budget,
    )


def _kv_memory(
    setup: ServingSetup, usable: float, weights: float, activation: float, non_torch: float
) -> tuple[float, float]:
    """(budget, memory left for KV) under each engine's own rule."""
    if setup.engine == "sglang":
        return _sglang_kv_memory(setup, usable, weights)
    if setup.engine == "trtllm":
        return _trtllm_kv_memory(setup, usable, weights, activation, non_torch)
    # vLLM: a fraction of the whole GPU; everything the engine uses lives inside it.
    budget = usable * setup.mem_fraction
    return budget, budget - weights - activation - non_torch


def _sglang_kv_memory(setup: ServingSetup, usable: float, weights: float) -> tuple[float, float]:
    """mem_fraction_static of the memory free before the weights load holds weights + token pool;
    activations, CUDA graphs and the request-to-token table live in the rest (SGLANG_DIST_INIT_GIB)."""
    budget = sglang_free_before_load(setup) * setup.mem_fraction
    return budget, budget - weights


def sglang_free_before_load(setup: ServingSetup) -> float:
    """Bytes free when SGLang measures, before the weights load (see SGLANG_DIST_INIT_GIB)."""
    in_use = CUDA_CONTEXT_GIB + (SGLANG_DIST_INIT_GIB if setup.tp * setup.pp > 1 else 0.0)
    return (setup.usable_gib - in_use) * GIB


def sglang_outside_needs(
    arch: ModelArch, setup: ServingSetup, pool_tokens: int, max_running_requests: int | None
) -> float:
    """What must fit outside mem_fraction_static, counting only the terms SGLang's source fixes: the
    chunked-prefill forward, CUDA graphs unless disabled, and the request-to-token table of
    (max_running_requests + 1) x (context_len + 4) int32 (mem_cache/memory_pool.py ReqToTokenPool), with
    max_running_requests defaulting to min(max(pool / context_len x 512, 2048), 4096)
    (model_runner init_memory_pool)."""
    context = setup.max_model_len
    if max_running_requests is None:
        max_running_requests = min(max(int(pool_tokens / max(context, 1) * 512), 2048), 4096)
    table = (max_running_requests + 1) * (context + 4) * 4
    graphs = 0.0 if setup.enforce_eager else CUDA_GRAPHS_GIB * GIB
    return forward_bytes(arch, setup) + graphs + table


def _trtllm_kv_memory(
    setup: ServingSetup, usable: float, weights: float, activation: float, non_torch: float
) -> tuple[float, float]:
    """kv_cache_free_gpu_memory_fraction is a share of what the profiling run left free: TRT-LLM's
    PyTorch executor runs dummy context requests of max_num_tokens, then takes
    (total - torch peak - memory outside torch + the profiling KV) x fraction
    (tensorrt_llm/_torch/pyexecutor/_util.py KvCacheCreator._cal_max_memory, 1.x)."""
    free = usable - weights - activation - non_torch - _nccl_gib(setup) * GIB - CUDA_CONTEXT_GIB * GIB
    return usable, free * setup.mem_fraction


def _nccl_gib(setup: ServingSetup) -> float:
    """NCCL communicators under TP/PP, in use before TGI's warm-up and inside TRT-LLM's 'memory outside
    torch': the figure vLLM V1's logs show per rank (NON_TORCH_NCCL_V1_GIB)."""
    return NON_TORCH_NCCL_V1_GIB if setup.tp * setup.pp > 1 else 0.0


def _tgi_kv_memory(
    setup: ServingSetup,
    usable: float,
    weights: float,
    activation: float,
    non_torch: float,
    per_token: float,
) -> tuple[float, float]:
    """TGI's warm-up accounting (see TGI_BLOCK_TOKENS): (budget, memory of the blocks it allocates)."""
    v3 = tgi_v3(setup.version)
    wiggle = tgi_wiggle_room(setup.version)
    warmup_kv = _tgi_warmup_tokens(setup) * per_token
    free = usable - (CUDA_CONTEXT_GIB + _nccl_gib(setup)) * GIB - non_torch - weights - warmup_kv - activation
    if free < 0:
        # The warm-up batch itself does not fit: "Not enough memory to handle N prefill tokens".
        return usable * setup.mem_fraction, free
    if v3:
        budget = usable * setup.mem_fraction * wiggle
        blocks_bytes = max(free - (1 - setup.mem_fraction * wiggle) * usable, 0.0)
    else:
        budget = usable * setup.mem_fraction
        blocks_bytes = max(free - (1 - setup.mem_fraction) * usable, 0.0) * wiggle
    block = TGI_BLOCK_TOKENS * per_token
    blocks = math.floor(blocks_bytes / block) if block > 0 else 0
    return budget, blocks * block + warmup_kv


def tgi_v3(version: tuple[int, ...] | None) -> bool:
    """TGI 3.x accounting (the latest when no release is known): the fraction and wiggle room cap the whole
    GPU, and max_input_tokens follows --max-total-tokens."""
    return version is None or version[0] >= 3


def tgi_wiggle_room(version: tuple[int, ...] | None) -> float:
    """TGI_WIGGLE_ROOM's default by release: a fixed 0.95 through 2.2, then models/globals.py 0.95 (2.3),
    0.90 (2.4), 0.95 (3.0), 0.93 (3.1, 3.2), 0.90 (3.3 on)."""
    if version is None:
        return 0.90
    for since, wiggle in (((3, 3), 0.90), ((3, 1), 0.93), ((3, 0), 0.95), ((2, 4), 0.90)):
        if version[:2] >= since:
            return wiggle
    return 0.95


def _tgi_warmup_tokens(setup: ServingSetup) -> int:
    """KV tokens of the warm-up batch: requests of max_input_tokens (= max_total_tokens - 1) filling
    max_batch_prefill_tokens, each holding max_total_tokens - 1 slots, rounded up to whole blocks
    (router/client warmup, FlashCausalLMBatch.from_pb). TGI 3 without --max-total-tokens asks for one new
    token per request (backends/v3 client warmup)."""
    prefill = setup.max_num_batched_tokens
    if setup.caps_context:
        return math.ceil(prefill / TGI_BLOCK_TOKENS) * TGI_BLOCK_TOKENS
    # 1.x/2.x default max_input_tokens to min(max_position_embeddings, 4096) - 1 whatever
    # --max-total-tokens says (launcher main.rs); 3.x to max_total_tokens - 1.
    v3 = tgi_v3(setup.version)
    max_input = max((setup.max_model_len if v3 else min(setup.max_model_len, 4096)) - 1, 1)
    requests = math.ceil(prefill / max_input)
    per_request = math.ceil(max(setup.max_model_len - 1, 1) / TGI_BLOCK_TOKENS) * TGI_BLOCK_TOKENS
    return requests * per_request


def weight_bytes_per_rank(arch: ModelArch, setup: ServingSetup) -> float:
    """Weights on the most loaded rank. Embedding and LM head stay 16-bit under weight quantization and are
    split across TP ranks (vocab-parallel); with PP the first stage holds the embedding, the last the head."""
    embed = arch.vocab * arch.hidden
    head = 0 if arch.tie_embeddings else embed
    body = max(arch.params - embed - head, 0)
    body_bytes = _body_bytes(arch, body, setup)
    body_bytes += _replicated_kv_bytes(arch, setup)
    edge_params = (embed + head) if setup.pp == 1 else max(embed, head) or embed
    return body_bytes / (setup.tp * setup.pp) + edge_params * WEIGHT_BYTES["bf16"] / setup.tp


def _body_bytes(arch: ModelArch, body_params: int, setup: ServingSetup) -> float:
    if not setup.native_mxfp4_experts or arch.moe is None:
        # Quantized checkpoints keep some layers in 16 bits (e.g. Meta's 405B-FP8 keeps attention and the
        # first and last FFN in bf16; vision towers are rarely quantized).
        kept = min(arch.unquantized_params + arch.vision_params, body_params)
        if WEIGHT_BYTES[setup.weight_dtype] >= WEIGHT_BYTES["bf16"]:
            kept = 0
        return (body_params - kept) * WEIGHT_BYTES[setup.weight_dtype] + kept * WEIGHT_BYTES["bf16"]
    moe = arch.moe
    moe_layers = arch.layers - moe.dense_layers
    expert_params = moe_layers * moe.experts * 3 * arch.hidden * moe.moe_intermediate
    expert_params = min(expert_params, body_params)
    if setup.mxfp4_layout == "nominal":
        experts = expert_params * WEIGHT_BYTES["mxfp4"]
    else:
        experts = _mxfp4_expert_bytes(arch, setup)
    return experts + (body_params - expert_params) * WEIGHT_BYTES["bf16"]


def _mxfp4_expert_bytes(arch: ModelArch, setup: ServingSetup) -> float:
    """Bytes of the mxfp4 experts once vLLM has laid them out for its MoE kernel, times tp (the caller
    divides by the ranks). vllm/model_executor/layers/quantization/mxfp4.py create_weights pads each
    rank's intermediate size and the hidden size for the backend, and process_weights_after_loading
    re-lays them out:
    - triton (Hopper: triton_kernels matmul_ogs): intermediate to a multiple of 64; the swizzled copies
      replace the weights, but the loaded scales stay registered beside their swizzled copies, and the
      expert biases become fp32;
    - marlin (Ampere, Ada: compute capability < 9): intermediate to 128, hidden to 256;
    - flashinfer (Blackwell): intermediate and hidden to 256."""
    assert arch.moe is not None
    moe = arch.moe
    inter = math.ceil(moe.moe_intermediate / setup.tp)
    hidden = arch.hidden
    layout = setup.mxfp4_layout
    pad_inter, pad_hidden = {"triton": (64, 1), "marlin": (128, 256), "flashinfer": (256, 256)}[layout]
    inter = _round_up(inter, pad_inter)
    hidden = _round_up(hidden, pad_hidden)
    values = 3 * hidden * inter  # gate, up and down projections of one expert on one rank
    scale_copies = 2 if layout == "triton" else 1
    per_expert = values * 0.5 + values / MXFP4_BLOCK * scale_copies
    if layout == "triton":
        per_expert += (2 * inter + hidden) * 2  # biases widened from bf16 to fp32
    return (arch.layers - moe.dense_layers) * moe.experts * per_expert * setup.tp


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _replicated_kv_bytes(arch: ModelArch, setup: ServingSetup) -> float:
    """With tp > kv_heads each rank holds a whole KV head: the K/V projections are replicated."""
    if arch.mla is not None or setup.tp <= arch.kv_heads:
        return 0.0
    per_layer = 2 * arch.head_dim * arch.hidden
    replicated_heads = setup.tp - arch.kv_heads  # total extra heads across ranks
    return arch.layers * per_layer * replicated_heads * WEIGHT_BYTES[setup.weight_dtype]


def kv_bytes_per_token(arch: ModelArch, setup: ServingSetup) -> float:
    """KV bytes one token costs on one rank, averaged so that a max_model_len sequence costs exactly
    max_model_len x this (sliding-window layers hold at most their window)."""
    dtype_bytes = KV_BYTES[setup.kv_dtype]
    layers = math.ceil(arch.layers / setup.pp)
    if arch.mla is not None and setup.mla_head_dim:
        # vLLM before 0.7.1 cached full per-head K and V for DeepSeek models (see mla_head_dim).
        return layers * 2 * math.ceil(arch.heads / setup.tp) * setup.mla_head_dim * dtype_bytes
    if arch.mla is not None:
        # One compressed latent plus the decoupled RoPE key, replicated on every TP rank.
        return layers * (arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim) * dtype_bytes
    per_layer = 2 * math.ceil(arch.kv_heads / setup.tp) * arch.head_dim * dtype_bytes
    sw = arch.sliding_window
    held = _window_tokens(arch, setup)
    if sw is None or held >= setup.max_model_len:
        return layers * per_layer
    sliding = math.ceil(sw.sliding_layers / setup.pp)
    full = layers - sliding
    return per_layer * (full + sliding * held / setup.max_model_len)


def _window_tokens(arch: ModelArch, setup: ServingSetup) -> int:
    """Tokens of one sequence a sliding-window layer keeps. vLLM V1 (vllm/v1/kv_cache_interface.py
    SlidingWindowSpec.max_memory_usage_bytes) keeps window - 1 + one prefill chunk, plus a block; without
    its hybrid allocator every layer keeps the whole sequence."""
    sw = arch.sliding_window
    if sw is None:
        return setup.max_model_len
    if setup.engine != "vllm":
        return sw.window
    if not setup.windowed_kv:
        return setup.max_model_len
    return min(sw.window - 1 + setup.max_num_batched_tokens, setup.max_model_len) + BLOCK_TOKENS


def activation_bytes_per_rank(arch: ModelArch, setup: ServingSetup) -> float:
    """Peak transient memory of the profile forward pass plus the sampler.

    The forward peak is one layer's widest point for max_num_batched_tokens tokens: the MLP's gate/up and
    activation outputs next to the residual stream (dense), or the fused-MoE caches for top-k experts.
    """
    tokens = setup.max_num_batched_tokens
    h = arch.hidden
    forward = forward_bytes(arch, setup)
    if setup.engine == "sglang":
        return forward  # outside the static budget; not part of the KV rule
    if setup.engine == "tgi":
        # The warm-up keeps the logits of every prefill token (see TGI_PREFILL_LOGIT_COPIES).
        return forward + tokens * arch.vocab * ACTIVATION_BYTES * TGI_PREFILL_LOGIT_COPIES
    if setup.engine != "vllm":
        return forward + setup.max_num_seqs * arch.vocab * 4 * SAMPLER_LOGIT_COPIES
    if setup.reserved_peak:
        return forward + sampler_bytes(arch, setup)
    # V1 reads the allocator's peak of allocated bytes: the forward's transients are freed before the
    # sampler runs, and only the hidden states stay alive beside it.
    return max(forward, sampler_bytes(arch, setup) + tokens * h * ACTIVATION_BYTES)


def forward_bytes(arch: ModelArch, setup: ServingSetup) -> float:
    """The profile forward's peak: one layer's widest point for max_num_batched_tokens tokens."""
    h, tp = arch.hidden, setup.tp
    dense_width = 3 * h + 3 * arch.intermediate / tp
    width = dense_width
    if arch.moe is not None:
        moe = arch.moe
        moe_width = 3 * h + moe.experts_per_token * (3 * moe.moe_intermediate / tp + h)
        moe_width += moe.shared_experts * 3 * moe.moe_intermediate / tp
        width = max(moe_width, dense_width if moe.dense_layers else 0)
    return setup.max_num_batched_tokens * width * ACTIVATION_BYTES


def sampler_bytes(arch: ModelArch, setup: ServingSetup) -> float:
    """Peak of vLLM's dummy sampler step (see SAMPLER_BYTES_*)."""
    rows = min(setup.max_num_seqs, setup.max_num_batched_tokens)
    return rows * arch.vocab * setup.sampler_bytes


def _non_torch_bytes(setup: ServingSetup) -> float:
    nccl = setup.nccl_in_budget_gib if setup.tp * setup.pp > 1 else 0.0
    return (NON_TORCH_SINGLE_GIB + nccl) * GIB
