"""Every deploy-time check, run on Kubernetes objects. The webhook and `gpuplace check` both call
`check_objects` (or `check_workload` / `check_autoscaler` one at a time); nothing else decides findings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from placement.autoscaling import Autoscaler, extract_autoscaler, is_autoscaler
from placement.checks.autoscaling import autoscaler_findings
from placement.checks.claims import claim_object_findings
from placement.checks.fit import (
    config_invalid,
    context_capped,
    fit_findings,
    kv_starved,
    sglang_outside,
    tier_invalid,
    unknown_model,
)
from placement.checks.settings import CheckContext, CheckSettings
from placement.checks.throughput import batch_size, low_throughput
from placement.checks.tier import idle_gpus, tier_findings
from placement.coverage import NOT_JUDGED, NOT_JUDGED_LEVEL, UNREADABLE, Coverage, coverage
from placement.dra import ClaimIndex, is_claim_object
from placement.findings import Code, Finding, Severity, apply_severity_overrides
from placement.serving import Serving, resolve
from placement.workload import Workload, WorkloadError, extract

__all__ = [
    "CheckContext",
    "CheckResult",
    "CheckSettings",
    "check_autoscaler",
    "check_objects",
    "check_workload",
    "claim_object_findings",
    "servings",
]


def servings(workload: Workload, ctx: CheckContext) -> list[Serving]:
    """Every GPU container of the workload and of its parts (a CRD's other serving components)."""
    if not workload.parts:
        return [resolve(workload, c, ctx.models) for c in workload.gpu_containers]
    return [resolve(part, c, ctx.models) for part in workload.components for c in part.gpu_containers]


def check_workload(workload: Workload, ctx: CheckContext) -> list[Finding]:
    if workload.variants:
        return apply_severity_overrides(check_variants(workload, ctx), ctx.settings.severity_overrides)
    out: list[Finding] = [_not_judged(workload)] if workload.not_judged_reason else []
    for s in servings(workload, ctx):
        out.extend(check_serving(s, ctx))
    return apply_severity_overrides(out, ctx.settings.severity_overrides)


def _not_judged(workload: Workload) -> Finding:
    return Finding(
        Code.UNKNOWN_MODEL,
        workload.ref,
        detail=f"not judged: {workload.not_judged_detail}.",
        figures={NOT_JUDGED: workload.not_judged_reason},
    )


def check_variants(workload: Workload, ctx: CheckContext) -> list[Finding]:
    """DRA firstAvailable: the allocator takes the first choice it can satisfy, so the pod is denied only
    when no choice can run it; a choice that cannot is a warning that names it."""
    judged = [(label, check_workload(variant, ctx)) for label, variant in workload.variants]
    failing = [label for label, found in judged if any(f.effective_severity == Severity.ERROR for f in found)]
    all_fail = len(failing) == len(judged)
    out: list[Finding] = []
    seen: set[str] = set()
    for label, found in judged:
        for f in found:
            # The choice goes first: a message is cut at 256 characters, and the choice must survive.
            if f.effective_severity == Severity.ERROR and not all_fail:
                f = replace(f, detail=f"(firstAvailable {label}; another choice fits) {f.detail}",
                            severity=Severity.WARNING)
            elif label in failing and len(judged) > 1:
                f = replace(f, detail=f"(firstAvailable {label}) {f.detail}")
            if f.message not in seen:
                seen.add(f.message)
                out.append(f)
    return out


def check_serving(s: Serving, ctx: CheckContext) -> list[Finding]:
    if s.resolved is None:
        return _without_model(s, ctx)
    invalid = config_invalid(s) or tier_invalid(s, ctx)
    for f in invalid:
        if f.effective_severity == Severity.ERROR:
            return invalid  # memory figures of a config the engine rejects would only add noise
    pin = s.workload.tier
    if pin.reason and not pin.pinned:
        return [*invalid, _unknown_tier(s)]
    if pin.unknown_values and not pin.pinned and not s.container.mig_profile:
        return [*invalid, _unknown_tier(s)]  # pinned to a GPU gpuplace does not know: no judgement on a guess
    out, fitting = fit_findings(s, ctx)
    out = invalid + out
    if s.resolved_estimated:
        out.append(_estimated_note(s))
    if not fitting or not (s.workload.tier.pinned or s.container.mig_profile):
        return out
    gpu, est = (
        next(iter(fitting.values()))  # the common case: one pinned tier
        if len(fitting) == 1
        else min(fitting.values(), key=lambda ge: ge[0].price_per_hour)
    )
    if not s.resolved_estimated:  # the KV shape of a name guess is another model's: no verdict on it
        out.extend(context_capped(s, gpu, est) or kv_starved(s, ctx, gpu, est))
        out.extend(sglang_outside(s, gpu, est))
    out.extend(tier_findings(s, ctx, gpu, est))
    out.extend(batch_size(s, ctx, gpu, est))
    out.extend(low_throughput(s, ctx, gpu))
    return out


def _without_model(s: Serving, ctx: CheckContext) -> list[Finding]:
    """The checks that need no model still run when the model is unknown: what the engine would refuse
    (bad flags, tp x pp over the GPUs) and GPUs that tp x pp leaves idle."""
    invalid = config_invalid(s)
    if any(f.effective_severity == Severity.ERROR for f in invalid):
        return [*invalid, *unknown_model(s)]
    pin = s.workload.tier
    gpu = min(pin.gpus, key=lambda g: g.price_per_hour) if pin.pinned else None
    return [*invalid, *idle_gpus(s, ctx, gpu), *unknown_model(s)]


def _unknown_tier(s: Serving) -> Finding:
    pin = s.workload.tier
    values = ", ".join(pin.unknown_values)
    if pin.reason:
        return Finding(
            Code.UNKNOWN_MODEL,
            s.workload.ref,
            container=s.container.name,
            detail=f"cannot size GPU memory: {pin.reason}.",
            figures={"tier_unknown": pin.reason, NOT_JUDGED: "unknown-tier"},
        )
    return Finding(
        Code.UNKNOWN_MODEL,
        s.workload.ref,
        container=s.container.name,
        detail=f"cannot size GPU memory: {pin.source} value {values} is not in the GPU catalog; add it under "
        f"catalog.gpus in the gpuplace config.",
        figures={"unknown_tiers": list(pin.unknown_values), NOT_JUDGED: "unknown-tier"},
    )


def _estimated_note(s: Serving) -> Finding:
    assert s.arch is not None
    # The engine's default max-model-len is the model's context, which a name does not give.
    context = "" if s.explicit_max_model_len else f", with a guessed {s.arch.context}-token context"
    return Finding(
        Code.UNKNOWN_MODEL,
        s.workload.ref,
        container=s.container.name,
        detail=f"{s.model_name!r} is not in the model catalog; sized as ~{s.arch.params / 1e9:.1f}B "
        f"parameters from its name{context}. Add it to the catalog for exact figures.",
        figures={"params": s.arch.params, "guessed_context": s.arch.context},
    )


TargetLookup = Callable[[Autoscaler], tuple[list[Serving] | None, str]]


def check_autoscaler(a: Autoscaler, lookup: TargetLookup, ctx: CheckContext) -> list[Finding]:
    targets, note = lookup(a)
    return apply_severity_overrides(
        autoscaler_findings(a, targets, ctx, note), ctx.settings.severity_overrides
    )


@dataclass
class CheckResult:
    """Findings and unreadable objects, each with the index of the object in the input."""

    findings: list[tuple[int, Finding]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    # How much of each GPU workload was judged (placement.coverage), by object index.
    coverage: list[tuple[int, Coverage]] = field(default_factory=list)


def check_objects(objects: Sequence[Mapping[str, Any]], ctx: CheckContext) -> CheckResult:
    """All findings for a set of objects; autoscalers are linked to workloads in the same set."""
    result = CheckResult()
    workloads: dict[tuple[str | None, str, str], Workload] = {}
    claims = ClaimIndex(objects)  # DRA: the claim templates and claims the pods name, from the same input
    for index, obj in enumerate(objects):
        try:
            if is_claim_object(obj):
                result.findings.extend((index, f) for f in claim_object_findings(obj, ctx))
                continue
            workload = extract(obj, ctx.gpus, claims.lookup((obj.get("metadata") or {}).get("namespace")))
            if workload is None:
                continue
            workloads[(workload.ref.namespace, workload.ref.kind, workload.ref.name)] = workload
            found = check_workload(workload, ctx)
            result.findings.extend((index, f) for f in found)
            judged = coverage(workload, found)
            if judged is not None:
                result.coverage.append((index, judged))
        except WorkloadError as exc:
            result.errors.append((index, str(exc)))
            result.coverage.append((index, Coverage(NOT_JUDGED_LEVEL, UNREADABLE)))

    def lookup(a: Autoscaler) -> tuple[list[Serving] | None, str]:
        workload = workloads.get((a.ref.namespace, a.target_kind, a.target_name))
        if workload is None:
            return None, f"{a.target_kind}/{a.target_name} is not in the input"
        return servings(workload, ctx), ""

    for index, obj in enumerate(objects):
        if not is_autoscaler(obj):
            continue
        try:
            autoscaler = extract_autoscaler(obj)
        except WorkloadError as exc:
            result.errors.append((index, str(exc)))
            continue
        if autoscaler is not None:
            result.findings.extend((index, f) for f in check_autoscaler(autoscaler, lookup, ctx))
    return result
