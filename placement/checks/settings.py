"""Tunables of the checks. Defaults are what a platform team would start from; every one can be set in
the config file (`checks:` section) and is named in the messages it affects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from placement.catalog import GpuCatalog, GpuSpec, default_gpu_catalog
from placement.findings import Severity
from placement.models import ModelCatalog, default_model_catalog


@dataclass(frozen=True)
class CheckSettings:
    # A typical request (prompt + output tokens) when judging KV capacity against concurrency.
    typical_request_tokens: int = 1024
    # Concurrency gpuplace expects an online server to sustain when max_num_seqs is not set.
    expected_concurrency: int = 64
    # Cheaper tier must hold max_model_len with this factor to be recommended ("with margin").
    tier_margin: float = 1.2
    # Cold start: weights are read at this rate (network volume / object store / HF hub mirror) ...
    load_gib_per_s: float = 1.0
    # ... plus engine start (CUDA init, graph capture, warm-up) and image start.
    startup_overhead_s: float = 60.0
    # Below this share of GPU memory actually needed, a GPU is overprovisioned.
    overprovisioned_share: float = 0.3
    # Tiers at or above this reference price are "top tiers" for batch-over-tiered.
    top_tier_price_per_hour: float = 2.5
    # batch-size-suboptimal: an explicit max_num_seqs below this (online) or batch_min (batch) idles the GPU.
    min_online_batch: int = 8
    min_batch_batch: int = 32
    # low-throughput-config: CPU cores per engine container below this starve tokenisation/scheduling.
    min_cpu_cores: float = 2.0
    min_mem_fraction: float = 0.5
    hours_per_month: float = 730.0
    # Catalog tiers never offered as a recommendation (still checked when a pod pins them).
    never_recommend: tuple[str, ...] = ("RTX-3090", "RTX-4090", "P100-PCIe-16GB", "V100-PCIe-16GB")
    severity_overrides: Mapping[str, Severity] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckContext:
    gpus: GpuCatalog
    models: ModelCatalog
    settings: CheckSettings = CheckSettings()
    # When known (webhook with cluster access): the GPU tiers the cluster actually has.
    cluster_tiers: tuple[str, ...] | None = None

    @classmethod
    def default(cls) -> CheckContext:
        return cls(gpus=default_gpu_catalog(), models=default_model_catalog())

    @cached_property  # every review's tier checks walk this list; the context is fixed once built
    def recommendable(self) -> tuple[GpuSpec, ...]:
        """Tiers a recommendation may name, cheapest first: the cluster's own when known, else the
        catalog's, less the ones the settings say never to recommend (consumer cards, retired generations)."""
        gpus = [g for g in self.gpus.all() if g.id not in self.settings.never_recommend]
        if self.cluster_tiers:
            gpus = [g for g in gpus if g.id in self.cluster_tiers]
        return tuple(gpus)

    @cached_property
    def tier_memo(self) -> dict[tuple[object, ...], tuple[GpuSpec, ...]]:
        """Tier lists the checks derive from the catalog and settings alone (e.g. the cheaper tiers of a
        pinned one), remembered for the life of the context: a catalog has a few dozen tiers."""
        return {}
