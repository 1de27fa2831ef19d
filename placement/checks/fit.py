"""Does the model fit the GPUs it is pinned to? oom-risk, config-invalid, kv-cache-starved, unknown-model.

Denials are certain or absent: oom-risk is an error only when every allowed tier fails; a tier that fails
among others that fit is a warning (the extender keeps the pod off it), and an unpinned pod is denied only
when no GPU in the catalog (or the cluster) holds it at its parallelism.
"""

from __future__ import annotations

import math
from dataclasses import replace

from placement.advice import fix, named
from placement.catalog import GpuSpec, MigProfile
from placement.checks.settings import CheckContext
from placement.engines.defaults import Precision
from placement.findings import Code, Finding, Severity, gib
from placement.memory import GIB, MemoryEstimate, sglang_free_before_load, sglang_outside_needs
from placement.serving import Serving

MAX_TP = 8  # one node's NVLink domain on HGX-class nodes; beyond it is a multi-node deployment


def gpu_label(gpu: GpuSpec) -> str:
    """What users see in their node labels (GPU Feature Discovery product), else the catalog id."""
    return gpu.gfd_products[0] if gpu.gfd_products else gpu.id


def finding(
    s: Serving, code: Code, detail: str, severity: Severity | None = None, /, **figures: object
) -> Finding:
    return Finding(
        code=code,
        obj=s.workload.ref,
        container=s.container.name,
        detail=detail,
        severity=severity,
        figures=figures,
    )


def unknown_model(s: Serving) -> list[Finding]:
    return [finding(s, Code.UNKNOWN_MODEL, f"cannot size GPU memory: {s.unresolved_reason}.")]


def config_invalid(s: Serving) -> list[Finding]:
    """What would make the engine refuse to start, before any memory is considered."""
    out = (
        [
            finding(s, Code.CONFIG_INVALID, f"{s.engine.engine} would refuse to start: {p}.")
            for p in s.engine.problems
        ]
        if s.engine.problems
        else []
    )
    eng, arch = s.engine, s.arch
    need = eng.tp * eng.pp
    if s.engine.engine != "annotations" and need > s.gpus_per_replica and not s.container.mig_profile:
        out.append(
            finding(
                s,
                Code.CONFIG_INVALID,
                f"tp={eng.tp} x pp={eng.pp} needs {need} GPUs but the pod gets "
                f"{s.gpus_per_replica}. Set nvidia.com/gpu: {need} or lower {named(s, 'tp')}.",
                tp=eng.tp,
                pp=eng.pp,
                gpus=s.gpus_per_replica,
            )
        )
    if arch is not None and not s.resolved_estimated and arch.heads % eng.tp:
        out.append(
            finding(
                s,
                Code.CONFIG_INVALID,
                f"{arch.heads} attention heads of {arch.id} are not divisible by tp={eng.tp}. "
                f"Use {named(s, 'tp')} in {_valid_tps(arch.heads)}.",
                tp=eng.tp,
                heads=arch.heads,
            )
        )
    explicit = s.explicit_max_model_len
    allow_long = s.container.container.env.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN") == "1"
    if (
        arch is not None
        and explicit
        and explicit > arch.context
        and not s.resolved_estimated
        and not allow_long
    ):
        out.append(
            finding(
                s,
                Code.CONFIG_INVALID,
                f"{named(s, 'max_model_len')} {explicit} exceeds {arch.id}'s context {arch.context}; the "
                f"engine refuses it. Use {fix(s, 'max_model_len', arch.context, '<= ')}.",
                max_model_len=explicit,
                context=arch.context,
            )
        )
    return out


def unsupported_reason(s: Serving, gpu: GpuSpec) -> str | None:
    """Why the engine would refuse this precision on this GPU (vLLM: FP8 kernels, even weight-only
    Marlin, need compute capability 8.0; bfloat16 needs 8.0)."""
    if s.precision is None or not gpu.compute_capability:
        return None
    major = int(gpu.compute_capability.split(".")[0])
    if major < 8 and (s.precision.weights == "fp8" or s.precision.kv == "fp8"):
        return f"FP8 needs compute capability >= 8.0; {gpu_label(gpu)} is {gpu.compute_capability}"
    if s.engine.dtype in {"bfloat16", "bf16"} and not gpu.supports_bf16:
        return (
            f"--dtype bfloat16 needs compute capability >= 8.0; {gpu_label(gpu)} is {gpu.compute_capability}"
        )
    return None


def tier_invalid(s: Serving, ctx: CheckContext) -> list[Finding]:
    """config-invalid when no pinned tier can run the configured precision (warning if only some cannot)."""
    candidates, pinned = tier_candidates(s, ctx)
    if not pinned:
        return []
    reasons = [(gpu, r) for gpu in candidates if (r := unsupported_reason(s, gpu))]
    if not reasons:
        return []
    severity = Severity.ERROR if len(reasons) == len(candidates) else Severity.WARNING
    gpu, reason = reasons[0]
    fix = "Use an Ampere or newer tier, or a bf16/fp16 build."
    return [
        finding(
            s,
            Code.CONFIG_INVALID,
            f"{s.engine.engine} would refuse to start: {reason}. {fix}",
            severity,
            tier=gpu.id,
        )
    ]


def _valid_tps(heads: int) -> str:
    return "{" + ",".join(str(t) for t in (1, 2, 4, 8, 16) if heads % t == 0) + "}"


Fitting = dict[str, tuple[GpuSpec, MemoryEstimate]]


def mig_tier(gpu: GpuSpec, profile: MigProfile) -> GpuSpec:
    """A MIG slice as a tier of its own: its share of the memory CUDA reports and of the price."""
    share = profile.memory_gib / gpu.memory_gib
    return replace(
        gpu,
        id=f"{gpu.id}/{profile.name}",
        usable_gib=round(gpu.usable_gib * share, 2),
        price_per_hour=gpu.price_per_hour * profile.slices / 7,
        gfd_products=tuple(f"{p}-MIG-{profile.name}" for p in gpu.gfd_products[:1]),
        mig_profiles=(),
        nvlink_domain_gpus=1,
    )


def tier_candidates(s: Serving, ctx: CheckContext) -> tuple[list[GpuSpec], bool]:
    """(GPUs the pod may land on, whether it is pinned). A MIG resource pins the slice itself."""
    pin = s.workload.tier
    if s.container.mig_profile:
        hit = ctx.gpus.mig_resource(s.container.mig_profile, pin.gpus[0] if pin.pinned else None)
        if hit is not None and hit[0] is not None:
            return [mig_tier(hit[0], hit[1])], True
    if pin.pinned:
        return list(pin.gpus), True
    return list(ctx.recommendable), False


def fit_findings(s: Serving, ctx: CheckContext) -> tuple[list[Finding], Fitting]:
    """oom-risk findings, and the tiers that fit (by id, with their estimates) for the checks after."""
    candidates, pinned = tier_candidates(s, ctx)
    if not pinned:
        fits = _fitting_tiers(s, candidates)
        return _unpinned(s, ctx, candidates, fits, [g for g in candidates if g.id not in fits]), fits
    estimates: dict[str, MemoryEstimate] = {}
    fitting: Fitting = {}
    failing: list[GpuSpec] = []
    for gpu in candidates:
        est = estimates[gpu.id] = s.estimate(gpu)
        if est.fits:
            fitting[gpu.id] = (gpu, est)
        else:
            failing.append(gpu)
    out: list[Finding] = []
    if not fitting:
        gpu = max(failing, key=lambda g: g.usable_gib)  # the best chance among the allowed tiers
        est = estimates[gpu.id]
        out.append(_oom_finding(s, ctx, gpu, est, _deny_severity(s, est, gpu)))
    else:
        for gpu in failing:
            out.append(
                _oom_finding(
                    s,
                    ctx,
                    gpu,
                    estimates[gpu.id],
                    Severity.WARNING,
                    suffix="The gpuplace extender keeps it off these nodes.",
                )
            )
    return out, fitting


def _fitting_tiers(s: Serving, candidates: list[GpuSpec]) -> Fitting:
    """The candidates that fit, largest first so that the weights per GPU (the same on every tier at one TP
    and precision) are known early: a tier with less memory in all is passed over without an estimate."""
    fitting: Fitting = {}
    weights = 0.0
    for gpu in sorted(candidates, key=lambda g: -g.usable_gib):
        if gpu.usable_gib * GIB <= weights:
            break  # this and every smaller tier
        est = s.estimate(gpu)
        weights = est.weights_bytes
        if est.fits:
            fitting[gpu.id] = (gpu, est)
    return {gpu.id: fitting[gpu.id] for gpu in candidates if gpu.id in fitting}  # in the candidates' order


# For an image whose tag names no release (latest, sha-..., NGC builds), the last release before the
# defaults that matter here changed: SGLang's --mem-fraction-static heuristic (0.5.3) and TGI's automatic
# --max-total-tokens and wiggle room (3.0). A denial must hold under both.
_PREVIOUS_SEMANTICS: dict[str, tuple[int, ...]] = {"sglang": (0, 5, 2), "tgi": (2, 4, 1)}


def _deny_severity(s: Serving, est: MemoryEstimate, gpu: GpuSpec | None = None) -> Severity:
    """Never deny on a guess: a size read from the model name denies only when the weights alone clearly
    overflow (parameter count is reliable to a few percent; the attention shape is not). Nor on a default
    the running release may not have: with no version in the image tag, an engine whose defaults changed
    between releases is denied only when the previous release's defaults fail too."""
    if s.resolved_estimated:
        return Severity.ERROR if est.weights_bytes > 1.1 * est.budget_bytes else Severity.WARNING
    previous = _PREVIOUS_SEMANTICS.get(s.engine.engine)
    if gpu is not None and previous is not None and s.engine.version is None:
        older = replace(s, engine=replace(s.engine, version=previous))
        if older.estimate(gpu, tp=est.setup.tp).fits:
            return Severity.WARNING
    return Severity.ERROR


def _unpinned(
    s: Serving,
    ctx: CheckContext,
    candidates: list[GpuSpec],
    fitting: Fitting,
    failing: list[GpuSpec],
) -> list[Finding]:
    where = "in the cluster" if ctx.cluster_tiers else "in the catalog"
    if not fitting:
        best = max(candidates, key=lambda g: g.usable_gib)
        best_est = s.estimate(best)
        return [
            _oom_finding(
                s, ctx, best, best_est, _deny_severity(s, best_est, best), prefix=f"no GPU {where} holds it;"
            )
        ]
    if not failing:
        return []
    cheapest = min((gpu for gpu, _ in fitting.values()), key=lambda g: g.price_per_hour)
    small = ", ".join(sorted({g.id for g in failing})[:4]) + (", ..." if len(failing) > 4 else "")
    detail = (
        f"pins no GPU tier and would not fit {small} at tp={s.engine.tp}. Cheapest that fits: "
        f"{cheapest.id}; pin nvidia.com/gpu.product={gpu_label(cheapest)}."
    )
    return [
        finding(
            s,
            Code.OOM_RISK,
            detail,
            Severity.WARNING,
            fitting_tiers=sorted(fitting),
            cheapest_tier=cheapest.id,
        )
    ]


def _oom_finding(
    s: Serving,
    ctx: CheckContext,
    gpu: GpuSpec,
    est: MemoryEstimate,
    severity: Severity,
    prefix: str = "",
    suffix: str = "",
) -> Finding:
    setup = est.setup
    frac = f"{est.usable_bytes / 2**30:.1f} x {setup.mem_fraction:.2f}"
    if not est.weights_fit:
        what = (
            f"needs {gib(est.weights_bytes)} GiB/GPU for weights at tp={setup.tp}; {gpu_label(gpu)} gives "
            f"{gib(est.budget_bytes)} GiB ({frac})."
        )
    elif not est.sequence_fits:
        need = est.kv_bytes_per_token * setup.max_model_len
        what = (
            f"has {gib(max(est.kv_bytes, 0))} GiB/GPU for KV after {gib(est.weights_bytes)} GiB weights "
            f"on {gpu_label(gpu)} at tp={setup.tp}; {named(s, 'max_model_len')} {setup.max_model_len} "
            f"needs {gib(need)} GiB."
        )
    else:
        what = (
            f"{named(s, 'mem_fraction')} {setup.mem_fraction:.2f} leaves {gib(est.headroom_bytes)} GiB of "
            f"{gpu_label(gpu)} for CUDA context and graphs; they need {gib(est.outside_budget_bytes)} GiB."
        )
    remedy = suggest_fix(s, ctx, gpu, est)
    detail = " ".join(part for part in (prefix, what, remedy, suffix) if part)
    return finding(s, Code.OOM_RISK, detail, severity, tier=gpu.id, **est.as_figures())


def suggest_fix(s: Serving, ctx: CheckContext, gpu: GpuSpec, est: MemoryEstimate) -> str:
    """The cheapest concrete changes that make it fit: a shorter context, FP8 KV, more TP, another tier."""
    setup = est.setup
    if est.weights_fit and est.sequence_fits:
        headroom_gib = (est.usable_bytes - est.outside_budget_bytes) / 2**30
        return f"Use {fix(s, 'mem_fraction', f'{headroom_gib / setup.usable_gib:.2f}', '<= ')}."
    options: list[str] = []
    kv_limited = est.weights_fit and not est.sequence_fits
    longest = _longest_fitting_len(s, gpu, est) if kv_limited else 0
    if longest > 0:
        options.append(fix(s, "max_model_len", longest, "<= "))
    if (
        kv_limited
        and setup.kv_dtype not in {"fp8", "int8"}
        and _fits_with(s, gpu, Precision(s.precision.weights if s.precision else "bf16", "fp8"))
    ):
        options.append(fix(s, "kv_cache_fp8"))
    tp_fix = _more_tp(s, gpu, setup.tp)
    other = _cheapest_other_tier(s, ctx, gpu, est)
    other = other if other is not None and other.id != gpu.id else None
    # Splitting over more of the pinned GPUs is no advice when another tier holds it at the same tp for
    # no more money (an older card x 2 against one current card).
    if tp_fix and not (other and other.price_per_hour * setup.tp <= gpu.price_per_hour * tp_fix):
        options.append(f"{fix(s, 'tp', tp_fix)} on {gpu_label(gpu)}")
    if other is not None:
        options.append(f"pin {gpu_label(other)}" + (f" at tp={setup.tp}" if setup.tp > 1 else ""))
    if (
        not kv_limited
        and s.precision
        and s.precision.weights in {"bf16", "fp16"}
        and _fits_with(s, gpu, Precision("fp8", "fp8"))
    ):
        options.append("an FP8 build")
    if not options:
        return "No catalog GPU holds it at up to tp=8; use a smaller or quantized model, or multi-node PP."
    first, *rest = options[:3]
    if not first.startswith("pin "):
        return "Use " + " or ".join(options[:3]) + "."
    # "Pin X or use an FP8 build.", never "Use pin X".
    others = "".join(f" or {o}" if o.startswith("pin ") else f" or use {o}" for o in rest)
    return f"Pin {first[4:]}{others}."


def _longest_fitting_len(s: Serving, gpu: GpuSpec, est: MemoryEstimate) -> int:
    """The longest max_model_len that fits. The KV pool is that length for most engines; TGI's warm-up
    batch holds max_total_tokens per request, so its pool shrinks as the length grows: searched."""
    if est.setup.engine != "tgi":
        return max(est.kv_tokens, 0)
    low, high = 0, est.setup.max_model_len
    while high - low > 1:
        mid = (low + high) // 2
        if replace(s, explicit_max_model_len=mid).estimate(gpu, tp=est.setup.tp).fits:
            low = mid
        else:
            high = mid
    return low


def _more_tp(s: Serving, gpu: GpuSpec, tp: int) -> int | None:
    arch = s.arch
    assert arch is not None
    for candidate in (2, 4, 8):
        if candidate <= tp or (arch.heads % candidate and not s.resolved_estimated):
            continue
        if s.estimate(gpu, tp=candidate).fits:
            return candidate
    return None


def _cheapest_other_tier(
    s: Serving, ctx: CheckContext, current: GpuSpec, est: MemoryEstimate
) -> GpuSpec | None:
    # Tiers come cheapest first: the first that fits is the cheapest. At the same TP and precision every
    # tier holds the same weights per GPU, so one with less memory in all cannot fit: no estimate for it.
    for g in ctx.recommendable:
        if (
            g.id != current.id
            and g.usable_gib * GIB > est.weights_bytes
            and s.estimate(g, tp=est.setup.tp).fits
        ):
            return g
    return None


def _fits_with(s: Serving, gpu: GpuSpec, prec: Precision) -> bool:
    saved = s.precision
    try:
        s.precision = prec
        return s.estimate(gpu).fits
    finally:
        s.precision = saved


def context_capped(s: Serving, gpu: GpuSpec, est: MemoryEstimate) -> list[Finding]:
    """The engine starts with a KV pool shorter than max_model_len and refuses longer requests at run
    time (SGLang: max_req_input_len = min(context_len, pool) - 6, longer inputs get an error or, with
    --allow-auto-truncate, are cut, managers/utils.py validate_input_length; TGI 3 without
    --max-total-tokens sets it to the pool; TensorRT-LLM 1.x lowers max_seq_len to it). A warning: it
    starts and serves."""
    if not est.context_capped:
        return []
    setup = est.setup
    longest = est.max_request_tokens
    if setup.engine == "sglang":
        what = (
            f"SGLang starts with a {est.kv_tokens}-token KV pool on {gpu_label(gpu)}, under "
            f"{named(s, 'max_model_len')} {setup.max_model_len}: it refuses requests over {longest} tokens."
        )
    elif setup.engine == "trtllm":
        what = (
            f"TensorRT-LLM lowers max_seq_len to its {est.kv_tokens}-token KV pool on {gpu_label(gpu)}, "
            f"under {named(s, 'max_model_len')} {setup.max_model_len}: it refuses longer requests."
        )
    else:
        what = (
            f"TGI caps max total tokens at its {est.kv_tokens}-token KV pool on {gpu_label(gpu)}, under the "
            f"model's {setup.max_model_len}: it refuses longer requests."
        )
    fixes = [fix(s, "max_model_len", longest, "<= ")]
    if setup.kv_dtype not in {"fp8", "int8"}:
        fixes.append(fix(s, "kv_cache_fp8"))
    fixes.append(fix(s, "tp", setup.tp * 2) if setup.tp < MAX_TP else "a larger tier")
    detail = f"{what} Use {', '.join(fixes[:-1])} or {fixes[-1]}."
    return [
        finding(
            s,
            Code.KV_CACHE_STARVED,
            detail,
            tier=gpu.id,
            max_request_tokens=longest,
            **est.as_figures(),
        )
    ]


def sglang_outside(s: Serving, gpu: GpuSpec, est: MemoryEstimate) -> list[Finding]:
    """SGLang keeps activations, CUDA graphs and its request table outside mem_fraction_static: a fraction
    too high for them starts the pool, then runs out of memory capturing graphs or on a long prefill. A
    warning: only the terms SGLang's source fixes are counted (memory.sglang_outside_needs)."""
    setup = est.setup
    if setup.engine != "sglang" or s.arch is None or not est.fits:
        return []
    free = sglang_free_before_load(setup)
    room = free * (1 - setup.mem_fraction)
    need = sglang_outside_needs(s.arch, setup, est.kv_tokens, s.explicit_max_num_seqs)
    if room >= need:
        return []
    ceiling = 1 - need / free
    detail = (
        f"{named(s, 'mem_fraction')} {setup.mem_fraction:.2f} leaves {gib(room)} GiB of {gpu_label(gpu)} "
        f"for activations, CUDA graphs and the request table; they need {gib(need)} GiB. "
        f"Use {fix(s, 'mem_fraction', f'{max(math.floor(ceiling * 100) / 100, 0.0):.2f}', '<= ')}."
    )
    return [finding(s, Code.OOM_RISK, detail, Severity.WARNING, tier=gpu.id, **est.as_figures())]


def kv_starved(s: Serving, ctx: CheckContext, gpu: GpuSpec, est: MemoryEstimate) -> list[Finding]:
    typical = ctx.settings.typical_request_tokens
    concurrency = s.explicit_max_num_seqs or ctx.settings.expected_concurrency
    need = concurrency * min(typical, est.setup.max_model_len)
    if est.kv_tokens >= need:
        return []
    holds = est.kv_tokens // max(min(typical, est.setup.max_model_len), 1)
    fixes = [fix(s, "max_num_seqs", max(holds, 1))]
    if est.setup.kv_dtype not in {"fp8", "int8"}:
        fixes.append(fix(s, "kv_cache_fp8"))
    fixes.append(fix(s, "tp", est.setup.tp * 2) if est.setup.tp < MAX_TP else "a larger tier")
    # Say whether the concurrency is the pod's own setting or gpuplace's assumption (none is set).
    source = (
        f"{named(s, 'max_num_seqs')} {concurrency}"
        if s.explicit_max_num_seqs
        else f"assumed concurrency {concurrency} (none set)"
    )
    detail = (
        f"{gpu_label(gpu)} holds {est.kv_tokens} KV tokens, {holds} x {typical}-token requests; {source} "
        f"preempts. Use {', '.join(fixes)}."
    )
    return [
        finding(
            s,
            Code.KV_CACHE_STARVED,
            detail,
            tier=gpu.id,
            requests_held=holds,
            concurrency=concurrency,
            **est.as_figures(),
        )
    ]


def with_tp(s: Serving, tp: int) -> Serving:
    return replace(s, engine=replace(s.engine, tp=tp))
