"""SGLang: `python -m sglang.launch_server --model-path M --tp N` (and `sglang serve`)."""

from __future__ import annotations

from itertools import pairwise

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

NAME = "sglang"
_ENTRYPOINTS = ("sglang.launch_server",)
BOOLEANS = {"trust-remote-code", "disable-cuda-graph", "enable-dp-attention", "disable-radix-cache",
            "enable-torch-compile", "enable-ep-moe"}  # fmt: skip
ALIASES = {
    "tp": "tp-size", "tensor-parallel-size": "tp-size", "pp": "pp-size",
    "pipeline-parallel-size": "pp-size", "dp": "dp-size", "data-parallel-size": "dp-size",
    "model": "model-path", "max-model-len": "context-length",
}  # fmt: skip
SETTINGS = {
    "tp-size": int_setting("tp"),
    "pp-size": int_setting("pp"),
    "dp-size": int_setting("dp"),
    "context-length": int_setting("max_model_len"),
    "max-running-requests": int_setting("max_num_seqs"),
    "chunked-prefill-size": int_setting("max_num_batched_tokens", minimum=-1),  # -1 disables chunking
    "mem-fraction-static": Setting("mem_fraction", "fraction"),
    "dtype": choice_setting("dtype", WEIGHT_DTYPES),
    "quantization": choice_setting("quantization", QUANTIZATIONS),
    "kv-cache-dtype": choice_setting("kv_cache_dtype", KV_CACHE_DTYPES),
    "disable-cuda-graph": Setting("enforce_eager", "bool"),
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
    set_model(cfg, flags.get("model-path") or (positionals[0] if positionals else None))
    apply_settings(flags, cfg, SETTINGS)
    return cfg
