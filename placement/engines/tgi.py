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
    Setting,
    apply_settings,
    choice_setting,
    image_version,
    int_setting,
    module_after,
    set_model,
    split_flags,
)

NAME = "tgi"
_IMAGES = ("text-generation-inference",)
BOOLEANS = {"trust-remote-code", "sharded", "disable-custom-kernels", "json-output"}
# The launcher's env var for each flag (clap `env`), normalised flag name -> ENV.
ENV_FOR_FLAG = {
    "model-id": "MODEL_ID", "num-shard": "NUM_SHARD", "quantize": "QUANTIZE", "dtype": "DTYPE",
    "max-total-tokens": "MAX_TOTAL_TOKENS", "max-input-tokens": "MAX_INPUT_TOKENS",
    "max-input-length": "MAX_INPUT_LENGTH", "max-batch-prefill-tokens": "MAX_BATCH_PREFILL_TOKENS",
    "max-batch-total-tokens": "MAX_BATCH_TOTAL_TOKENS", "max-concurrent-requests": "MAX_CONCURRENT_REQUESTS",
    "cuda-memory-fraction": "CUDA_MEMORY_FRACTION", "kv-cache-dtype": "KV_CACHE_DTYPE",
    "max-batch-size": "MAX_BATCH_SIZE",
}  # fmt: skip
SETTINGS = {  # later entries win: --max-batch-size caps concurrency harder than --max-concurrent-requests
    "num-shard": int_setting("tp"),
    "max-total-tokens": int_setting("max_model_len"),
    "max-concurrent-requests": int_setting("max_num_seqs"),
    "max-batch-size": int_setting("max_num_seqs"),
    "max-batch-prefill-tokens": int_setting("max_num_batched_tokens"),
    "cuda-memory-fraction": Setting("mem_fraction", "fraction"),
    "dtype": choice_setting("dtype", WEIGHT_DTYPES),
    "quantize": choice_setting("quantization", QUANTIZATIONS),
    "kv-cache-dtype": choice_setting("kv_cache_dtype", KV_CACHE_DTYPES),
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
    set_model(cfg, flags.get("model-id"))
    apply_settings(flags, cfg, SETTINGS)
    return cfg
