"""From findings and a mode to what the apiserver is told (design.md, Flow and Findings):

enforce: error findings deny; every other finding comes back as a warning (kubectl prints it).
warn:    every finding is a warning; nothing is denied.
audit:   allowed silently; findings go to audit annotations (and metrics) only.
Audit annotations are written in every mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from placement.findings import Finding, Severity

MODES = ("enforce", "warn", "audit")
# kubectl shows every warning; the apiserver drops those past 4 KiB in total. Findings are <= 256 chars.
MAX_WARNINGS = 12


@dataclass(frozen=True)
class Decision:
    allowed: bool
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    audit: dict[str, str] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "denied" if not self.allowed else ("warned" if self.warnings else "allowed")


def decide(findings: Sequence[Finding], mode: str) -> Decision:
    audit = audit_annotations(findings)
    if mode == "audit":
        return Decision(True, audit=audit)
    ranked = sorted(findings, key=lambda f: -f.effective_severity.rank)
    errors = [f for f in ranked if f.effective_severity == Severity.ERROR]
    if mode == "enforce" and errors:
        others = [f.message for f in ranked if f.effective_severity != Severity.ERROR]
        return Decision(False, " ".join(f.message for f in errors), others[:MAX_WARNINGS], audit)
    return Decision(True, warnings=[f.message for f in ranked][:MAX_WARNINGS], audit=audit)


def audit_annotations(findings: Sequence[Finding]) -> dict[str, str]:
    """One key per severity and code, e.g. `error-oom-risk` (no `/`: the apiserver prefixes the webhook)."""
    out: dict[str, str] = {}
    for f in findings:
        out.setdefault(f"{f.effective_severity}-{f.code}", f.message)
    return out
