"""SGLang: `python -m sglang.launch_server --model-path M --tp N` (and `sglang serve`)."""

from __future__ import annotations

from itertools import pairwise

from placement.engines.base import (
    KV_CACHE_DTYPES,
    QUANTIZATIONS,
    WEIGHT_DTYPES,
    Container,
    EngineConfig,
    image_version,
    is_unknown,
    module_after,
    parse_bool,
    parse_choice,
    parse_fraction,
    parse_int,
    split_flags,
)

NAME = "sglang"
_ENTRYPOINTS = ("sglang.launch_server",)
BOOLEANS = {
    "trust-remote-code",
    "disable-cuda-graph",
    "enable-dp-attention",
    "disable-radix-cache",
    "enable-torch-compile",
    "enable-ep-moe",
}
ALIASES = {
    "tp": "tp-size",
    "tensor-parallel-size": "tp-size",
    "pp": "pp-size",
    "pipeline-parallel-size": "pp-size",
    "dp": "dp-size",
    "data-parallel-size": "dp-size",
    "model": "model-path",
    "max-model-len": "context-length",
}


def detect(container: Container) -> bool:
    argv = container.argv
    if module_after(argv, _ENTRYPOINTS) is not None:
        return True
    return any(w.rsplit("/", 1)[-1] == "sglang" and n == "serve" for w, n in pairwise(argv))


def parse(container: Container) -> EngineConfig:
    argv = container.argv
    start = module_after(argv, _ENTRYPOINTS)
    if start is None:
        start = next(i + 2 for i, w in enumerate(argv) if w.rsplit("/", 1)[-1] == "sglang")
    flags, positionals = split_flags(argv[start:], BOOLEANS, ALIASES)
    cfg = EngineConfig(engine=NAME, flags=flags, version=image_version(container.image))
    model = flags.get("model-path") or (positionals[0] if positionals else None)
    if model is not None and is_unknown(model):
        cfg.unknown.add("model")
        model = None
    cfg.model = model
    if "tp-size" in flags:
        cfg.tp = parse_int(flags["tp-size"], "tp-size", cfg) or cfg.tp
    if "pp-size" in flags:
        cfg.pp = parse_int(flags["pp-size"], "pp-size", cfg) or cfg.pp
    if "dp-size" in flags:
        cfg.dp = parse_int(flags["dp-size"], "dp-size", cfg) or cfg.dp
    if "context-length" in flags:
        cfg.max_model_len = parse_int(flags["context-length"], "context-length", cfg)
    if "max-running-requests" in flags:
        cfg.max_num_seqs = parse_int(flags["max-running-requests"], "max-running-requests", cfg)
    if "chunked-prefill-size" in flags:
        cfg.max_num_batched_tokens = parse_int(
            flags["chunked-prefill-size"], "chunked-prefill-size", cfg, minimum=-1
        )
    if "mem-fraction-static" in flags:
        cfg.mem_fraction = parse_fraction(flags["mem-fraction-static"], "mem-fraction-static", cfg)
    if "dtype" in flags:
        cfg.dtype = parse_choice(flags["dtype"], "dtype", WEIGHT_DTYPES, cfg)
    if "quantization" in flags:
        cfg.quantization = parse_choice(flags["quantization"], "quantization", QUANTIZATIONS, cfg)
    if "kv-cache-dtype" in flags:
        cfg.kv_cache_dtype = parse_choice(flags["kv-cache-dtype"], "kv-cache-dtype", KV_CACHE_DTYPES, cfg)
    if "disable-cuda-graph" in flags:
        cfg.enforce_eager = parse_bool(flags["disable-cuda-graph"])
    return cfg
