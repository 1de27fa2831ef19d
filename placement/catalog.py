"""The GPU catalog: every GPU gpuplace knows, with the figures placement decisions need and every spelling
that names it in a cluster (GPU Feature Discovery products, GKE accelerators, Karpenter/EKS GPU names,
instance types).

The data lives in `placement/data/gpus.yaml` (schema and sources policy: `placement/data/README.md`). It is
validated with pydantic when loaded; the rest of gpuplace sees frozen dataclasses. Users override or extend
the catalog with a YAML file of the same schema (`load_gpu_catalog(path)`, `GpuCatalog.with_overrides`).

This module reads only its own data file and a path explicitly handed in.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from placement.datafiles import bundled, entry_list, user_file

NvlinkLayout = Literal["switch", "pairs", "none"]

# Node and pod label keys that name a GPU tier, in precedence order (design.md, "GPU tier of a pod").
GFD_PRODUCT_LABEL = "nvidia.com/gpu.product"
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
KARPENTER_GPU_NAME_LABEL = "karpenter.k8s.aws/instance-gpu-name"
EKS_GPU_NAME_LABEL = "eks.amazonaws.com/instance-gpu-name"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
TIER_LABEL = "gpuplace.io/tier"
TIER_LABEL_KEYS: tuple[str, ...] = (
    GFD_PRODUCT_LABEL,
    GKE_ACCELERATOR_LABEL,
    KARPENTER_GPU_NAME_LABEL,
    EKS_GPU_NAME_LABEL,
    INSTANCE_TYPE_LABEL,
    TIER_LABEL,
)

HOURS_PER_MONTH = 730.0
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
_BUNDLED = "gpus.yaml"


class CatalogError(ValueError):
    """Bad catalog data. The message names the file, the entry id and the field."""


def _mig_name(resource: str) -> str:
    """'nvidia.com/mig-1g.10gb', 'mig-1g.10gb' or '1g.10gb' -> '1g.10gb'."""
    return resource.strip().lower().removeprefix("nvidia.com/").removeprefix("mig-")


# ---------------------------------------------------------------------------------------------------------
# What the rest of gpuplace sees


@dataclass(frozen=True)
class MigProfile:
    name: str  # e.g. "1g.10gb" (the part after nvidia.com/mig-)
    memory_gib: float  # as the profile name says
    slices: int  # compute slices (the "1g" of "1g.10gb"), out of 7
    max_instances: int  # how many of this profile fit on one GPU

    @property
    def resource(self) -> str:
        """The extended resource name the device plugin advertises (mixed strategy)."""
        return MIG_RESOURCE_PREFIX + self.name


@dataclass(frozen=True)
class GpuSpec:
    id: str
    name: str
    memory_gib: float  # nominal, as marketed
    usable_gib: float  # total memory CUDA reports (what vLLM's budget starts from)
    gfd_memory_mib: int  # nvidia.com/gpu.memory as GPU Feature Discovery labels it (NVML total, MiB)
    bandwidth_gbs: float
    bf16_tflops: float  # dense 16-bit tensor TFLOPS (fp16 where the GPU has no bf16)
    fp8: bool  # native FP8 tensor cores
    nvlink: NvlinkLayout
    nvlink_domain_gpus: int
    mig_profiles: tuple[MigProfile, ...]
    price_per_hour: float  # reference USD per GPU-hour (basis in gpus.yaml; users override)
    generation: str
    gfd_products: tuple[str, ...]
    gke_accelerators: tuple[str, ...]
    instance_gpu_names: tuple[str, ...]
    # Excluded from equality and hashing so the dataclass stays hashable; `id` identifies a GPU anyway.
    instance_types: Mapping[str, int] = field(compare=False)
    sources: tuple[str, ...]
    compute_capability: str = ""
    aliases: tuple[str, ...] = ()

    def monthly_cost(self, gpus: int = 1, hours: float = HOURS_PER_MONTH) -> float:
        return self.price_per_hour * gpus * hours

    @property
    def supports_bf16(self) -> bool:
        """bf16 needs compute capability 8.0 (Ampere) or newer; older GPUs serve fp16."""
        if not self.compute_capability:
            return True
        return int(self.compute_capability.split(".")[0]) >= 8

    @property
    def mig_capable(self) -> bool:
        return bool(self.mig_profiles)

    def mig_profile(self, name: str) -> MigProfile | None:
        key = _mig_name(name)
        return next((m for m in self.mig_profiles if m.name.lower() == key), None)

    def spellings(self) -> Iterator[str]:
        """Every string that names this GPU in the catalog (id, name, labels, instance types, aliases)."""
        yield self.id
        yield self.name
        yield from self.gfd_products
        yield from self.gke_accelerators
        yield from self.instance_gpu_names
        yield from self.instance_types
        yield from self.aliases


# ---------------------------------------------------------------------------------------------------------
# The YAML schema (validated at load time)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _MigModel(_Strict):
    name: str = Field(pattern=r"^\d+g\.\d+gb$")
    memory_gib: float = Field(gt=0)
    slices: int = Field(ge=1, le=8)
    max_instances: int = Field(ge=1, le=8)


class _LabelsModel(_Strict):
    gfd_product: list[str] = []
    gke_accelerator: list[str] = []
    instance_gpu_name: list[str] = []


class _GpuModel(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")
    name: str = Field(min_length=1)
    memory_gib: float = Field(gt=0)
    usable_gib: float = Field(gt=0)
    usable_source: str = ""
    gfd_memory_mib: int = Field(gt=0)
    bandwidth_gbs: float = Field(gt=0)
    bf16_tflops: float = Field(gt=0)
    fp8: bool
    nvlink: NvlinkLayout
    nvlink_domain_gpus: int = Field(ge=1)
    mig_profiles: list[_MigModel] = []
    price_per_hour: float = Field(ge=0)
    labels: _LabelsModel = _LabelsModel()
    aliases: list[str] = []
    instance_types: dict[str, int] = {}
    generation: str = Field(min_length=1)
    compute_capability: str = Field(default="", pattern=r"^(\d+\.\d+)?$")
    sources: list[str] = Field(min_length=1)
    notes: str = ""

    @field_validator("instance_types")
    @classmethod
    def _positive_counts(cls, v: dict[str, int]) -> dict[str, int]:
        for name, count in v.items():
            if count < 1:
                raise ValueError(f"instance type {name!r}: GPU count must be >= 1, got {count}")
        return v

    @field_validator("sources")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"source must be a URL, got {url!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> _GpuModel:
        if self.usable_gib > self.memory_gib:
            raise ValueError(f"usable_gib {self.usable_gib} exceeds memory_gib {self.memory_gib}")
        if self.usable_gib > self.gfd_memory_mib / 1024:
            raise ValueError(f"usable_gib {self.usable_gib} exceeds gfd_memory_mib {self.gfd_memory_mib} "
                             f"({self.gfd_memory_mib / 1024:.2f} GiB); check the units")
        expected = {"none": (1, 1), "pairs": (2, 2), "switch": (2, 576)}[self.nvlink]
        if not expected[0] <= self.nvlink_domain_gpus <= expected[1]:
            raise ValueError(f"nvlink {self.nvlink!r} needs nvlink_domain_gpus in {expected}, "
                             f"got {self.nvlink_domain_gpus}")
        for mig in self.mig_profiles:
            if mig.memory_gib > self.memory_gib:
                raise ValueError(f"MIG profile {mig.name} has more memory than the GPU")
        return self

    def to_spec(self) -> GpuSpec:
        return GpuSpec(
            id=self.id,
            name=self.name,
            memory_gib=self.memory_gib,
            usable_gib=self.usable_gib,
            gfd_memory_mib=self.gfd_memory_mib,
            bandwidth_gbs=self.bandwidth_gbs,
            bf16_tflops=self.bf16_tflops,
            fp8=self.fp8,
            nvlink=self.nvlink,
            nvlink_domain_gpus=self.nvlink_domain_gpus,
            mig_profiles=tuple(MigProfile(m.name, m.memory_gib, m.slices, m.max_instances)
                               for m in self.mig_profiles),
            price_per_hour=self.price_per_hour,
            generation=self.generation,
            gfd_products=tuple(self.labels.gfd_product),
            gke_accelerators=tuple(self.labels.gke_accelerator),
            instance_gpu_names=tuple(self.labels.instance_gpu_name),
            instance_types=MappingProxyType(dict(self.instance_types)),
            sources=tuple(self.sources),
            compute_capability=self.compute_capability,
            aliases=tuple(self.aliases),
        )


def _spec_to_raw(spec: GpuSpec) -> dict[str, Any]:
    """The YAML form of a spec, so overrides can merge into it field by field."""
    return {
        "id": spec.id,
        "name": spec.name,
        "memory_gib": spec.memory_gib,
        "usable_gib": spec.usable_gib,
        "gfd_memory_mib": spec.gfd_memory_mib,
        "bandwidth_gbs": spec.bandwidth_gbs,
        "bf16_tflops": spec.bf16_tflops,
        "fp8": spec.fp8,
        "nvlink": spec.nvlink,
        "nvlink_domain_gpus": spec.nvlink_domain_gpus,
        "mig_profiles": [{"name": m.name, "memory_gib": m.memory_gib, "slices": m.slices,
                          "max_instances": m.max_instances} for m in spec.mig_profiles],
        "price_per_hour": spec.price_per_hour,
        "labels": {"gfd_product": list(spec.gfd_products), "gke_accelerator": list(spec.gke_accelerators),
                   "instance_gpu_name": list(spec.instance_gpu_names)},
        "aliases": list(spec.aliases),
        "instance_types": dict(spec.instance_types),
        "generation": spec.generation,
        "compute_capability": spec.compute_capability,
        "sources": list(spec.sources),
    }


def _format_errors(origin: str, entry_id: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(entry)"
        parts.append(f"field {loc!r}: {e['msg']}")
    return f"{origin}: GPU entry {entry_id!r}: " + "; ".join(parts)


def _validate_entry(raw: Any, origin: str, index: int) -> GpuSpec:
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{origin}: GPU entry #{index}: expected a mapping, got {type(raw).__name__}")
    entry_id = str(raw.get("id", f"#{index}"))
    try:
        return _GpuModel.model_validate(dict(raw)).to_spec()
    except ValidationError as err:
        raise CatalogError(_format_errors(origin, entry_id, err)) from None


# ---------------------------------------------------------------------------------------------------------
# Spelling normalization

_MIG_SUFFIX = re.compile(r"-mig-\d+g\.\d+gb.*$")
_SHARED_SUFFIX = re.compile(r"-shared$")
_VENDOR_PREFIXES = ("nvidia-tesla-", "nvidia-geforce-", "nvidia-", "tesla-", "geforce-")


def normalize(value: str) -> str:
    """Case-insensitive, and spaces/underscores/hyphens are one separator: 'NVIDIA A10G' == 'nvidia_a10g'."""
    return re.sub(r"[\s_\-]+", "-", value.strip().lower()).strip("-")


def _compact(norm: str) -> str:
    return norm.replace("-", "")


def _variants(value: str) -> Iterator[str]:
    """Normalized forms of a queried value, most specific first: as given, without a GFD MIG/SHARED
    suffix, without a vendor prefix ('NVIDIA-', 'Tesla-', 'GeForce-')."""
    norm = normalize(value)
    stripped = _SHARED_SUFFIX.sub("", _MIG_SUFFIX.sub("", norm))
    for base in dict.fromkeys((norm, stripped)):
        yield base
        for prefix in _VENDOR_PREFIXES:
            if base.startswith(prefix):
                yield base.removeprefix(prefix)


# ---------------------------------------------------------------------------------------------------------
# The catalog


LABEL_MEMO_SIZE = 4096


class GpuCatalog:
    """GPUs by id, plus an index of every spelling. No spelling may name two GPUs (CatalogError)."""

    def __init__(self, gpus: Iterable[GpuSpec], origin: str = "GPU catalog") -> None:
        self._gpus: dict[str, GpuSpec] = {}
        for gpu in gpus:
            if gpu.id in self._gpus:
                raise CatalogError(f"{origin}: duplicate GPU id {gpu.id!r}")
            self._gpus[gpu.id] = gpu
        self._origin = origin
        self._index: dict[str, str] = {}
        self._compact_index: dict[str, str] = {}
        self._instance_types: dict[str, tuple[str, int]] = {}
        self._by_label: dict[str, dict[str, str]] = {k: {} for k in TIER_LABEL_KEYS}
        for gpu in self._gpus.values():
            self._add_spellings(gpu)
        # A cluster has a handful of label values and every review of a pinned workload asks about one.
        self._label_memo = functools.lru_cache(maxsize=LABEL_MEMO_SIZE)(self._from_node_label)
        # The catalog is fixed once built; every check walks it cheapest first.
        self._cheapest_first = sorted(
            self._gpus.values(), key=lambda g: (g.price_per_hour, g.memory_gib, g.id)
        )

    def _claim(self, index: dict[str, str], key: str, gpu_id: str, spelling: str) -> None:
        owner = index.setdefault(key, gpu_id)
        if owner != gpu_id:
            raise CatalogError(f"{self._origin}: spelling {spelling!r} names both {owner!r} and {gpu_id!r}; "
                               f"field 'labels'/'aliases'/'instance_types' of {gpu_id!r}")

    def _add_spellings(self, gpu: GpuSpec) -> None:
        for spelling in gpu.spellings():
            norm = normalize(spelling)
            self._claim(self._index, norm, gpu.id, spelling)
            self._claim(self._compact_index, _compact(norm), gpu.id, spelling)
        for name, count in gpu.instance_types.items():
            self._instance_types[normalize(name)] = (gpu.id, count)
        label_values = {
            GFD_PRODUCT_LABEL: gpu.gfd_products,
            GKE_ACCELERATOR_LABEL: gpu.gke_accelerators,
            KARPENTER_GPU_NAME_LABEL: gpu.instance_gpu_names,
            EKS_GPU_NAME_LABEL: gpu.instance_gpu_names,
        }
        for key, values in label_values.items():
            for v in values:
                self._claim(self._by_label[key], normalize(v), gpu.id, v)

    # -- lookups ------------------------------------------------------------------------------------------

    def __contains__(self, gpu_id: object) -> bool:
        return gpu_id in self._gpus

    def __iter__(self) -> Iterator[GpuSpec]:
        return iter(self.all())

    def __len__(self) -> int:
        return len(self._gpus)

    def get(self, gpu_id: str) -> GpuSpec:
        try:
            return self._gpus[gpu_id]
        except KeyError:
            raise KeyError(f"no GPU with id {gpu_id!r} in the catalog; known ids: "
                           f"{', '.join(sorted(self._gpus))}") from None

    def all(self) -> list[GpuSpec]:
        """Every GPU, cheapest first (ties: less memory first, then id)."""
        return list(self._cheapest_first)

    def ids(self) -> list[str]:
        return list(self._gpus)

    def resolve(self, value: str) -> GpuSpec | None:
        """The GPU any spelling names: id, marketing name, GFD product (MIG/SHARED suffix ignored), GKE
        accelerator, Karpenter/EKS GPU name, instance type, or a common short form ('H100', 'A100-80GB',
        'nvidia-tesla-t4'). Case-insensitive; spaces, underscores and hyphens are interchangeable."""
        if not value or not value.strip():
            return None
        for norm in _variants(value):
            gpu_id = self._index.get(norm)
            if gpu_id is None and norm in self._instance_types:
                gpu_id = self._instance_types[norm][0]
            if gpu_id is None:
                gpu_id = self._compact_index.get(_compact(norm))
            if gpu_id is not None:
                return self._gpus[gpu_id]
        return None

    def from_node_label(self, key: str, value: str) -> GpuSpec | None:
        """The GPU a node/pod label names. Keys: TIER_LABEL_KEYS. Values not in that label's own list
        still resolve through any other spelling (a hand-written nodeSelector may use a short form)."""
        return self._label_memo(key, value)

    def _from_node_label(self, key: str, value: str) -> GpuSpec | None:
        if key not in TIER_LABEL_KEYS:
            return None
        if key == INSTANCE_TYPE_LABEL:
            hit = self.instance_type(value)
            return hit[0] if hit else None
        by_key = self._by_label.get(key, {})
        for norm in _variants(value):
            if norm in by_key:
                return self._gpus[by_key[norm]]
        return self.resolve(value)

    def instance_type(self, name: str) -> tuple[GpuSpec, int] | None:
        """(GPU, GPUs per node) of a cloud instance type, e.g. 'p5.48xlarge' -> (H100-SXM-80GB, 8)."""
        hit = self._instance_types.get(normalize(name))
        if hit is None:
            return None
        return self._gpus[hit[0]], hit[1]

    def mig_resource(
        self, resource: str, gpu: GpuSpec | None = None
    ) -> tuple[GpuSpec | None, MigProfile] | None:
        """'nvidia.com/mig-1g.10gb' (or '1g.10gb') -> (GPU, profile). The profile comes from `gpu` when
        given and it has one. Otherwise profile names repeat across GPUs (1g.10gb is the 1/7 slice of the
        80 GB A100/H100 and a 4-per-GPU profile of the A100-40GB): the GPU on which the profile fits most
        instances wins, then the cheapest. None if no catalog GPU offers it."""
        name = _mig_name(resource)
        if gpu is not None:
            profile = gpu.mig_profile(name)
            if profile is not None:
                return gpu, profile
        offers = [(g, p) for g in self.all() if (p := g.mig_profile(name)) is not None]
        if not offers:
            return None
        return max(offers, key=lambda gp: gp[1].max_instances)  # max() keeps the first (cheapest) of ties

    # -- overrides ----------------------------------------------------------------------------------------

    def with_overrides(self, data: Mapping[str, Any], origin: str = "GPU overrides") -> GpuCatalog:
        """A new catalog with user data merged in. `data` has the schema of gpus.yaml (`{gpus: [...]}`);
        an entry whose id exists is merged field by field (`labels` key by key), so `{id: H100-SXM-80GB,
        price_per_hour: 2.2}` changes only the price; an entry with a new id must be complete."""
        entries = _entries(data, origin)
        merged: dict[str, GpuSpec] = dict(self._gpus)
        for i, raw in enumerate(entries):
            if not isinstance(raw, Mapping) or "id" not in raw:
                raise CatalogError(f"{origin}: GPU entry #{i}: field 'id': required")
            gpu_id = str(raw["id"])
            if gpu_id in merged:
                base = _spec_to_raw(merged[gpu_id])
                update = dict(raw)
                if isinstance(update.get("labels"), Mapping):
                    update["labels"] = {**base["labels"], **update["labels"]}
                raw = {**base, **update}
            merged[gpu_id] = _validate_entry(raw, origin, i)
        return GpuCatalog(merged.values(), origin=f"{self._origin} + {origin}")


def _entries(data: Any, origin: str) -> list[Any]:
    return entry_list(data, "gpus", origin, CatalogError, also=("price_basis",))


def _bundled() -> GpuCatalog:
    data, origin = bundled(_BUNDLED, CatalogError)
    entries = _entries(data, origin)
    return GpuCatalog((_validate_entry(raw, origin, i) for i, raw in enumerate(entries)), origin=origin)


def load_gpu_catalog(path: str | Path | None = None) -> GpuCatalog:
    """The bundled catalog; with `path`, the bundled catalog plus the overrides/additions in that YAML."""
    catalog = default_gpu_catalog()
    if path is None:
        return catalog
    data, origin = user_file(path, CatalogError)
    return catalog.with_overrides(data, origin=origin)


@functools.cache
def default_gpu_catalog() -> GpuCatalog:
    return _bundled()
