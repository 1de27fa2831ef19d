"""The one gpuplace config file (a ConfigMap in-cluster), validated at start with errors that name the field.

Environment overrides: GPUPLACE_CONFIG (the file), and GPUPLACE_<SECTION>__<FIELD> for scalar fields, e.g.
GPUPLACE_CHECKS__LOAD_GIB_PER_S=2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from placement.catalog import GpuCatalog, default_gpu_catalog
from placement.checks import CheckContext, CheckSettings
from placement.findings import Code, Severity
from placement.models import ModelCatalog, ModelError, default_model_catalog, from_hf_config

ENV_PREFIX = "GPUPLACE_"
# Node label families the native constraints write (webhook/affinity.py).
LabelFamily = Literal["gpu-feature-discovery", "karpenter"]
LABEL_FAMILIES: tuple[LabelFamily, ...] = ("gpu-feature-discovery", "karpenter")


class ConfigError(ValueError):
    pass


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChecksConfig(Strict):
    typical_request_tokens: int = Field(
        1024, gt=0, description="prompt + output tokens of a typical request (KV capacity vs concurrency)"
    )
    expected_concurrency: int = Field(64, gt=0, description="concurrency expected when max-num-seqs is unset")
    tier_margin: float = Field(
        1.2, ge=1.0, description="a recommended tier must hold max-model-len times this in its KV cache"
    )
    load_gib_per_s: float = Field(1.0, gt=0, description="rate at which a new replica reads its weights")
    startup_overhead_s: float = Field(60.0, ge=0, description="engine start on top of loading (CUDA, graphs)")
    overprovisioned_share: float = Field(
        0.3, gt=0, le=1, description="below this share of GPU memory in use, a GPU is overprovisioned"
    )
    top_tier_price_per_hour: float = Field(
        2.5, gt=0, description="$/GPU-hour from which a tier counts as top tier (batch-over-tiered)"
    )
    min_online_batch: int = Field(8, ge=1, description="max-num-seqs below this idles an online server")
    min_batch_batch: int = Field(32, ge=1, description="max-num-seqs below this idles a batch job")
    min_cpu_cores: float = Field(2.0, ge=0, description="CPU limit below this starves an engine container")
    min_mem_fraction: float = Field(0.5, gt=0, le=1, description="memory fraction below this wastes the GPU")
    hours_per_month: float = Field(730.0, gt=0, description="hours in the monthly cost figures")
    never_recommend: tuple[str, ...] = Field(
        ("RTX-3090", "RTX-4090", "P100-PCIe-16GB", "V100-PCIe-16GB"),
        description="catalog GPU ids never offered as a recommendation",
    )


class CatalogConfig(Strict):
    gpus: list[dict[str, Any]] = Field(
        default_factory=list, description="GPU entries; same schema as the bundled catalog"
    )
    prices: dict[str, float] = Field(default_factory=dict, description="GPU id -> $/GPU-hour")
    models: list[dict[str, Any]] = Field(default_factory=list, description="model entries; same schema")
    hf_configs: dict[str, str] = Field(
        default_factory=dict, description="model id -> path of its Hugging Face config.json"
    )


class WebhookConfig(Strict):
    mode: Literal["enforce", "warn", "audit"] = "enforce"
    exempt_namespaces: list[str] = Field(default_factory=list)
    mode_label: str = "gpuplace.io/mode"
    scheduler_name: str | None = Field(None, description="set schedulerName on GPU pods to this, if given")
    timeout_budget_s: float = Field(1.5, gt=0, le=10)
    target_lookup_timeout_s: float = Field(0.5, gt=0, le=5)
    target_cache_ttl_s: float = Field(30.0, ge=0)
    max_body_bytes: int = Field(3 * 2**20, gt=0)
    findings_cache_size: int = Field(
        1024, ge=0, description="workloads whose findings are remembered by content (0: off)"
    )
    dra_memory_floor: bool = Field(
        False,
        description="on ResourceClaims made from a pod's claim template, add a CEL selector for the GPU "
        "memory the pod's model needs (gpuplace.io/gpu-memory-min), so the DRA allocator enforces it; "
        "needs the claims mutating webhook (docs/dra.md)",
    )
    native_constraints: bool = Field(
        False,
        description="also write the memory floor (gpuplace.io/gpu-memory-min) and a pinned tier as required "
        "node affinity on GPU Feature Discovery and Karpenter labels, so any scheduler and autoscaler keeps "
        "pods off GPUs too small for them; merged into the pod's own affinity without widening it (a pod "
        "whose nodes carry none of the labels stays Pending)",
    )
    native_constraint_labels: tuple[LabelFamily, ...] = Field(
        LABEL_FAMILIES,
        min_length=1,
        description="label families the native constraints use, OR-ed: gpu-feature-discovery "
        "(nvidia.com/gpu.memory), karpenter (karpenter.k8s.aws/instance-gpu-memory, instance-gpu-name)",
    )
    port: int = Field(8443, gt=0, lt=65536)
    cert_file: str = "/certs/tls.crt"
    key_file: str = "/certs/tls.key"
    cert_reload_s: float = Field(
        10.0, gt=0, le=3600, description="how often the serving certificate files are checked for a new pair"
    )


class ExtenderConfig(Strict):
    port: int = Field(8888, gt=0, lt=65536)
    address: str = Field("0.0.0.0", description="listen address (kube-scheduler calls 127.0.0.1 in the pod)")
    policy: str = Field("gpuplace", description="packing policy, one of placement.policies.POLICY_NAMES")
    nomination_ttl_s: float = Field(30.0, gt=0, description="how long a node /prioritize picked holds GPUs")
    assumed_ttl_s: float = Field(300.0, gt=0, description="how long a bind waits for the watch to show it")
    bind_timeout_s: float = Field(4.0, gt=0, le=30, description="the pods/binding API call's timeout")
    shape_window: int = Field(1000, ge=10, description="recent GPU pods whose shapes the packing serves")
    shortlist: int = Field(1, ge=0, description="/filter offers the best N fitting nodes; 0: all of them")
    watch_timeout_s: int = Field(300, ge=10, le=3600)
    max_body_bytes: int = Field(128 * 2**20, gt=0)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        from placement.policies import POLICY_NAMES

        if value not in POLICY_NAMES:
            raise ValueError(f"unknown policy {value!r}; known: {', '.join(POLICY_NAMES)}")
        return value


class Config(Strict):
    checks: ChecksConfig = ChecksConfig()
    severity: dict[str, Severity] = Field(
        default_factory=dict, description="finding code -> error|warning|info"
    )
    catalog: CatalogConfig = CatalogConfig()
    webhook: WebhookConfig = WebhookConfig()
    extender: ExtenderConfig = ExtenderConfig()
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("severity")
    @classmethod
    def _known_codes(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        known = {c.value for c in Code}
        for code in value:
            if code not in known:
                raise ValueError(f"unknown finding code {code!r}; known: {', '.join(sorted(known))}")
        return value

    def check_context(self) -> CheckContext:
        gpus = _gpu_catalog(self.catalog)
        models: ModelCatalog = default_model_catalog()
        if self.catalog.models:
            models = models.with_models(self.catalog.models)
        if self.catalog.hf_configs:
            models = _with_hf_configs(models, self.catalog.hf_configs, self._base_dir)
        settings = CheckSettings(**self.checks.model_dump(), severity_overrides=dict(self.severity))
        return CheckContext(gpus=gpus, models=models, settings=settings)


def _with_hf_configs(models: ModelCatalog, paths: dict[str, str], base: Path) -> ModelCatalog:
    """Architectures read from Hugging Face config.json files the user points at (relative to the config)."""
    archs = []
    for model_id, raw_path in paths.items():
        path = (base / raw_path).expanduser()
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
            archs.append(from_hf_config(config, model_id))
        except OSError as exc:
            raise ConfigError(f"catalog.hf_configs.{model_id}: cannot read {path}: {exc.strerror}") from exc
        except (json.JSONDecodeError, ModelError) as exc:
            raise ConfigError(f"catalog.hf_configs.{model_id}: {path}: {exc}") from exc
    return ModelCatalog([*models, *archs], [a.id for a in models.shape_references])


def _gpu_catalog(cfg: CatalogConfig) -> GpuCatalog:
    catalog = default_gpu_catalog()
    entries = [dict(e) for e in cfg.gpus]
    for gpu_id, price in cfg.prices.items():
        catalog.get(gpu_id)  # unknown id: KeyError with the catalog's message
        entries.append({"id": gpu_id, "price_per_hour": price})
    return catalog.with_overrides({"gpus": entries}) if entries else catalog


def load_config(path: str | None = None, environ: dict[str, str] | None = None) -> Config:
    """The config from `path` (or $GPUPLACE_CONFIG), with GPUPLACE_SECTION__FIELD overrides applied."""
    env = dict(os.environ if environ is None else environ)
    path = path or env.get(ENV_PREFIX + "CONFIG")
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"config {path}: cannot read: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path}: invalid YAML: {exc}".splitlines()[0]) from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: expected a mapping at the top level")
        data = loaded
    for key, value in env.items():
        if key.startswith(ENV_PREFIX) and "__" in key:
            section, _, field_name = key[len(ENV_PREFIX) :].lower().partition("__")
            data.setdefault(section, {})[field_name] = value
    try:
        config = Config.model_validate(data)
        if path:
            config._base_dir = Path(path).resolve().parent
        config.check_context()  # catalog overrides are validated here too
    except ValidationError as exc:
        raise ConfigError(f"config {path or '(defaults)'}: " + _first_error(exc)) from exc
    except ConfigError:
        raise
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"config {path or '(defaults)'}: {exc}") from exc
    return config


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more
