"""`gpuplace explain MODEL --gpu PRODUCT`: the memory breakdown of one model on one GPU, as a table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common.config import ConfigError, load_config
from gpuplace.cli import EXIT_FINDINGS, EXIT_OK, UsageError
from placement.engines import EngineConfig
from placement.engines.base import parse_version
from placement.engines.defaults import default_max_model_len, precision, setup_for
from placement.memory import GIB, MemoryEstimate, ServingSetup, estimate
from placement.models import ModelError, Resolved, from_hf_config

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
    setup = setup_for(
        cfg, prec, args.usable_gib or gpu.usable_gib, max_len, args.max_num_seqs,
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
    )
    est = estimate(resolved.arch, setup)
    if args.output == "json":
        print(
            json.dumps(
                {"model": resolved.arch.id, "gpu": gpu.id, "fits": est.fits, **est.as_figures()}, indent=2
            )
        )
    else:
        print(render(resolved, gpu.id, est))
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


def render(resolved: Resolved, gpu_id: str, est: MemoryEstimate) -> str:
    s = est.setup
    rows = [
        ("model", f"{resolved.arch.id} ({resolved.how}{', ' + resolved.quant if resolved.quant else ''})"),
        ("gpu", f"{gpu_id}: {s.usable_gib:.2f} GiB usable"),
        ("engine", f"{s.engine} tp={s.tp} pp={s.pp} weights={_weights(s)} kv={s.kv_dtype}"),
        ("budget", f"{_g(est.budget_bytes)} GiB ({s.usable_gib:.1f} x {s.mem_fraction:.2f})"),
        ("weights", f"{_g(est.weights_bytes)} GiB per GPU"),
        (
            "activation",
            f"{_g(est.activation_bytes)} GiB ({s.max_num_batched_tokens} batched tokens, "
            f"{s.max_num_seqs} seqs)",
        ),
        ("non-torch", f"{_g(est.non_torch_bytes)} GiB"),
        (
            "kv cache",
            f"{_g(est.kv_bytes)} GiB = {est.kv_tokens} tokens ({int(est.kv_bytes_per_token)} B/token)",
        ),
        ("max-model-len", f"{s.max_model_len} ({'fits' if est.sequence_fits else 'does NOT fit'})"),
        (
            "outside budget",
            f"{_g(est.headroom_bytes)} GiB free for CUDA context+graphs "
            f"(needs {_g(est.outside_budget_bytes)})",
        ),
        ("verdict", "FITS" if est.fits else "DOES NOT FIT"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _weights(setup: ServingSetup) -> str:
    return "mxfp4 experts + bf16" if setup.native_mxfp4_experts else setup.weight_dtype


def _g(nbytes: float) -> str:
    return f"{nbytes / GIB:.1f}"
