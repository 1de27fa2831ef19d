"""The scan as a table (default) or JSON."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from placement.findings import Finding
from scan.cost import DAYS_PER_YEAR, HOURS_PER_DAY, WASTE, money
from scan.inventory import human_duration
from scan.scanner import ScanResult, WorkloadReport


def as_json(result: ScanResult, now: datetime) -> dict[str, Any]:
    return {
        "generated": now.isoformat(),
        "nodes": result.nodes,
        "workloads": [w.as_dict() for w in result.workloads],
        "cluster_findings": [f.as_dict() for f in result.cluster_findings],
        "cost": result.cost.as_dict(),
        "not_read": list(result.gaps),
        "not_installed": list(result.absent),
    }


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _workload_row(w: WorkloadReport, now: datetime) -> list[str]:
    wl = w.workload
    desired = wl.desired_replicas
    pods = f"{len(wl.running)}/{desired if desired is not None else len(wl.pods)}"
    age = human_duration((now - wl.created).total_seconds()) if wl.created else "?"
    waste = sum(f.figures.get(WASTE) or 0.0 for f in w.findings)
    codes = sorted({str(f.code) for f in w.findings})
    return [wl.namespace, wl.ref.short, pods, str(wl.gpus), w.tier or "-", age,
            money(waste) if waste else "-", ", ".join(codes) or "ok"]


def _finding_line(f: Finding) -> str:
    where = f"{f.obj.namespace}: " if f.obj.namespace else ""
    return f"{f.effective_severity.value:<8} {where}{f.message}"


def as_table(result: ScanResult, now: datetime) -> str:
    lines = [f"GPU WORKLOADS ({len(result.workloads)}) on {result.nodes} GPU nodes"]
    if result.workloads:
        header = ["NAMESPACE", "WORKLOAD", "PODS", "GPUS", "TIER", "AGE", "WASTE/DAY", "FINDINGS"]
        lines += _table([header, *(_workload_row(w, now) for w in result.workloads)])
    findings = result.all_findings()
    lines += ["", f"FINDINGS ({len(findings)})"]
    ranked = sorted(findings, key=lambda f: (-f.effective_severity.rank, str(f.code), f.message))
    lines += [_finding_line(f) for f in ranked] or ["none"]
    lines += ["", *cost_lines(result)]
    if result.gaps:
        lines += ["", "NOT READ (the rest of the scan is complete)"]
        lines += [f"  - {g}" for g in result.gaps]
    return "\n".join(lines)


def cost_lines(result: ScanResult) -> list[str]:
    c = result.cost
    day = c.spend_per_hour * HOURS_PER_DAY
    out = ["COST",
           f"GPU spend: {money(c.spend_per_hour)}/h ({money(day)}/day, {money(day * DAYS_PER_YEAR)}/year) "
           f"for {c.gpus} GPUs; {c.gpus_allocated} allocated to pods ({money(c.allocated_per_hour)}/h)"]
    if c.unpriced_models:
        out.append(f"no price for: {', '.join(c.unpriced_models)} (give --prices FILE)")
    if not c.waste_per_day:
        out.append("waste: none found")
        return out
    rows = [["WASTE", "PER DAY", "PER YEAR"]]
    rows += [[code, money(v), money(v * DAYS_PER_YEAR)] for code, v in c.waste_per_day.items()]
    rows.append(["total", money(c.total_waste_per_day), money(c.total_waste_per_day * DAYS_PER_YEAR)])
    return out + _table(rows)
