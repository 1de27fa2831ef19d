"""Autoscalers against the workload they scale: cold-start and scale-thrashing."""

from __future__ import annotations

from placement.autoscaling import Autoscaler
from placement.checks.settings import CheckContext
from placement.findings import Code, Finding
from placement.serving import Serving


def cold_start_s(targets: list[Serving], ctx: CheckContext) -> tuple[float, float] | None:
    """(seconds, GiB) to bring one replica up: weights at the stated load rate plus engine start-up."""
    sized = [s for s in targets if s.arch is not None and s.precision is not None]
    if not sized:
        return None
    weights = max(s.weights_total_gib() for s in sized)
    return weights / ctx.settings.load_gib_per_s + ctx.settings.startup_overhead_s, weights


def autoscaler_findings(
    a: Autoscaler, targets: list[Serving] | None, ctx: CheckContext, lookup_note: str = ""
) -> list[Finding]:
    """`targets` are the GPU servings of the scaled workload; None when it could not be found."""
    if targets is not None and not targets:
        return []  # scales a workload without GPUs: not ours to judge
    estimate = cold_start_s(targets, ctx) if targets else None
    rate = f"{ctx.settings.load_gib_per_s:g} GiB/s"
    out: list[Finding] = []
    # Why the load time is unknown: the target was not read, or it was and its model is not sized.
    why = lookup_note or ("target not found" if targets is None else "model of the target not sized")
    if estimate is None:
        cold = f"load time unknown ({why})"
        seconds = None
    else:
        seconds, weights = estimate
        cold = (
            f"~{_human(seconds)} ({weights:.1f} GiB of weights at {rate} + "
            f"{ctx.settings.startup_overhead_s:g}s engine start)"
        )
    target = f"{a.target_kind.lower()}/{a.target_name}"
    if a.min_replicas == 0:
        out.append(
            Finding(
                Code.COLD_START,
                a.ref,
                f"scales {target} to zero ({a.min_source}): a request after idle waits {cold}. "
                f"Keep >= 1 replica for online traffic.",
                figures={
                    "cold_start_s": round(seconds) if seconds else None,
                    "min_replicas": a.min_replicas,
                    "target": target,
                },
            )
        )
    if a.scale_down_window_s is None:
        return out
    if seconds is not None and a.scale_down_window_s < seconds:
        out.append(_thrashing(a, target, seconds, f"the {_human(seconds)} a replica takes to come back"))
    elif seconds is None and a.scale_down_window_s < ctx.settings.startup_overhead_s:
        # The target was not read (API off, or the autoscaler applied before its workload) or its model is
        # unknown: the engine start-up alone is the smallest cold start any GPU replica has, whatever model.
        # The fix comes before the reason: a message is cut at 256 characters.
        floor = ctx.settings.startup_overhead_s
        unread = "target not read: " if targets is None else ""
        against = f"the {_human(floor)} engine start-up alone"
        out.append(_thrashing(a, target, floor, against, f" ({unread}{why})"))
    return out


def _thrashing(a: Autoscaler, target: str, seconds: float, against: str, why: str = "") -> Finding:
    assert a.scale_down_window_s is not None
    return Finding(
        Code.SCALE_THRASHING,
        a.ref,
        f"scales {target} down after {a.scale_down_window_s:g}s ({a.window_source}), shorter than "
        f"{against}. Use a window >= {int(seconds * 2)}s{why}.",
        figures={
            "scale_down_window_s": a.scale_down_window_s,
            "cold_start_s": round(seconds),
            "target": target,
        },
    )


def _human(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f} min"
