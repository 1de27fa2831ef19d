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
    if not findings:
        return Decision(True)
    audit = audit_annotations(findings)
    if mode == "audit":
        return Decision(True, audit=audit)
    # Messages by severity, each in the checks' order: errors, then warnings, then info.
    errors: list[str] = []
    others: list[str] = []
    info: list[str] = []
    for f in findings:
        severity = f.effective_severity
        (errors if severity == Severity.ERROR else info if severity == Severity.INFO else others).append(
            f.message
        )
    others += info
    if mode == "enforce" and errors:
        return Decision(False, " ".join(errors), others[:MAX_WARNINGS], audit)
    return Decision(True, warnings=(errors + others)[:MAX_WARNINGS], audit=audit)


def audit_annotations(findings: Sequence[Finding]) -> dict[str, str]:
    """One key per severity and code, e.g. `error-oom-risk` (no `/`: the apiserver prefixes the webhook)."""
    out: dict[str, str] = {}
    for f in findings:
        out.setdefault(f"{f.effective_severity}-{f.code}", f.message)
    return out
