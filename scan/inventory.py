"""What one scan read from the cluster: the raw objects by kind, and what it could not read.

The collector fills it; everything after it is pure and takes an Inventory, so tests build one from
plain dicts (what `kubectl get -o json` prints) without an API server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Keys of Inventory.objects. The Knative Service gets its own key: core Services are never read.
KNATIVE_SERVICE = "KnativeService"


@dataclass
class Inventory:
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # One line per thing the scan could not read (a 403 namespace, a failed list), said once in the output.
    gaps: list[str] = field(default_factory=list)
    # Kinds whose API the cluster does not serve (CRD not installed): not an error, listed for the record.
    absent: list[str] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The namespace the scan reports on (None: all); pods of other namespaces still count on nodes.
    namespace: str | None = None
    # False when some pods could not be listed: a node may look dark or free while pods hold it, so
    # dark capacity and fragmentation are not judged.
    pods_complete: bool = True

    def of(self, kind: str) -> list[dict[str, Any]]:
        return self.objects.get(kind, [])

    def add(self, kind: str, items: Iterable[dict[str, Any]]) -> None:
        self.objects.setdefault(kind, []).extend(items)

    def gap(self, line: str) -> None:
        if line not in self.gaps:
            self.gaps.append(line)

    @classmethod
    def from_objects(cls, objects: Iterable[Mapping[str, Any]], now: datetime | None = None) -> Inventory:
        """From a flat list of objects carrying `kind` (tests, `--snapshot`-style input)."""
        inv = cls(now=now or datetime.now(UTC))
        for obj in objects:
            kind = str(obj.get("kind", ""))
            if kind == "Service" and str(obj.get("apiVersion", "")).startswith("serving.knative.dev"):
                kind = KNATIVE_SERVICE
            inv.add(kind, [dict(obj)])
        return inv


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, Mapping) else {}


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("namespace") or "")


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name") or "")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it (`2026-12-06T19:00:00Z`), None when absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """`45s`, `12m`, `3h05m`, `2d04h`: wait times and ages in one short form."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
