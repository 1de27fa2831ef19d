"""AIBrix (https://aibrix.readthedocs.io/): RayClusterFleet and ModelAdapter. Its Deployment-based
model servers are plain Deployments, read as such.

- `RayClusterFleet` (orchestration.aibrix.ai/v1alpha1): `spec.replicas` RayClusters made from
  `spec.template.spec` (a RayCluster spec: head and worker groups); multi-node vLLM runs
  `vllm serve ... --distributed-executor-backend ray` in the head, over the GPUs of the whole cluster.
- `ModelAdapter` (model.aibrix.ai/v1alpha1): a LoRA adapter (`artifactURL`) loaded into the pods its
  `podSelector` picks, which serve `baseModel`. It asks for no GPUs of its own: those pods are judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from placement.catalog import GpuCatalog
from placement.workload import Workload, field_int, field_map
from placement.workloads.base import not_judged
from placement.workloads.ray import cluster_workload


def ray_cluster_fleet(obj: Mapping[str, Any], catalog: GpuCatalog) -> Workload | None:
    spec = field_map(obj.get("spec"), "spec")
    template = field_map(spec.get("template") or {}, "spec.template")
    cluster = field_map(template.get("spec") or {}, "spec.template.spec")
    replicas = field_int(spec, ("replicas",), 1) or 0
    return cluster_workload(obj, cluster, ("spec", "template", "spec"), catalog, replicas=replicas)


def model_adapter(obj: Mapping[str, Any], _catalog: GpuCatalog) -> Workload | None:
    spec = field_map(obj.get("spec"), "spec")
    base = spec.get("baseModel") or "its base model"
    return not_judged(
        obj,
        "lora-adapter",
        f"a LoRA adapter loaded into the pods of {base}; those pods are judged (without the adapter's "
        "weights)",
    )
