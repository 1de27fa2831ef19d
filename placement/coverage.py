"""How much of each GPU workload gpuplace judged, so a user sees at a glance what its silence means:

- `full`: the model and its size are known; every check ran.
- `no-model`: judged without a model (unknown, or sized from its name): only the checks that need none
  ran (config-invalid, idle GPUs, autoscaling), and an unknown-model finding says why.
- `not-judged`: nothing could be judged, for a reason from a small fixed set (an unreadable object, a GPU
  tier the catalog lacks, a CRD form gpuplace does not read): the metric's `reason` label.

`gpuplace check` prints the counts and the webhook exports them (`gpuplace_workloads_judged_total`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from placement.findings import Code, Finding
from placement.workload import Workload

# Figure key on an unknown-model finding that judged nothing: its value is the reason code.
NOT_JUDGED = "not_judged"
FULL, NO_MODEL, NOT_JUDGED_LEVEL = "full", "no-model", "not-judged"
LEVELS = (FULL, NO_MODEL, NOT_JUDGED_LEVEL)
UNREADABLE = "unreadable"  # the object's shape could not be read (a field of the wrong type)


@dataclass(frozen=True)
class Coverage:
    level: str  # full | no-model | not-judged
    reason: str = ""  # not-judged only: why


def coverage(workload: Workload, findings: Sequence[Finding]) -> Coverage | None:
    """The coverage of one workload from the findings its checks gave; None when it asks for no GPUs
    (not a GPU workload: not counted). The least-judged component decides."""
    if not workload.not_judged_reason and not any(p.gpu_containers for p in workload.components):
        return None
    unknown = [f for f in findings if f.code is Code.UNKNOWN_MODEL]
    for f in unknown:
        reason = f.figures.get(NOT_JUDGED)
        if reason:
            return Coverage(NOT_JUDGED_LEVEL, str(reason))
    return Coverage(NO_MODEL) if unknown else Coverage(FULL)


def counts(items: Iterable[Coverage]) -> dict[str, Any]:
    """{"full": n, "no-model": n, "not-judged": n, "not-judged-reasons": {reason: n}}."""
    seen = list(items)
    levels = Counter(c.level for c in seen)
    reasons = Counter(c.reason for c in seen if c.level == NOT_JUDGED_LEVEL)
    return {**{level: levels[level] for level in LEVELS}, "not-judged-reasons": dict(sorted(reasons.items()))}


def summary(totals: dict[str, Any]) -> str:
    """One line: `GPU workloads: 4 judged fully, 2 without a model, 1 not judged (1 unknown-tier)`."""
    reasons = ", ".join(f"{n} {r}" for r, n in totals["not-judged-reasons"].items())
    return (
        f"GPU workloads: {totals[FULL]} judged fully, {totals[NO_MODEL]} without a model, "
        f"{totals[NOT_JUDGED_LEVEL]} not judged" + (f" ({reasons})" if reasons else "")
    )
