"""Is the tier right for the job? tier-misplacement, overprovisioned, batch-over-tiered.

Every finding here states the money: the monthly cost of the GPUs as configured and of the recommendation,
from the catalog's reference prices (override them in the config to match your contract).
"""

from __future__ import annotations

from placement.advice import fix
from placement.catalog import GpuSpec, MigProfile
from placement.checks.fit import finding, gpu_label
from placement.checks.settings import CheckContext
from placement.findings import Code, Finding, gib
from placement.memory import GIB, MemoryEstimate
from placement.serving import Serving


def monthly(gpu: GpuSpec, gpus: int, ctx: CheckContext) -> float:
    return gpu.price_per_hour * gpus * ctx.settings.hours_per_month


def money(amount: float) -> str:
    return f"${amount:,.0f}/mo"


def _replicas(s: Serving) -> int:
    return max(s.workload.replicas or 1, 1)


def holds_with_margin(s: Serving, ctx: CheckContext, est: MemoryEstimate, current: MemoryEstimate) -> bool:
    """A recommendation must not trade an OOM for a starved cache: it holds max_model_len with margin and
    at least the KV the current tier gives up to the expected concurrency."""
    if not est.fits:
        return False
    typical = min(ctx.settings.typical_request_tokens, est.setup.max_model_len)
    concurrency = s.explicit_max_num_seqs or ctx.settings.expected_concurrency
    wanted = min(current.kv_tokens, concurrency * typical)
    return est.kv_tokens >= max(ctx.settings.tier_margin * est.setup.max_model_len, wanted)


def cheaper_tier(
    s: Serving, ctx: CheckContext, gpu: GpuSpec, current: MemoryEstimate
) -> tuple[GpuSpec, MemoryEstimate] | None:
    """The cheapest smaller tier that serves the same config (same TP) with margin, if at least 10% cheaper.

    Only tiers with less memory count: a same-size GPU of an older generation is a speed-for-money trade
    the team may have made on purpose, not a misplacement."""
    for other in _cheaper_candidates(ctx, gpu, s.engine.tp, s.precision.weights if s.precision else "bf16"):
        # At the same TP and precision every tier holds the same weights per GPU: a tier whose whole memory
        # is less cannot fit, and is passed over without an estimate.
        if other.usable_gib * GIB <= current.weights_bytes:
            continue
        est = s.estimate(other)
        if holds_with_margin(s, ctx, est, current):
            return other, est  # cheapest first: the first that holds is the answer
    return None


def _cheaper_candidates(ctx: CheckContext, gpu: GpuSpec, tp: int, weights: str) -> tuple[GpuSpec, ...]:
    """Recommendable tiers, cheapest first, at least 10% cheaper than `gpu`, with less memory, the same
    interconnect for `tp` and the same precision. Remembered per context: it depends on the catalog only,
    and a cluster pins a few tiers at a few TP sizes."""
    key = ("cheaper", gpu.id, tp, weights)  # an id names one tier within a context (MIG slices too)
    hit = ctx.tier_memo.get(key)
    if hit is None:
        hit = ctx.tier_memo[key] = tuple(
            other
            for other in ctx.recommendable
            if other.price_per_hour < 0.9 * gpu.price_per_hour
            and other.memory_gib < gpu.memory_gib
            and _same_interconnect(tp, gpu, other)
            and _same_precision(weights, other)
        )
    return hit


def _same_interconnect(tp: int, current: GpuSpec, other: GpuSpec) -> bool:
    """Tensor parallelism over PCIe is not the same config as over NVLink: with tp > 1, a recommendation
    must keep the TP group inside one NVLink domain if the current tier does."""
    if tp <= 1:
        return True
    return other.nvlink_domain_gpus >= tp or current.nvlink_domain_gpus < tp


def _same_precision(weights: str, other: GpuSpec) -> bool:
    """bf16 weights on a GPU without bf16 (Volta, Turing) run converted to fp16: not the same config.
    FP8 weights need FP8 tensor cores to run as configured."""
    if weights == "bf16":
        return other.supports_bf16
    if weights == "fp8":
        return other.fp8  # Ampere runs FP8 checkpoints only as slower weight-only kernels
    return True


def tier_findings(s: Serving, ctx: CheckContext, gpu: GpuSpec, est: MemoryEstimate) -> list[Finding]:
    """Findings for a workload pinned to `gpu` (the cheapest allowed tier that fits)."""
    out: list[Finding] = []
    gpus = s.gpus_per_replica * _replicas(s)
    cheaper = cheaper_tier(s, ctx, gpu, est)
    if cheaper is not None:
        other, other_est = cheaper
        now, then = monthly(gpu, gpus, ctx), monthly(other, gpus, ctx)
        top = gpu.price_per_hour >= ctx.settings.top_tier_price_per_hour
        code = Code.BATCH_OVER_TIERED if s.workload.batch and top else Code.TIER_MISPLACEMENT
        kind = "batch job" if s.workload.batch else f"{gib(est.weights_bytes)} GiB/GPU of weights"
        detail = (
            f"{kind} on {gpus} x {gpu_label(gpu)} ({money(now)}); {gpu_label(other)} holds it "
            f"({other_est.kv_tokens} KV tokens/GPU) for {money(then)}. Pin gpu.product={gpu_label(other)}."
        )
        out.append(
            finding(
                s,
                code,
                detail,
                tier=gpu.id,
                recommended_tier=other.id,
                monthly_cost=round(now),
                recommended_monthly_cost=round(then),
                **est.as_figures(),
            )
        )
    out.extend(idle_gpus(s, ctx, gpu))
    out.extend(_excess_tp(s, ctx, gpu, est))
    if cheaper is None:
        out.extend(_small_share(s, ctx, gpu, est))
    return out


def idle_gpus(s: Serving, ctx: CheckContext, gpu: GpuSpec | None) -> list[Finding]:
    """GPUs the pod requests that tp x pp x dp leaves unused. Needs no model: it runs for unknown models
    too (`gpu` None: the tier, and so the cost, is not known)."""
    used = s.engine.tp * s.engine.pp * max(s.engine.dp, 1)
    if s.engine.engine == "annotations" or used >= s.gpus_per_replica or s.container.mig_profile:
        return []
    idle = s.gpus_per_replica - used
    cost = monthly(gpu, idle * _replicas(s), ctx) if gpu is not None else None
    detail = (
        f"requests {s.gpus_per_replica} GPUs{_group(s)} but tp={s.engine.tp} x pp={s.engine.pp} uses {used}; "
        f"{idle} sit idle{f' ({money(cost)})' if cost is not None else ''}. {_idle_fix(s, used)}"
    )
    return [
        finding(
            s,
            Code.OVERPROVISIONED,
            detail,
            tier=gpu.id if gpu is not None else None,
            gpus=s.gpus_per_replica,
            used_gpus=used,
            wasted_monthly_cost=round(cost) if cost is not None else None,
        )
    ]


def _group(s: Serving) -> str:
    return f" over {s.workload.group_size} pods" if s.workload.group_size > 1 else ""


def _idle_fix(s: Serving, used: int) -> str:
    """One pod: fewer GPUs on it. A multi-node group: fewer pods of the same GPUs, if that adds up."""
    per_pod = s.container.gpus
    if s.workload.group_size <= 1:
        return f"Set nvidia.com/gpu: {used}."
    if per_pod and used % per_pod == 0:
        return f"Use {used // per_pod} pods of {per_pod} GPUs per group."
    return f"Request {used} GPUs per group."


def _excess_tp(s: Serving, ctx: CheckContext, gpu: GpuSpec, est: MemoryEstimate) -> list[Finding]:
    """More tensor parallelism than the model needs: the fewest GPUs that hold it with margin (a 2B model
    on tp=8 is "1 GPU", not "try tp=4")."""
    tp = s.engine.tp
    if tp < 2 or s.workload.group_size > 1 or s.arch is None:
        return []
    found = _fewest_gpus(s, ctx, gpu, est)
    if found is None:
        return []
    fewer, smaller = found
    saved = monthly(gpu, (tp - fewer) * _replicas(s), ctx)
    gpus = f"{fewer} GPU" + ("s" if fewer > 1 else "")
    detail = (
        f"tp={tp} on {gpu_label(gpu)}, but {gpus} hold{'s' if fewer == 1 else ''} it "
        f"({gib(smaller.weights_bytes)} GiB weights, {smaller.kv_tokens} KV tokens/GPU); {money(saved)} for "
        f"latency you may not need. Use {gpus}: {fix(s, 'tp', fewer)}, nvidia.com/gpu: {fewer}."
    )
    return [
        finding(
            s,
            Code.OVERPROVISIONED,
            detail,
            tier=gpu.id,
            recommended_tp=fewer,
            saved_monthly_cost=round(saved),
            **est.as_figures(),
        )
    ]


def _fewest_gpus(
    s: Serving, ctx: CheckContext, gpu: GpuSpec, est: MemoryEstimate
) -> tuple[int, MemoryEstimate] | None:
    """The smallest tp (halving from the current one, dividing the heads) that still holds the model
    with margin, and its estimate; None when tp / 2 does not already hold it."""
    assert s.arch is not None
    best: tuple[int, MemoryEstimate] | None = None
    candidate = s.engine.tp // 2
    while candidate >= 1 and not s.arch.heads % candidate:
        smaller = s.estimate(gpu, tp=candidate)
        if not holds_with_margin(s, ctx, smaller, est):
            break
        best = (candidate, smaller)
        candidate //= 2
    return best


def needed_bytes(s: Serving, ctx: CheckContext, est: MemoryEstimate) -> float:
    """Memory the workload really uses: weights, activations, and KV for its expected concurrency."""
    typical = min(ctx.settings.typical_request_tokens, est.setup.max_model_len)
    concurrency = s.explicit_max_num_seqs or ctx.settings.expected_concurrency
    kv_tokens = max(est.setup.max_model_len, concurrency * typical)
    return est.weights_bytes + est.activation_bytes + est.non_torch_bytes + kv_tokens * est.kv_bytes_per_token


def _small_share(s: Serving, ctx: CheckContext, gpu: GpuSpec, est: MemoryEstimate) -> list[Finding]:
    need = needed_bytes(s, ctx, est)
    share = need / est.usable_bytes
    if share >= ctx.settings.overprovisioned_share or s.engine.tp > 1:
        return []
    mig = smallest_mig(gpu, need)
    remedy = (
        f"use MIG {mig.name} ({mig.memory_gib:g} GiB)" if mig else "pack it with others or use a smaller tier"
    )
    # The concurrency behind the need is the pod's own setting, or gpuplace's assumption: say which.
    concurrency = s.explicit_max_num_seqs or ctx.settings.expected_concurrency
    assumed = "" if s.explicit_max_num_seqs else " (assumed)"
    detail = (
        f"needs ~{gib(need)} GiB of {gpu_label(gpu)}'s {gib(est.usable_bytes)} GiB ({share:.0%}) at "
        f"{concurrency}{assumed} x {ctx.settings.typical_request_tokens}-token requests; {remedy}."
    )
    return [
        finding(
            s,
            Code.OVERPROVISIONED,
            detail,
            tier=gpu.id,
            needed_gib=round(need / GIB, 1),
            share=round(share, 3),
            mig_profile=mig.name if mig else None,
        )
    ]


def smallest_mig(gpu: GpuSpec, need_bytes: float) -> MigProfile | None:
    """The smallest MIG slice of this GPU with room for the need (with 10% for the engine's own margin)."""
    fitting = [m for m in gpu.mig_profiles if m.memory_gib * GIB * 0.9 >= need_bytes]
    return min(fitting, key=lambda m: m.memory_gib, default=None)
