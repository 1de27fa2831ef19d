"""Hugging Face TGI: `text-generation-launcher --model-id M --num-shard N` and its env vars
(MODEL_ID, NUM_SHARD, QUANTIZE, MAX_TOTAL_TOKENS, CUDA_MEMORY_FRACTION, ...). Flags win over env,
as in the launcher (clap reads env only for flags not given)."""

from __future__ import annotations

from placement.engines.base import (
    KV_CACHE_DTYPES,
    QUANTIZATIONS,
    WEIGHT_DTYPES,
    Container,
    EngineConfig,
    image_version,
    is_unknown,
    module_after,
    parse_choice,
    parse_fraction,
    parse_int,
    split_flags,
)

NAME = "tgi"
_IMAGES = ("text-generation-inference",)
BOOLEANS = {"trust-remote-code", "sharded", "disable-custom-kernels", "json-output"}
# The launcher's env var for each flag (clap `env`), normalised flag name -> ENV.
ENV_FOR_FLAG = {
    "model-id": "MODEL_ID",
    "num-shard": "NUM_SHARD",
    "quantize": "QUANTIZE",
    "dtype": "DTYPE",
    "max-total-tokens": "MAX_TOTAL_TOKENS",
    "max-input-tokens": "MAX_INPUT_TOKENS",
    "max-input-length": "MAX_INPUT_LENGTH",
    "max-batch-prefill-tokens": "MAX_BATCH_PREFILL_TOKENS",
    "max-batch-total-tokens": "MAX_BATCH_TOTAL_TOKENS",
    "max-concurrent-requests": "MAX_CONCURRENT_REQUESTS",
    "cuda-memory-fraction": "CUDA_MEMORY_FRACTION",
    "kv-cache-dtype": "KV_CACHE_DTYPE",
    "max-batch-size": "MAX_BATCH_SIZE",
}


def detect(container: Container) -> bool:
    if module_after(container.argv, ("text-generation-launcher",)) is not None:
        return True
    return any(tag in container.image for tag in _IMAGES) or "MODEL_ID" in container.env


def parse(container: Container) -> EngineConfig:
    argv = container.argv
    start = module_after(argv, ("text-generation-launcher",)) or 0
    flags, _ = split_flags(argv[start:], BOOLEANS, {})
    for flag, env in ENV_FOR_FLAG.items():
        if flag not in flags and env in container.env:
            value = container.env[env]
            flags[flag] = "$unknown" if value is None else value
    cfg = EngineConfig(engine=NAME, flags=flags, version=image_version(container.image))
    model = flags.get("model-id")
    if model is not None and is_unknown(model):
        cfg.unknown.add("model")
        model = None
    cfg.model = model
    if "num-shard" in flags:
        cfg.tp = parse_int(flags["num-shard"], "num-shard", cfg) or cfg.tp
    if "max-total-tokens" in flags:
        cfg.max_model_len = parse_int(flags["max-total-tokens"], "max-total-tokens", cfg)
    if "max-concurrent-requests" in flags:
        cfg.max_num_seqs = parse_int(flags["max-concurrent-requests"], "max-concurrent-requests", cfg)
    if "max-batch-size" in flags:
        cfg.max_num_seqs = parse_int(flags["max-batch-size"], "max-batch-size", cfg)
    if "max-batch-prefill-tokens" in flags:
        cfg.max_num_batched_tokens = parse_int(
            flags["max-batch-prefill-tokens"], "max-batch-prefill-tokens", cfg
        )
    if "cuda-memory-fraction" in flags:
        cfg.mem_fraction = parse_fraction(flags["cuda-memory-fraction"], "cuda-memory-fraction", cfg)
    if "dtype" in flags:
        cfg.dtype = parse_choice(flags["dtype"], "dtype", WEIGHT_DTYPES, cfg)
    if "quantize" in flags:
        cfg.quantization = parse_choice(flags["quantize"], "quantize", QUANTIZATIONS, cfg)
    if "kv-cache-dtype" in flags:
        cfg.kv_cache_dtype = parse_choice(flags["kv-cache-dtype"], "kv-cache-dtype", KV_CACHE_DTYPES, cfg)
    return cfg
