"""Prices and the cost summary: GPU spend per hour, and waste per category per day and per year.

Prices are USD per GPU-hour from the GPU catalog (placement/data/gpus.yaml, or the config's
`catalog.gpus` overrides), replaced per GPU by a `--prices` file. A MIG slice costs its share of the
GPU's compute slices (a 1g of 7 is a seventh of the card). Every finding that wastes money carries
`waste_per_day` (USD) in its figures; the summary adds them up per code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from placement.catalog import GpuCatalog, GpuSpec
from placement.findings import Code, Finding

HOURS_PER_DAY = 24.0
DAYS_PER_YEAR = 365.0
WASTE = "waste_per_day"
# Codes whose waste is a shared pool, not a sum: the same free GPUs in pieces stall every pending pod.
POOLED = frozenset({Code.FRAGMENTATION})


class PriceError(ValueError):
    """A prices file gpuplace cannot use; the message names the entry."""


@dataclass
class Prices:
    catalog: GpuCatalog
    overrides: dict[str, float] = field(default_factory=dict)  # GPU id -> USD per GPU-hour
    origin: str = "catalog"

    def spec(self, model: str) -> GpuSpec | None:
        return self.catalog.get(model) if model in self.catalog else self.catalog.resolve(model)

    def per_hour(self, model: str) -> float | None:
        """USD per GPU-hour of a node's GPU model (catalog id or any spelling), None when unknown."""
        spec = self.spec(model)
        if spec is None:
            return self.overrides.get(model)
        return self.overrides.get(spec.id, spec.price_per_hour)

    def mig_per_hour(self, model: str, profile: str) -> float | None:
        spec, price = self.spec(model), self.per_hour(model)
        if spec is None or price is None:
            return None
        mig = spec.mig_profile(profile)
        return price * (mig.slices / 7 if mig else 1.0)


def load_prices(path: str | None, catalog: GpuCatalog) -> Prices:
    """A YAML or JSON mapping of GPU (catalog id or any label spelling) to USD per GPU-hour."""
    if not path:
        return Prices(catalog)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PriceError(f"{path}: cannot read prices: {exc}") from None
    if isinstance(data, Mapping) and isinstance(data.get("prices"), Mapping):
        data = data["prices"]
    if not isinstance(data, Mapping):
        raise PriceError(f"{path}: expected a mapping of GPU to USD per GPU-hour, e.g. 'H100-SXM-80GB: 2.5'")
    overrides: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise PriceError(f"{path}: {key}: price must be a non-negative number, got {value!r}")
        spec = catalog.resolve(str(key))
        overrides[spec.id if spec else str(key)] = float(value)
    return Prices(catalog, overrides, path)


def per_day(price_per_hour: float, gpus: float) -> float:
    return round(price_per_hour * gpus * HOURS_PER_DAY, 2)


def money(amount: float) -> str:
    return f"${amount:,.2f}" if amount < 100 else f"${amount:,.0f}"


def check_waste_per_day(f: Finding, hours_per_month: float) -> float | None:
    """Waste of a deploy-time finding, from the monthly figures its check already computed."""
    fig = f.figures
    monthly = fig.get("wasted_monthly_cost") or fig.get("saved_monthly_cost")
    now, then = fig.get("monthly_cost"), fig.get("recommended_monthly_cost")
    if monthly is None and now is not None and then is not None:
        monthly = float(now) - float(then)
    if not monthly or monthly <= 0:
        return None
    return round(float(monthly) / hours_per_month * HOURS_PER_DAY, 2)


@dataclass(frozen=True)
class CostSummary:
    gpus: int  # GPUs on GPU nodes
    gpus_allocated: int  # GPUs held by running pods
    spend_per_hour: float  # every GPU node is billed, used or not
    allocated_per_hour: float
    waste_per_day: Mapping[str, float]  # finding code -> USD per day
    unpriced_models: tuple[str, ...] = ()

    @property
    def total_waste_per_day(self) -> float:
        return round(sum(self.waste_per_day.values()), 2)

    def as_dict(self) -> dict[str, Any]:
        return {
            "gpus": self.gpus,
            "gpus_allocated": self.gpus_allocated,
            "spend_per_hour": round(self.spend_per_hour, 2),
            "spend_per_day": round(self.spend_per_hour * HOURS_PER_DAY, 2),
            "spend_per_year": round(self.spend_per_hour * HOURS_PER_DAY * DAYS_PER_YEAR),
            "allocated_per_hour": round(self.allocated_per_hour, 2),
            "waste_per_day": dict(self.waste_per_day),
            "waste_per_year": {k: round(v * DAYS_PER_YEAR) for k, v in self.waste_per_day.items()},
            "total_waste_per_day": self.total_waste_per_day,
            "total_waste_per_year": round(self.total_waste_per_day * DAYS_PER_YEAR),
            "unpriced_models": list(self.unpriced_models),
        }


def waste_by_code(findings: Iterable[Finding]) -> dict[str, float]:
    """USD per day per finding code: summed, except pooled codes (the largest one finding counts)."""
    out: dict[str, float] = {}
    for f in findings:
        w = f.figures.get(WASTE)
        if not w:
            continue
        out[f.code] = max(out.get(f.code, 0.0), w) if f.code in POOLED else out.get(f.code, 0.0) + w
    return {k: round(v, 2) for k, v in sorted(out.items())}
