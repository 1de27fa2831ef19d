"""TensorRT-LLM's OpenAI server: `trtllm-serve [serve] MODEL --tp_size N --max_batch_size B
--max_num_tokens T --max_seq_len L --kv_cache_free_gpu_memory_fraction F`."""

from __future__ import annotations

from placement.engines.base import (
    Container,
    EngineConfig,
    image_version,
    is_unknown,
    module_after,
    parse_fraction,
    parse_int,
    split_flags,
)

NAME = "trtllm"
BOOLEANS = {"trust-remote-code"}


def detect(container: Container) -> bool:
    return module_after(container.argv, ("trtllm-serve",)) is not None


def parse(container: Container) -> EngineConfig:
    argv = container.argv
    start = module_after(argv, ("trtllm-serve",)) or 0
    flags, positionals = split_flags(argv[start:], BOOLEANS, {})
    if positionals and positionals[0] == "serve":
        positionals = positionals[1:]
    cfg = EngineConfig(engine=NAME, flags=flags, version=image_version(container.image))
    model = positionals[0] if positionals else flags.get("model")
    if model is not None and is_unknown(model):
        cfg.unknown.add("model")
        model = None
    cfg.model = model
    if "tp-size" in flags:
        cfg.tp = parse_int(flags["tp-size"], "tp_size", cfg) or cfg.tp
    if "pp-size" in flags:
        cfg.pp = parse_int(flags["pp-size"], "pp_size", cfg) or cfg.pp
    if "max-seq-len" in flags:
        cfg.max_model_len = parse_int(flags["max-seq-len"], "max_seq_len", cfg)
    if "max-batch-size" in flags:
        cfg.max_num_seqs = parse_int(flags["max-batch-size"], "max_batch_size", cfg)
    if "max-num-tokens" in flags:
        cfg.max_num_batched_tokens = parse_int(flags["max-num-tokens"], "max_num_tokens", cfg)
    if "kv-cache-free-gpu-memory-fraction" in flags:
        cfg.mem_fraction = parse_fraction(
            flags["kv-cache-free-gpu-memory-fraction"], "kv_cache_free_gpu_memory_fraction", cfg
        )
    return cfg
