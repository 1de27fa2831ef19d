"""Findings only a running cluster shows: OOM kills and crash loops that happened, scale events that
happened, GPU nodes billed with nothing on them, GPU pods waiting for GPUs that are free only in pieces.

Pure: every function takes objects already read and the scan's clock. Each finding that costs money
carries `waste_per_day` (USD) in its figures (scan/cost.py adds them up).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from placement.findings import Code, Finding, ObjectRef
from placement.planner.snapshot import SnapNode, Snapshot
from scan.cost import WASTE, Prices, money, per_day
from scan.discovery import GpuPod, ScannedWorkload
from scan.inventory import human_duration, meta, namespace_of, parse_time

CRASH_LOOP_RESTARTS = 3  # restarts that make a crash loop even between CrashLoopBackOff waits
THRASH_EVENTS = 6  # scale events in the window that count as thrashing
THRASH_ZERO_CYCLES = 2  # or this many scale-to-zero cycles


# ---- observed OOM ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Crash:
    pod: str
    container: str
    oom_killed: bool
    restarts: int
    waiting: str  # current waiting reason (CrashLoopBackOff), "" when running
    last_at: datetime | None


def crashes(pod: GpuPod) -> list[Crash]:
    """Containers of the pod whose last termination was OOMKilled, or that crash-loop."""
    out = []
    for cs in (pod.obj.get("status") or {}).get("containerStatuses") or []:
        if not isinstance(cs, Mapping):
            continue
        state, last = cs.get("state") or {}, cs.get("lastState") or {}
        term = last.get("terminated") or state.get("terminated") or {}
        waiting = str((state.get("waiting") or {}).get("reason") or "")
        restarts = int(cs.get("restartCount") or 0)
        oom = term.get("reason") == "OOMKilled"
        if oom or waiting == "CrashLoopBackOff" or restarts >= CRASH_LOOP_RESTARTS:
            out.append(Crash(pod.name, str(cs.get("name") or "?"), oom, restarts, waiting,
                             parse_time(term.get("finishedAt"))))
    return out


VERDICTS = (  # first match wins; short: the whole finding is one line of at most 256 characters
    (Code.OOM_RISK, "oom-risk", "gpuplace predicts oom-risk too (GPU memory)"),
    (Code.CONFIG_INVALID, "config-invalid", "gpuplace: the engine config is invalid"),
    (Code.KV_CACHE_STARVED, "kv-cache-starved", "gpuplace: fits GPU memory, KV cache starved"),
    (Code.UNKNOWN_MODEL, "unknown", "gpuplace cannot size its GPU memory (unknown model)"),
)


def memory_verdict(checks: Sequence[Finding]) -> tuple[str, str]:
    """gpuplace's own memory verdict on the workload, from its deploy-time findings: (key, text)."""
    codes = {f.code for f in checks}
    for code, key, text in VERDICTS:
        if code in codes:
            return key, text
    return "fits", "gpuplace: fits GPU memory, so check the container memory limit"


def observed_oom(w: ScannedWorkload, checks: Sequence[Finding], price_per_hour: float | None
                 ) -> Finding | None:
    found = [(p, c) for p in w.pods for c in crashes(p)]
    if not found:
        return None
    ooms = [c for _, c in found if c.oom_killed]
    looping = {p.key: p for p, c in found if c.waiting == "CrashLoopBackOff"}
    worst = max(found, key=lambda pc: (pc[1].oom_killed, pc[1].restarts))[1]
    what = "OOMKilled" if worst.oom_killed else f"crash-loops ({worst.waiting or 'restarting'})"
    stuck = sum(p.gpus for p in looping.values())
    waste = per_day(price_per_hour, stuck) if price_per_hour and stuck else None
    cost = f", holding {stuck} GPUs ({money(waste)}/day)" if waste else ""
    key, verdict = memory_verdict(checks)
    detail = (f"pod {worst.pod}/{worst.container} {what}, {worst.restarts} restarts; {len(looping)} of "
              f"{len(w.pods)} pods in CrashLoopBackOff{cost}. {verdict}.")
    return Finding(Code.OBSERVED_OOM, w.ref, detail, container=None, figures={
        "oom_killed": len(ooms), "crash_looping_pods": len(looping), "restarts": worst.restarts,
        "last_terminated": worst.last_at.isoformat() if worst.last_at else None,
        "gpus_stuck": stuck, "memory_verdict": key, WASTE: waste})


# ---- observed thrashing ------------------------------------------------------------------------------------
SCALE_REASONS = frozenset({"SuccessfulRescale", "ScalingReplicaSet", "KEDAScaleTargetActivated",
                           "KEDAScaleTargetDeactivated"})
_TO_ZERO = re.compile(r"(New size: 0;|\bto 0\b)")
_UP = re.compile(r"(Scaled up|KEDAScaleTargetActivated)")


@dataclass(frozen=True)
class ScaleActivity:
    events: int
    ups: int
    to_zero: int
    sources: tuple[str, ...]  # kind/name of the objects the events were about


def _event_time(ev: Mapping[str, Any]) -> datetime | None:
    series = ev.get("series") or {}
    return (parse_time(series.get("lastObservedTime")) or parse_time(ev.get("lastTimestamp"))
            or parse_time(ev.get("eventTime")) or parse_time(ev.get("firstTimestamp"))
            or parse_time(meta(ev).get("creationTimestamp")))


def _event_count(ev: Mapping[str, Any]) -> int:
    series = ev.get("series") or {}
    return max(1, int(series.get("count") or ev.get("count") or 1))


class EventIndex:
    """Scale events in the window, by (namespace, kind, name) of the object they are about."""

    def __init__(self, events: Iterable[Mapping[str, Any]], now: datetime, window_s: float) -> None:
        self._by: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
        for ev in events:
            if ev.get("reason") not in SCALE_REASONS:
                continue
            t = _event_time(ev)
            if t is None or (now - t).total_seconds() > window_s:
                continue
            inv = ev.get("involvedObject") or ev.get("regarding") or {}
            key = (str(inv.get("namespace") or namespace_of(ev)), str(inv.get("kind")), str(inv.get("name")))
            self._by.setdefault(key, []).append(ev)

    def activity(self, namespace: str, objects: Iterable[tuple[str, str]]) -> ScaleActivity:
        """Scale activity of a workload from the events about it and its owners and autoscalers. One
        scaling shows up twice (the autoscaler's SuccessfulRescale and the Deployment's
        ScalingReplicaSet): the Deployment's events, which say up or down, win when there are any."""
        found = {(kind, name): self._by.get((namespace, kind, name), []) for kind, name in objects}
        found = {k: v for k, v in found.items() if v}
        if any(kind == "Deployment" for kind, _ in found):
            found = {k: v for k, v in found.items() if k[0] == "Deployment"}
        events = ups = zero = 0
        for evs in found.values():
            for ev in evs:
                n, text = _event_count(ev), f"{ev.get('reason')} {ev.get('message') or ''}"
                down = bool(_TO_ZERO.search(text)) or ev.get("reason") == "KEDAScaleTargetDeactivated"
                events += n
                zero += n if down else 0
                ups += n if _UP.search(text) or (ev.get("reason") == "SuccessfulRescale" and not down) else 0
        return ScaleActivity(events, ups, zero, tuple(f"{k.lower()}/{n}" for k, n in sorted(found)))


def observed_thrashing(w: ScannedWorkload, act: ScaleActivity, window_s: float, cold_start_s: float,
                       gpus_per_replica: int, price_per_hour: float | None) -> Finding | None:
    if act.events < THRASH_EVENTS and act.to_zero < THRASH_ZERO_CYCLES:
        return None
    # Each scale-up pays a cold start of a whole replica's GPUs before it serves a token.
    cold_gpu_h = act.ups * gpus_per_replica * cold_start_s / 3600
    waste = round(price_per_hour * cold_gpu_h * 86400 / window_s, 2) if price_per_hour else None
    cost = f"; ~{cold_gpu_h:.1f} GPU-hours of cold start ({money(waste)}/day at this rate)" if waste else ""
    detail = (f"{act.events} scale events in the last {human_duration(window_s)} "
              f"({act.ups} up, {act.to_zero} to zero) from {', '.join(act.sources)}; each scale-up loads "
              f"for ~{human_duration(cold_start_s)}{cost}. Lengthen the scale-down window or keep a replica.")
    return Finding(Code.OBSERVED_THRASHING, w.ref, detail, figures={
        "scale_events": act.events, "scale_ups": act.ups, "scale_to_zero": act.to_zero,
        "window_s": window_s, "cold_start_s": round(cold_start_s), WASTE: waste})


# ---- dark capacity -----------------------------------------------------------------------------------------
def dark_capacity(nodes: Mapping[str, tuple[SnapNode, dict[str, Any]]], pods: Sequence[GpuPod],
                  prices: Prices, now: datetime) -> list[Finding]:
    """GPU nodes with no running GPU pod: since the node came up or its last GPU pod ended."""
    busy = {p.node for p in pods if p.bound}
    ended: dict[str, datetime] = {}
    for p in pods:
        if p.node and not p.bound and (t := _finished(p.obj)) and (p.node not in ended or t > ended[p.node]):
            ended[p.node] = t
    out = []
    for name in sorted(nodes):
        spec, obj = nodes[name]
        if name in busy:
            continue
        created = parse_time(meta(obj).get("creationTimestamp"))
        since = max([t for t in (created, ended.get(name)) if t], default=None)
        price = prices.per_hour(spec.model)
        waste = per_day(price, spec.gpu_count) if price is not None else None
        age = (f" since {since:%Y-%m-%dT%H:%MZ} ({human_duration((now - since).total_seconds())})"
               if since else "")
        cost = f"; {money(waste)}/day billed for nothing" if waste is not None else "; price unknown"
        cordon = " (cordoned)" if not spec.schedulable else ""
        detail = (f"{spec.gpu_count} x {spec.model}{cordon}, no GPU pod{age}{cost}. Scale the node group "
                  f"down or drain it.")
        out.append(Finding(Code.DARK_CAPACITY, ObjectRef("Node", name), detail, figures={
            "gpus": spec.gpu_count, "tier": spec.model, "idle_since": since.isoformat() if since else None,
            WASTE: waste}))
    return out


def _finished(pod: Mapping[str, Any]) -> datetime | None:
    times = [parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for cs in (pod.get("status") or {}).get("containerStatuses") or [] if isinstance(cs, Mapping)]
    return max([t for t in times if t], default=None)


# ---- pending GPU pods and fragmentation -------------------------------------------------------------------
def _scheduling_reason(pod: Mapping[str, Any]) -> str:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "PodScheduled" and cond.get("status") != "True":
            return f"{cond.get('reason') or 'Unschedulable'}: {cond.get('message') or 'no message'}"
    return "not scheduled yet"


@dataclass(frozen=True)
class FreeNode:
    spec: SnapNode
    free: int  # whole free GPUs
    largest_block: int  # whole free GPUs in the largest NVLink domain
    dark: bool


def free_nodes(snapshot: Snapshot) -> list[FreeNode]:
    out = []
    for spec in snapshot.nodes:
        if not spec.schedulable:
            continue
        node = snapshot.gpu_node(spec.name)
        free = node.free_whole_gpus()
        out.append(FreeNode(spec, len(free), node.largest_free_block(),
                            dark=len(free) == spec.gpu_count and not snapshot.pods_on(spec.name)))
    return out


def pending_findings(pod: GpuPod, snapshot: Snapshot | None, free: Sequence[FreeNode], prices: Prices,
                     now: datetime) -> list[Finding]:
    """`pending-gpu-pod` with wait and reason; `fragmentation` when enough GPUs are free, only in pieces."""
    wait = (now - pod.created).total_seconds() if pod.created else 0.0
    ref = ObjectRef("Pod", pod.name, pod.namespace)
    reason = _scheduling_reason(pod.obj)
    waited = f"has waited {human_duration(wait)} for {pod.gpus} GPUs: {reason}"
    out = [Finding(Code.PENDING_GPU_POD, ref, waited,
                   figures={"gpus": pod.gpus, "wait_s": round(wait), "reason": reason})]
    snap_pod = snapshot.find(pod.key) if snapshot is not None else None
    if snap_pod is None or pod.gpus < 1:
        return out
    req = snap_pod.request
    fits = [f for f in free if not req.gpu_models or f.spec.model in req.gpu_models]
    total = sum(f.free for f in fits)
    largest = max((f.largest_block if req.needs_domain else f.free for f in fits), default=0)
    if total < req.num_gpu or largest >= req.num_gpu:
        return out
    pieces = [f for f in fits if f.free and not f.dark]
    stranded = sum(f.free * (prices.per_hour(f.spec.model) or 0.0) for f in pieces) * 24
    unit = "one NVLink domain" if req.needs_domain else "one node"
    detail = (f"needs {req.num_gpu} GPUs in {unit}; {total} are free on nodes it may use, at most {largest} "
              f"in {unit} ({money(stranded)}/day of GPUs free in pieces). Open a block: gpuplace plan "
              f"defrag --pod {pod.key}")
    out.append(Finding(Code.FRAGMENTATION, ref, detail, figures={
        "gpus": req.num_gpu, "free_gpus": total, "largest_free_block": largest,
        "defrag_command": f"gpuplace plan defrag --pod {pod.key}", WASTE: round(stranded, 2) or None}))
    return out

