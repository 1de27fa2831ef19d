"""Readers for the CRDs that serve models, one module per project: Ray (`ray.py`), KubeAI
(`kubeai.py`), KServe LLMInferenceService (`llmisvc.py`), AIBrix (`aibrix.py`), NVIDIA Dynamo
(`dynamo.py`). Each turns its CRD's documented form into `Workload`s (a serving component each) that the
checks judge as they judge a Deployment; what a reader cannot read becomes a workload that says why."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from placement.catalog import GpuCatalog
from placement.workload import Workload
from placement.workloads import aibrix, dynamo, kubeai, llmisvc, ray

Reader = Callable[[Mapping[str, Any], GpuCatalog], Workload | None]

# (API group, kind) -> reader. The group matters: `Model` is KubeAI's only in kubeai.org.
READERS: Mapping[tuple[str, str], Reader] = {
    ("ray.io", "RayService"): ray.ray_service,
    ("ray.io", "RayCluster"): ray.ray_cluster,
    ("kubeai.org", "Model"): kubeai.model,
    ("serving.kserve.io", "LLMInferenceService"): llmisvc.read,
    ("orchestration.aibrix.ai", "RayClusterFleet"): aibrix.ray_cluster_fleet,
    ("model.aibrix.ai", "ModelAdapter"): aibrix.model_adapter,
    ("nvidia.com", "DynamoGraphDeployment"): dynamo.read,
}


def read_crd(obj: Mapping[str, Any], catalog: GpuCatalog) -> Workload | None:
    """The workload of a CRD object, or None when it is not one gpuplace reads or asks for no GPUs."""
    group = str(obj.get("apiVersion") or "").split("/", 1)[0]
    reader = READERS.get((group, str(obj.get("kind"))))
    return reader(obj, catalog) if reader is not None else None
