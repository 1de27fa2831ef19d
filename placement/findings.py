"""The one definition of gpuplace's finding codes, their default severities, and their one-line text.

Codes are part of the product contract (design.md): users write severity overrides against them, and
kubectl shows them as `Warning: gpuplace[code]: ...`. Nothing outside this module invents a code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK: Mapping[str, int] = {"error": 2, "warning": 1, "info": 0}


class Code(StrEnum):
    """A member is its value as a `str` (StrEnum): code that needs the text uses the member itself, with no
    `.value` descriptor call per finding."""

    OOM_RISK = "oom-risk"
    CONFIG_INVALID = "config-invalid"
    KV_CACHE_STARVED = "kv-cache-starved"
    TIER_MISPLACEMENT = "tier-misplacement"
    OVERPROVISIONED = "overprovisioned"
    COLD_START = "cold-start"
    SCALE_THRASHING = "scale-thrashing"
    BATCH_OVER_TIERED = "batch-over-tiered"
    BATCH_SIZE_SUBOPTIMAL = "batch-size-suboptimal"
    LOW_THROUGHPUT_CONFIG = "low-throughput-config"
    FRAGMENTATION = "fragmentation"
    DARK_CAPACITY = "dark-capacity"
    UNKNOWN_MODEL = "unknown-model"
    # Observed on a live cluster by `gpuplace scan` (what already happened, not what a manifest predicts).
    OBSERVED_OOM = "observed-oom"
    OBSERVED_THRASHING = "observed-thrashing"
    IDLE_GPU = "idle-gpu"
    LOW_THROUGHPUT = "low-throughput"
    PENDING_GPU_POD = "pending-gpu-pod"


DEFAULT_SEVERITY: Mapping[Code, Severity] = {
    Code.OOM_RISK: Severity.ERROR,
    Code.CONFIG_INVALID: Severity.ERROR,
    Code.KV_CACHE_STARVED: Severity.WARNING,
    Code.TIER_MISPLACEMENT: Severity.WARNING,
    Code.OVERPROVISIONED: Severity.WARNING,
    Code.COLD_START: Severity.WARNING,
    Code.SCALE_THRASHING: Severity.WARNING,
    Code.BATCH_OVER_TIERED: Severity.WARNING,
    Code.BATCH_SIZE_SUBOPTIMAL: Severity.WARNING,
    Code.LOW_THROUGHPUT_CONFIG: Severity.WARNING,
    Code.FRAGMENTATION: Severity.INFO,
    Code.DARK_CAPACITY: Severity.INFO,
    Code.UNKNOWN_MODEL: Severity.INFO,
    Code.OBSERVED_OOM: Severity.ERROR,
    Code.OBSERVED_THRASHING: Severity.WARNING,
    Code.IDLE_GPU: Severity.WARNING,
    Code.LOW_THROUGHPUT: Severity.WARNING,
    Code.PENDING_GPU_POD: Severity.WARNING,
}

# design.md: one line, at most 256 characters (the apiserver truncates longer warnings anyway).
MAX_MESSAGE_CHARS = 256

KIND_ABBREVIATIONS: Mapping[str, str] = {
    "Deployment": "deploy",
    "StatefulSet": "sts",
    "Job": "job",
    "CronJob": "cronjob",
    "Pod": "pod",
    "LeaderWorkerSet": "lws",
    "InferenceService": "isvc",
    "HorizontalPodAutoscaler": "hpa",
    "ScaledObject": "scaledobject",
    "Service": "ksvc",
    # CRDs that serve models, by the short names their projects use (the others read well lower-cased).
    "LLMInferenceService": "llmisvc",
    "DynamoGraphDeployment": "dgd",
}


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    name: str
    namespace: str | None = None

    @property
    def short(self) -> str:
        return f"{KIND_ABBREVIATIONS.get(self.kind, self.kind.lower())}/{self.name}"


@dataclass(frozen=True)
class Finding:
    """One result of a check. `detail` is the human text after the object reference; `figures` are
    the numbers it was computed from (JSON output, audit annotations, metrics)."""

    code: Code
    obj: ObjectRef
    detail: str
    container: str | None = None
    severity: Severity | None = None  # None: the code's default; set by severity overrides
    figures: Mapping[str, Any] = field(default_factory=dict)
    # Worked out with the finding, both read for every finding of every review (decision, warnings, audit
    # annotations, metrics, logs): the one-line text kubectl shows, and the severity that applies.
    message: str = field(init=False, repr=False, compare=False)
    effective_severity: Severity = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        subject = self.obj.short + (f" container {self.container}" if self.container else "")
        object.__setattr__(self, "message", one_line(f"gpuplace[{self.code}]: {subject} {self.detail}"))
        object.__setattr__(self, "effective_severity", self.severity or DEFAULT_SEVERITY[self.code])

    def with_severity(self, severity: Severity) -> Finding:
        return Finding(self.code, self.obj, self.detail, self.container, severity, self.figures)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.obj.kind,
            "namespace": self.obj.namespace,
            "name": self.obj.name,
            "container": self.container,
            "code": self.code.value,
            "severity": self.effective_severity.value,
            "message": self.message,
            **dict(self.figures),
        }


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Collapse whitespace and cut to the limit, keeping the end readable with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def apply_severity_overrides(findings: list[Finding], overrides: Mapping[str, Severity]) -> list[Finding]:
    if not overrides:
        return findings
    return [f.with_severity(overrides[f.code]) if f.code in overrides else f for f in findings]


def worst(findings: list[Finding]) -> Severity | None:
    return max((f.effective_severity for f in findings), key=lambda s: s.rank, default=None)


def gib(nbytes: float) -> str:
    """Figures in messages: GiB with one decimal (design.md)."""
    return f"{nbytes / 2**30:.1f}"
