"""vLLM: `vllm serve MODEL`, `python -m vllm.entrypoints.openai.api_server --model MODEL`, the
vllm/vllm-openai image's entrypoint with only args, and KServe's Hugging Face runtime (vLLM backend)."""

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
    parse_bool,
    parse_choice,
    parse_fraction,
    parse_int,
    split_flags,
)

NAME = "vllm"
_ENTRYPOINTS = ("vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server", "huggingfaceserver")
_IMAGES = ("vllm-openai", "vllm/vllm", "kserve/huggingfaceserver", "vllm-tpu", "vllm-cuda")
BOOLEANS = {
    "enforce-eager",
    "enable-chunked-prefill",
    "no-enable-chunked-prefill",
    "trust-remote-code",
    "enable-prefix-caching",
    "no-enable-prefix-caching",
    "disable-log-requests",
    "enable-expert-parallel",
    "disable-custom-all-reduce",
    "enable-lora",
    "disable-log-stats",
    "enable-auto-tool-choice",
    "disable-sliding-window",
    "enable-log-requests",
}
ALIASES = {
    "tp": "tensor-parallel-size",
    "pp": "pipeline-parallel-size",
    "dp": "data-parallel-size",
    "q": "quantization",
    "model-id": "model",
    "model-name-or-path": "model",
}


def detect(container: Container) -> bool:
    argv = container.argv
    if _serve_index(argv) is not None or module_after(argv, _ENTRYPOINTS) is not None:
        return True
    return not container.command and any(tag in container.image for tag in _IMAGES)


def _serve_index(argv: list[str]) -> int | None:
    for i, word in enumerate(argv[:-1]):
        if word.rsplit("/", 1)[-1] == "vllm" and argv[i + 1] == "serve":
            return i + 2
    return None


def parse(container: Container) -> EngineConfig:
    argv = container.argv
    start = _serve_index(argv)
    if start is None:
        start = module_after(argv, _ENTRYPOINTS) or 0
    flags, positionals = split_flags(argv[start:], BOOLEANS, ALIASES)
    cfg = EngineConfig(engine=NAME, flags=flags, version=image_version(container.image))
    model = flags.get("model") or (positionals[0] if positionals else None)
    if model is not None and is_unknown(model):
        cfg.unknown.add("model")
        model = None
    cfg.model = model
    _apply(flags, cfg)
    return cfg


def _apply(flags: dict[str, str], cfg: EngineConfig) -> None:
    if "tensor-parallel-size" in flags:
        cfg.tp = parse_int(flags["tensor-parallel-size"], "tensor-parallel-size", cfg) or cfg.tp
    if "pipeline-parallel-size" in flags:
        cfg.pp = parse_int(flags["pipeline-parallel-size"], "pipeline-parallel-size", cfg) or cfg.pp
    if "data-parallel-size" in flags:
        cfg.dp = parse_int(flags["data-parallel-size"], "data-parallel-size", cfg) or cfg.dp
    if "max-model-len" in flags:
        cfg.max_model_len = parse_int(flags["max-model-len"], "max-model-len", cfg)
    if "max-num-seqs" in flags:
        cfg.max_num_seqs = parse_int(flags["max-num-seqs"], "max-num-seqs", cfg)
    if "max-num-batched-tokens" in flags:
        cfg.max_num_batched_tokens = parse_int(flags["max-num-batched-tokens"], "max-num-batched-tokens", cfg)
    if "gpu-memory-utilization" in flags:
        cfg.mem_fraction = parse_fraction(flags["gpu-memory-utilization"], "gpu-memory-utilization", cfg)
    if "dtype" in flags:
        cfg.dtype = parse_choice(flags["dtype"], "dtype", WEIGHT_DTYPES, cfg)
    if "quantization" in flags:
        cfg.quantization = parse_choice(flags["quantization"], "quantization", QUANTIZATIONS, cfg)
    if "kv-cache-dtype" in flags:
        cfg.kv_cache_dtype = parse_choice(flags["kv-cache-dtype"], "kv-cache-dtype", KV_CACHE_DTYPES, cfg)
    if "enforce-eager" in flags:
        cfg.enforce_eager = parse_bool(flags["enforce-eager"])
    if "enable-chunked-prefill" in flags:
        cfg.chunked_prefill = parse_bool(flags["enable-chunked-prefill"])
    if "no-enable-chunked-prefill" in flags:
        cfg.chunked_prefill = False
    if "cpu-offload-gb" in flags:
        try:
            cfg.cpu_offload_gib = float(flags["cpu-offload-gb"]) * 1e9 / 2**30
        except ValueError:
            cfg.problems.append(f"cpu-offload-gb={flags['cpu-offload-gb']!r} is not a number")
