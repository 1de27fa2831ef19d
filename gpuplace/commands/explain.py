"""`gpuplace explain MODEL --gpu PRODUCT`: the memory breakdown of one model on one GPU, as a table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common.config import ConfigError, load_config
from gpuplace.cli import EXIT_FINDINGS, EXIT_OK, UsageError
from placement.engines import EngineConfig
from placement.engines.base import parse_version
from placement.engines.defaults import default_max_model_len, precision, setup_on
from placement.memory import (
    CUDA_CONTEXT_GIB,
    GIB,
    SAMPLER_BYTES_FLASHINFER,
    SAMPLER_BYTES_NATIVE,
    SAMPLER_BYTES_V0,
    SGLANG_DIST_INIT_GIB,
    MemoryEstimate,
    ServingSetup,
    estimate,
    forward_bytes,
    sampler_bytes,
    tgi_v3,
    tgi_wiggle_room,
)
from placement.models import ModelArch, ModelError, Resolved, from_hf_config

HELP = """Show how gpuplace sizes a model on a GPU: weights, activations, KV cache, and whether it fits.

examples:
  gpuplace explain meta-llama/Llama-3.1-70B-Instruct --gpu NVIDIA-L40S --tp 2 --max-model-len 8192
  gpuplace explain my-model --hf-config ./config.json --gpu h100 --engine sglang
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "explain",
        help="memory breakdown of a model on a GPU",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model id (catalog, alias, or a name with its size such as foo-13B)")
    p.add_argument("--gpu", required=True, help="GPU: catalog id, GFD product, GKE/EKS name or instance type")
    p.add_argument("--engine", choices=("vllm", "sglang", "tgi", "trtllm"), default="vllm")
    p.add_argument("--engine-version", help="engine version, e.g. 0.6.4 (default: latest semantics)")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--pp", type=int, default=1)
    p.add_argument("--max-model-len", type=int)
    p.add_argument("--max-num-seqs", type=int)
    p.add_argument("--max-num-batched-tokens", type=int)
    p.add_argument("--mem-fraction", type=float, help="gpu-memory-utilization / mem-fraction-static / ...")
    p.add_argument(
        "--dtype",
        choices=("bf16", "fp16", "fp8", "int8", "int4", "mxfp4"),
        help="weight precision (default: from the model id and checkpoint)",
    )
    p.add_argument("--kv-cache-dtype", choices=("auto", "fp8"), default="auto")
    p.add_argument("--usable-gib", type=float, help="override what CUDA reports as total memory")
    p.add_argument("--hf-config", help="a Hugging Face config.json for a model not in the catalog")
    p.add_argument("--enforce-eager", action="store_true")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("-c", "--config", help="gpuplace config file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        ctx = load_config(args.config).check_context()
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    gpu = ctx.gpus.resolve(args.gpu)
    if gpu is None:
        raise UsageError(f"--gpu {args.gpu!r} is not in the GPU catalog; see placement/data/gpus.yaml")
    resolved = _resolve(args, ctx.models)
    version = parse_version(args.engine_version) if args.engine_version else None
    if args.engine_version and version is None:
        raise UsageError(f"--engine-version {args.engine_version!r} is not a version; give e.g. 0.11.0")
    cfg = EngineConfig(
        engine=args.engine,
        model=args.model,
        version=version,
        tp=args.tp,
        pp=args.pp,
        max_num_batched_tokens=args.max_num_batched_tokens,
        mem_fraction=args.mem_fraction,
        kv_cache_dtype=args.kv_cache_dtype,
        enforce_eager=args.enforce_eager,
    )
    prec = precision(cfg, resolved.arch.dtype, resolved.quant, args.dtype)
    max_len = args.max_model_len or default_max_model_len(cfg, resolved.arch.context)
    setup = setup_on(cfg, prec, gpu, max_len, args.max_num_seqs, usable_gib=args.usable_gib)
    est = estimate(resolved.arch, setup)
    if args.output == "json":
        out = {"model": resolved.arch.id, "gpu": gpu.id, "fits": est.fits, "engine_version": _version(cfg)}
        out.update(est.as_figures())
        out["terms_gib"] = {
            _JSON_KEYS.get(name.strip(), name.strip().replace(" ", "_").replace("-", "_")): figure
            for name, _, figure in terms(resolved, gpu.id, est)
            if isinstance(figure, float)
        }
        out["rule"] = _rule(est)
        print(json.dumps(out, indent=2))
    else:
        print(render(resolved, gpu.id, est, _version(cfg)))
    return EXIT_OK if est.fits else EXIT_FINDINGS


def _resolve(args: argparse.Namespace, models) -> Resolved:
    if args.hf_config:
        try:
            config = json.loads(Path(args.hf_config).read_text(encoding="utf-8"))
            return Resolved(arch=from_hf_config(config, args.model), quant=None, how="hf-config")
        except (OSError, json.JSONDecodeError, ModelError) as exc:
            raise UsageError(f"--hf-config {args.hf_config}: {exc}") from exc
    resolved = models.resolve(args.model)
    if resolved is None:
        raise UsageError(
            f"model {args.model!r} is not in the catalog and its name gives no size; "
            "pass --hf-config config.json or a name with its size (e.g. my-model-13B)"
        )
    return resolved


def render(resolved: Resolved, gpu_id: str, est: MemoryEstimate, version: str = "latest") -> str:
    rows = [(name, text) for name, text, _ in terms(resolved, gpu_id, est, version)]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def terms(
    resolved: Resolved, gpu_id: str, est: MemoryEstimate, version: str = "latest"
) -> list[tuple[str, str, float | str | int]]:
    """(term, the line explain prints, the figure JSON carries) for every term of the estimate."""
    s, arch = est.setup, resolved.arch
    how = f"{resolved.how}{', ' + resolved.quant if resolved.quant else ''}"
    forward = forward_bytes(arch, s)
    sampler = sampler_bytes(arch, s) if s.engine == "vllm" else max(est.activation_bytes - forward, 0.0)
    graphs_where = "inside the budget" if s.graphs_in_budget and s.engine == "vllm" else "outside the budget"
    need = est.kv_bytes_per_token * s.max_model_len
    return [
        ("model", f"{arch.id} ({how})", arch.id),
        ("gpu", f"{gpu_id}: {s.usable_gib:.2f} GiB as CUDA reports it", gpu_id),
        (
            "engine",
            f"{s.engine} {version} tp={s.tp} pp={s.pp} weights={_weights(s)} kv={s.kv_dtype}",
            s.engine,
        ),
        ("budget", f"{_g(est.budget_bytes)} GiB {_budget(s)}", _r(est.budget_bytes)),
        ("weights", f"{_g(est.weights_bytes)} GiB per GPU{_layout(s)}", _r(est.weights_bytes)),
        ("activation", _activation(s, est.activation_bytes, forward, sampler), _r(est.activation_bytes)),
        ("  forward", f"{_g(forward)} GiB ({s.max_num_batched_tokens} batched tokens)", _r(forward)),
        ("  sampler", _sampler(arch, s, sampler), _r(sampler)),
        ("non-torch", f"{_g(est.non_torch_bytes)} GiB{_nccl(s)}", _r(est.non_torch_bytes)),
        ("cuda graphs", f"{_g(est.graphs_bytes)} GiB, {graphs_where}", _r(est.graphs_bytes)),
        (
            "kv cache",
            f"{_g(est.kv_bytes)} GiB = {est.kv_tokens} tokens ({int(est.kv_bytes_per_token)} B/token)",
            _r(est.kv_bytes),
        ),
        (
            "max-model-len",
            f"{s.max_model_len}: one sequence needs {_g(need)} GiB ({_sequence(est)})",
            s.max_model_len,
        ),
        (
            "outside budget",
            f"{_g(est.headroom_bytes)} GiB left for {_outside(s, graphs_where)} "
            f"(needs {_g(est.outside_budget_bytes)})",
            _r(est.outside_budget_bytes),
        ),
        ("rule", _rule(est), _rule(est)),
        ("verdict", "FITS" if est.fits else "DOES NOT FIT", "fits" if est.fits else "does not fit"),
    ]


_JSON_KEYS = {"outside budget": "outside_budget_need", "kv cache": "kv"}


def _version(cfg: EngineConfig) -> str:
    return ".".join(map(str, cfg.version)) if cfg.version else "latest"


def _budget(s: ServingSetup) -> str:
    """How the engine draws its budget line (memory.py: _sglang_kv_memory, _tgi_kv_memory, ...)."""
    frac = f"{s.mem_fraction:.2f}"
    if s.engine == "sglang":
        in_use = CUDA_CONTEXT_GIB + (SGLANG_DIST_INIT_GIB if s.tp * s.pp > 1 else 0.0)
        return (
            f"(({s.usable_gib:.1f} - {in_use:.2f} in use before the weights load) x mem-fraction-static "
            f"{frac}: weights + token pool; activations and graphs live outside it)"
        )
    if s.engine == "tgi":
        v3 = tgi_v3(s.version)
        wiggle = tgi_wiggle_room(s.version)
        rule = f"x {frac} x wiggle {wiggle:g}" if v3 else f"x {frac}; blocks take {wiggle:g} of what is free"
        return f"({s.usable_gib:.1f} {rule}; KV sized after the warm-up prefill)"
    if s.engine == "trtllm":
        return (
            f"(all {s.usable_gib:.1f}; KV = free_gpu_memory_fraction {frac} x what the profiling run "
            "leaves free)"
        )
    return f"({s.usable_gib:.1f} x {frac})"


def _sequence(est: MemoryEstimate) -> str:
    if est.sequence_fits:
        return "fits"
    return "capped to the pool" if est.context_capped else "does NOT fit"


def _activation(s: ServingSetup, total: float, forward: float, sampler: float) -> str:
    if s.engine == "sglang":
        return f"{_g(total)} GiB, outside mem-fraction-static (not part of the pool rule)"
    if s.engine == "tgi":
        return f"{_g(total)} GiB = warm-up forward + logits of every prefill token and their log_softmax"
    if s.engine != "vllm":
        return f"{_g(total)} GiB (forward + sampler; {s.max_num_seqs} seqs)"
    if s.reserved_peak:
        return f"{_g(total)} GiB = forward + sampler (V0 measures the reserved pool)"
    return f"{_g(total)} GiB = the larger of forward and sampler + hidden states (V1's allocated peak)"


def _sampler(arch: ModelArch, s: ServingSetup, sampler: float) -> str:
    if s.engine == "tgi":
        tokens = s.max_num_batched_tokens
        return f"{_g(sampler)} GiB (prefill logprobs: {tokens} tokens x {arch.vocab} vocab x 2 copies)"
    if s.engine != "vllm":
        return f"{_g(sampler)} GiB ({s.max_num_seqs} seqs x {arch.vocab} vocab)"
    rows = min(s.max_num_seqs, s.max_num_batched_tokens)
    path = {
        SAMPLER_BYTES_FLASHINFER: "FlashInfer",
        SAMPLER_BYTES_NATIVE: "native sort",
        SAMPLER_BYTES_V0: "V0",
    }
    return (
        f"{_g(sampler)} GiB ({rows} rows x {arch.vocab} vocab x {s.sampler_bytes:g} B, "
        f"{path.get(s.sampler_bytes, 'sampler')} path)"
    )


def _outside(s: ServingSetup, graphs_where: str) -> str:
    parts = ["the CUDA context"]
    if graphs_where.startswith("outside") and not s.enforce_eager:
        parts.append("graphs")
    if s.nccl_outside_gib and s.tp * s.pp > 1:
        parts.append("NCCL")
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


def _nccl(s: ServingSetup) -> str:
    if s.tp * s.pp == 1:
        return ""
    if s.nccl_in_budget_gib:
        return f" (NCCL {s.nccl_in_budget_gib:g} GiB inside the budget)"
    return f" (NCCL {s.nccl_outside_gib:g} GiB outside the budget)" if s.nccl_outside_gib else ""


def _layout(s: ServingSetup) -> str:
    return f" (mxfp4 experts in the {s.mxfp4_layout} layout)" if s.native_mxfp4_experts else ""


def _rule(est: MemoryEstimate) -> str:
    """Which of the engine's start-up rules decided."""
    if not est.weights_fit:
        return "weights exceed the budget: the engine cannot load the model"
    if est.context_capped:
        return (
            f"the KV pool is shorter than max-model-len: {est.setup.engine} starts and refuses requests "
            f"over {est.max_request_tokens} tokens (a warning, not a denial)"
        )
    if not est.sequence_fits:
        if est.setup.engine == "sglang":
            return "no token pool is left after the weights: SGLang refuses to start (Not enough memory)"
        if est.setup.engine == "tgi":
            return "the KV blocks cannot hold max-total-tokens: TGI refuses to start (NotEnoughMemory)"
        return "the KV cache cannot hold one max-model-len sequence: the engine refuses to start"
    if not est.headroom_fits:
        return "the memory outside the budget cannot hold the CUDA context and graphs"
    return "weights, one max-model-len sequence and the headroom all fit"


def _r(nbytes: float) -> float:
    return round(nbytes / GIB, 2)


def _weights(setup: ServingSetup) -> str:
    return "mxfp4 experts + bf16" if setup.native_mxfp4_experts else setup.weight_dtype


def _g(nbytes: float) -> str:
    return f"{nbytes / GIB:.1f}"
