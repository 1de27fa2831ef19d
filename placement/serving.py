"""From a GPU container to a memory estimate on a given GPU: which model it serves (annotations, engine
arguments, the model catalog, the name), in which precision, with which engine settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from placement.catalog import GpuSpec
from placement.engines import EngineConfig
from placement.engines.defaults import Precision, default_max_model_len, precision, setup_for, setup_on
from placement.memory import GIB, MemoryEstimate, ServingSetup, estimate, weight_bytes_per_rank
from placement.models import ModelArch, ModelCatalog, Resolved
from placement.workload import ANNOTATION_PREFIX, GpuContainer, Workload

_DTYPE_ANNOTATION = {"bf16": None, "fp16": None, "fp8": "fp8", "int8": "int8", "int4": "int4"}


@dataclass
class Serving:
    """A resolved GPU container: the model it serves and the engine settings, ready to estimate."""

    workload: Workload
    container: GpuContainer
    engine: EngineConfig
    model_name: str | None
    resolved: Resolved | None
    precision: Precision | None
    explicit_max_model_len: int | None
    explicit_max_num_seqs: int | None
    unresolved_reason: str = ""
    notes: list[str] = field(default_factory=list)
    # Derived once, kept as fields: every check and estimate reads them, several times each.
    arch: ModelArch | None = field(init=False, repr=False)
    # True when the architecture is a guess from the name or a parameter count, not a config.
    resolved_estimated: bool = field(init=False, repr=False)
    # GPUs one serving instance spans (LeaderWorkerSet: group size x per-pod GPUs).
    gpus_per_replica: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        r = self.resolved
        self.arch = r.arch if r else None
        self.resolved_estimated = r is not None and (r.arch.estimated or r.how == "name")
        group = self.workload.group_gpus
        self.gpus_per_replica = group if group is not None else self.container.gpus * self.workload.group_size

    @property
    def gpus_per_pod(self) -> int:
        return self.container.gpus

    def max_model_len(self) -> int:
        if self.explicit_max_model_len:
            return self.explicit_max_model_len
        assert self.arch is not None
        return default_max_model_len(self.engine, self.arch.context)

    def setup(self, gpu: GpuSpec, tp: int | None = None, usable_gib: float | None = None) -> ServingSetup:
        assert self.precision is not None
        return setup_on(
            self.engine, self.precision, gpu, self.max_model_len(), self.explicit_max_num_seqs, tp, usable_gib
        )

    def estimate(self, gpu: GpuSpec, tp: int | None = None) -> MemoryEstimate:
        assert self.arch is not None
        return estimate(self.arch, self.setup(gpu, tp))

    def weights_total_gib(self) -> float:
        """Bytes of the whole model at the served precision: what a cold start has to load."""
        assert self.arch is not None and self.precision is not None
        # One rank holding it all: tp=1 and pp=1 (a NamedTuple _replace, not a copy of the engine config).
        setup = setup_for(self.engine, self.precision, 1000.0, 1, 1, tp=1)._replace(pp=1)
        return weight_bytes_per_rank(self.arch, setup) / GIB


def resolve(workload: Workload, container: GpuContainer, models: ModelCatalog) -> Serving:
    engine = container.engine or EngineConfig(engine="annotations")
    # Most workloads carry no gpuplace.io annotations: then none of the five lookups below can hit.
    annotated = bool(workload.annotations) and any(
        k.startswith(ANNOTATION_PREFIX) for k in workload.annotations
    )
    model_name = (annotated and workload.annotation("model")) or engine.model
    params = annotated and workload.annotation("params")
    resolved = models.resolve(model_name) if model_name else None
    if resolved is None and params:
        resolved = models.resolve(f"{model_name or 'model'}-{params}")
    max_len = (annotated and _int_annotation(workload, "max-model-len")) or engine.max_model_len
    max_seqs = (annotated and _int_annotation(workload, "max-num-seqs")) or engine.max_num_seqs
    serving = Serving(workload, container, engine, model_name, resolved, None, max_len, max_seqs)
    if resolved is None:
        serving.unresolved_reason = _why_unresolved(container, engine, model_name)
        return serving
    dtype = workload.annotation("dtype") if annotated else None
    override = _DTYPE_ANNOTATION.get(dtype.lower()) if dtype else None
    serving.precision = precision(engine, resolved.arch.dtype, resolved.quant, override)
    if dtype and dtype.lower() in {"bf16", "fp16"}:
        serving.precision = Precision(weights=dtype.lower(), kv=dtype.lower())
    return serving


def _int_annotation(workload: Workload, key: str) -> int | None:
    value = workload.annotation(key)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _why_unresolved(container: GpuContainer, engine: EngineConfig, model_name: str | None) -> str:
    if "model" in engine.unknown:
        return "the model comes from valueFrom (unknown at deploy time); set annotation gpuplace.io/model"
    if model_name:
        return (
            f"model {model_name!r} is not in the catalog and its name gives no size; "
            "set annotation gpuplace.io/params (e.g. 70B) or add it to the model catalog"
        )
    if container.engine is None:
        return (
            "no known serving engine in command/args; set annotations gpuplace.io/model or gpuplace.io/params"
        )
    return f"no model argument found for {engine.engine}; set annotation gpuplace.io/model"
