"""TensorRT-LLM's OpenAI server: `trtllm-serve [serve] MODEL --tp_size N --max_batch_size B
--max_num_tokens T --max_seq_len L --kv_cache_free_gpu_memory_fraction F`."""

from __future__ import annotations

from placement.engines.base import (
    Container,
    EngineConfig,
    Setting,
    apply_settings,
    image_version,
    int_setting,
    module_after,
    set_model,
    split_flags,
)

NAME = "trtllm"
BOOLEANS = {"trust-remote-code"}
SETTINGS = {  # messages spell the flags as trtllm-serve does, with underscores
    "tp-size": int_setting("tp", "tp_size"),
    "pp-size": int_setting("pp", "pp_size"),
    "max-seq-len": int_setting("max_model_len", "max_seq_len"),
    "max-batch-size": int_setting("max_num_seqs", "max_batch_size"),
    "max-num-tokens": int_setting("max_num_batched_tokens", "max_num_tokens"),
    "kv-cache-free-gpu-memory-fraction": Setting(
        "mem_fraction", "fraction", "kv_cache_free_gpu_memory_fraction"
    ),
}


def detect(container: Container) -> bool:
    return module_after(container.argv, ("trtllm-serve",)) is not None


def parse(container: Container) -> EngineConfig:
    argv = container.argv
    start = module_after(argv, ("trtllm-serve",)) or 0
    flags, positionals = split_flags(argv[start:], BOOLEANS, {})
    if positionals and positionals[0] == "serve":
        positionals = positionals[1:]
    cfg = EngineConfig(engine=NAME, flags=flags, version=image_version(container.image))
    set_model(cfg, positionals[0] if positionals else flags.get("model"))
    apply_settings(flags, cfg, SETTINGS)
    return cfg
