"""One scan: from an Inventory to findings per workload, cluster findings and the cost summary.

The deploy-time checks are `placement.checks.check_objects`, the same call `gpuplace check` and the
webhook make, on the live objects unchanged: each workload's top owner (or a pod when the owner was not
readable), the autoscalers that scale those workloads, and the DRA claims in their namespaces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from placement.autoscaling import extract_autoscaler
from placement.checks import CheckContext, check_objects
from placement.findings import Finding
from placement.planner.snapshot import SnapNode, Snapshot, SnapshotError, node_from_k8s, snapshot_from_objects
from placement.workload import WorkloadError
from scan.cost import WASTE, CostSummary, Prices, check_waste_per_day, waste_by_code
from scan.discovery import ScannedWorkload, discover, gpu_pod
from scan.inventory import KNATIVE_SERVICE, Inventory, name_of, namespace_of
from scan.observed import (
    EventIndex,
    dark_capacity,
    free_nodes,
    observed_oom,
    observed_thrashing,
    pending_findings,
)

AUTOSCALER_KINDS = ("HorizontalPodAutoscaler", "ScaledObject", KNATIVE_SERVICE, "InferenceService")
CLAIM_KINDS = ("ResourceClaim", "ResourceClaimTemplate")


class MetricsSource(Protocol):
    """Observed utilisation and throughput (scan/metrics.py reads them from Prometheus)."""

    notes: list[str]

    def findings(self, w: WorkloadReport, ctx: CheckContext) -> list[Finding]: ...


@dataclass(frozen=True)
class ScanOptions:
    window_s: float = 3600.0


@dataclass
class WorkloadReport:
    workload: ScannedWorkload
    tier: str | None  # GPU model of the nodes its pods run on (the most common one)
    price_per_hour: float | None  # USD per GPU-hour of that tier
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        w = self.workload
        return {
            "kind": w.ref.kind, "namespace": w.namespace, "name": w.name,
            "pods": len(w.pods), "running": len(w.running), "desired_replicas": w.desired_replicas,
            "gpus": w.gpus, "tier": self.tier, "price_per_gpu_hour": self.price_per_hour,
            "created": w.created.isoformat() if w.created else None,
            "findings": [f.as_dict() for f in self.findings],
        }


@dataclass
class ScanResult:
    workloads: list[WorkloadReport]
    cluster_findings: list[Finding]  # cluster-scoped: GPU nodes
    cost: CostSummary
    gaps: list[str]
    absent: list[str]
    nodes: int

    def all_findings(self) -> list[Finding]:
        return [f for w in self.workloads for f in w.findings] + self.cluster_findings


def scan(inv: Inventory, ctx: CheckContext, prices: Prices, options: ScanOptions = ScanOptions(),
         metrics: MetricsSource | None = None, progress: Callable[[str], None] | None = None) -> ScanResult:
    say = progress or (lambda _msg: None)
    workloads = discover(inv)
    say(f"{len(workloads)} GPU workloads; running the checks")
    nodes = _nodes(inv, ctx, prices)
    snapshot = _snapshot(inv, ctx)
    checks = _checks(inv, workloads, ctx)
    events = EventIndex(inv.of("Event"), inv.now, options.window_s)
    targets = _autoscaler_targets(inv)
    if not inv.pods_complete:
        inv.gap("not every pod was readable: dark capacity and fragmentation not judged")
        snapshot = None
    free = free_nodes(snapshot) if snapshot is not None else []
    reports = []
    for w in workloads:
        report = _report(w, nodes)
        found = [_with_waste(f, ctx) for f in checks.get(w.key, [])]
        report.findings.extend(found)
        _observe(report, found, events, targets, options, ctx, prices)
        for pod in w.pods:
            if pod.pending:
                report.findings.extend(pending_findings(pod, snapshot, free, prices, inv.now))
        if metrics is not None:
            report.findings.extend(metrics.findings(report, ctx))
        reports.append(report)
    say("dark capacity and cost")
    # Occupancy counts every GPU pod read, in any namespace (a -n scan still lists them all).
    every_pod = [p for obj in inv.of("Pod") if (p := gpu_pod(obj)) is not None]
    cluster = dark_capacity(nodes, every_pod, prices, inv.now) if inv.pods_complete else []
    gaps = list(inv.gaps) + (list(metrics.notes) if metrics is not None else [])
    return ScanResult(reports, cluster, _summary(nodes, reports, cluster, prices), gaps, list(inv.absent),
                      len(nodes))


def _nodes(inv: Inventory, ctx: CheckContext, prices: Prices) -> dict[str, tuple[SnapNode, dict[str, Any]]]:
    out = {}
    for obj in inv.of("Node"):
        try:
            spec = node_from_k8s(obj, ctx.gpus)
        except SnapshotError as exc:
            inv.gap(f"node {name_of(obj)}: {exc}")
            continue
        if spec is not None:
            out[spec.name] = (spec, obj)
    return out


def _snapshot(inv: Inventory, ctx: CheckContext) -> Snapshot | None:
    try:
        return snapshot_from_objects([*inv.of("Node"), *inv.of("Pod")], ctx.gpus)
    except SnapshotError as exc:
        inv.gap(f"GPU layout not modelled (no fragmentation verdicts): {exc}")
        return None


def _autoscaler_targets(inv: Inventory) -> dict[tuple[str, str, str], list[tuple[str, str, dict[str, Any]]]]:
    """Autoscalers by the (namespace, kind, name) they scale."""
    out: dict[tuple[str, str, str], list[tuple[str, str, dict[str, Any]]]] = {}
    for kind in AUTOSCALER_KINDS:
        for obj in inv.of(kind):
            try:
                a = extract_autoscaler(obj)
            except WorkloadError as exc:
                inv.gap(f"{kind} {namespace_of(obj)}/{name_of(obj)}: {exc}")
                continue
            if a is not None:
                key = (a.ref.namespace or namespace_of(obj), a.target_kind, a.target_name)
                out.setdefault(key, []).append((str(obj.get("kind")), name_of(obj), obj))
    return out


def _checks(inv: Inventory, workloads: Sequence[ScannedWorkload], ctx: CheckContext
            ) -> dict[tuple[str, str, str], list[Finding]]:
    """Every deploy-time check on the live objects, keyed by the workload each finding is about."""
    objects: list[dict[str, Any]] = []
    owner_of: dict[tuple[str | None, str, str], tuple[str, str, str]] = {}
    seen: set[int] = set()
    for w in workloads:
        obj = w.checked_object
        ref = w.checked_ref
        owner_of[(ref.namespace, ref.kind, ref.name)] = w.key
        if id(obj) not in seen:
            seen.add(id(obj))
            objects.append(obj)
    namespaces = {w.namespace for w in workloads}
    for key, scalers in _autoscaler_targets(inv).items():
        target = owner_of.get((key[0], key[1], key[2]))
        for kind, name, obj in scalers:
            if target is None or id(obj) in seen:
                continue  # scales nothing with GPUs (or is the workload itself: a Knative Service)
            seen.add(id(obj))
            objects.append(obj)
            owner_of[(key[0], kind, name)] = target
    objects.extend(o for k in CLAIM_KINDS for o in inv.of(k) if namespace_of(o) in namespaces)
    result = check_objects(objects, ctx)
    for index, error in result.errors:
        inv.gap(f"{objects[index].get('kind')} {namespace_of(objects[index])}/{name_of(objects[index])}: "
                f"cannot read: {error}")
    out: dict[tuple[str, str, str], list[Finding]] = {}
    for _, f in result.findings:
        owner = owner_of.get((f.obj.namespace, f.obj.kind, f.obj.name))
        if owner is not None:
            out.setdefault(owner, []).append(f)
    return out


def _report(w: ScannedWorkload, nodes: dict[str, tuple[SnapNode, dict[str, Any]]]) -> WorkloadReport:
    models = Counter(nodes[p.node][0].model for p in w.running if p.node in nodes)
    return WorkloadReport(w, models.most_common(1)[0][0] if models else None, None)


def _with_waste(f: Finding, ctx: CheckContext) -> Finding:
    waste = check_waste_per_day(f, ctx.settings.hours_per_month)
    return replace(f, figures={**f.figures, WASTE: waste}) if waste else f


def _observe(report: WorkloadReport, checks: list[Finding], events: EventIndex,
             targets: dict[tuple[str, str, str], list[tuple[str, str, dict[str, Any]]]], options: ScanOptions,
             ctx: CheckContext, prices: Prices) -> None:
    w = report.workload
    if report.tier is not None:
        report.price_per_hour = prices.per_hour(report.tier)
    oom = observed_oom(w, checks, report.price_per_hour)
    if oom is not None:
        report.findings.append(oom)
    about = {(w.ref.kind, w.name), *w.chain}
    for kind, name in list(about):
        about.update((k, n) for k, n, _ in targets.get((w.namespace, kind, name), []))
    cold = next((float(f.figures["cold_start_s"]) for f in checks if f.figures.get("cold_start_s")),
                ctx.settings.startup_overhead_s)
    per_replica = max((p.gpus for p in w.pods), default=0)
    thrash = observed_thrashing(w, events.activity(w.namespace, sorted(about)), options.window_s, cold,
                                per_replica, report.price_per_hour)
    if thrash is not None:
        report.findings.append(thrash)


def _summary(nodes: dict[str, tuple[SnapNode, dict[str, Any]]], reports: Sequence[WorkloadReport],
             cluster: Sequence[Finding], prices: Prices) -> CostSummary:
    gpus = spend = 0.0
    unpriced: set[str] = set()
    price_of: dict[str, float] = {}
    for spec, _ in nodes.values():
        gpus += spec.gpu_count
        price = prices.per_hour(spec.model)
        if price is None:
            unpriced.add(spec.model)
            continue
        price_of[spec.name] = price
        spend += price * spec.gpu_count
    allocated = held = 0.0
    for r in reports:
        for p in r.workload.running:
            allocated += p.gpus
            held += p.gpus * price_of.get(p.node or "", 0.0)
    findings = [f for r in reports for f in r.findings] + list(cluster)
    return CostSummary(int(gpus), int(allocated), spend, held, waste_by_code(findings),
                       tuple(sorted(unpriced)))

