"""vLLM: `vllm serve MODEL`, `python -m vllm.entrypoints.openai.api_server --model MODEL`, the
vllm/vllm-openai image's entrypoint with only args, and KServe's Hugging Face runtime (vLLM backend)."""

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

NAME = "vllm"
_ENTRYPOINTS = ("vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server", "huggingfaceserver")
_IMAGES = ("vllm-openai", "vllm/vllm", "kserve/huggingfaceserver", "vllm-tpu", "vllm-cuda")
BOOLEANS = {
    "enforce-eager", "enable-chunked-prefill", "no-enable-chunked-prefill", "trust-remote-code",
    "enable-prefix-caching", "no-enable-prefix-caching", "disable-log-requests", "enable-expert-parallel",
    "disable-custom-all-reduce", "enable-lora", "disable-log-stats", "enable-auto-tool-choice",
    "disable-sliding-window", "enable-log-requests",
}  # fmt: skip
ALIASES = {
    "tp": "tensor-parallel-size", "pp": "pipeline-parallel-size", "dp": "data-parallel-size",
    "q": "quantization", "model-id": "model", "model-name-or-path": "model",
}  # fmt: skip
SETTINGS = {
    "tensor-parallel-size": int_setting("tp"),
    "pipeline-parallel-size": int_setting("pp"),
    "data-parallel-size": int_setting("dp"),
    "max-model-len": int_setting("max_model_len"),
    "max-num-seqs": int_setting("max_num_seqs"),
    "max-num-batched-tokens": int_setting("max_num_batched_tokens"),
    "gpu-memory-utilization": Setting("mem_fraction", "fraction"),
    "dtype": choice_setting("dtype", WEIGHT_DTYPES),
    "quantization": choice_setting("quantization", QUANTIZATIONS),
    "kv-cache-dtype": choice_setting("kv_cache_dtype", KV_CACHE_DTYPES),
    "enforce-eager": Setting("enforce_eager", "bool"),
    "enable-chunked-prefill": Setting("chunked_prefill", "bool"),
    "no-enable-chunked-prefill": Setting("chunked_prefill", "not"),
}


def detect(container: Container) -> bool:
    if not container.command and any(tag in container.image for tag in _IMAGES):
        return True  # the image's own entrypoint (the common case: checked first, no argv scan)
    argv = container.argv
    return _serve_index(argv) is not None or module_after(argv, _ENTRYPOINTS) is not None


def _serve_index(argv: list[str]) -> int | None:
    if "serve" not in argv:
        return None  # one scan in C: most command lines are the image's entrypoint with flags
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
    set_model(cfg, flags.get("model") or (positionals[0] if positionals else None))
    apply_settings(flags, cfg, SETTINGS)
    if "cpu-offload-gb" in flags:
        try:
            cfg.cpu_offload_gib = float(flags["cpu-offload-gb"]) * 1e9 / 2**30
        except ValueError:
            cfg.problems.append(f"cpu-offload-gb={flags['cpu-offload-gb']!r} is not a number")
    return cfg
