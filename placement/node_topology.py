"""Kubernetes Nodes as the scheduler-side node model: topology, GPU memory, price and NVLink clique.

The planner's reader (`placement.planner.snapshot.node_from_k8s`) decides what a GPU node is and which
catalog GPU it carries (design.md, "Nodes": tier from `nvidia.com/gpu.product`, else the cloud labels;
GPU count from allocatable `nvidia.com/gpu`; NVLink layout per product in the catalog; multi-node NVLink
domain from `nvidia.com/gpu.clique`). This module adds what the extender's filter and score need on top:

- `gpu_memory_mib`: what one GPU offers a workload, in MiB as CUDA reports it (the unit of the
  `gpuplace.io/gpu-memory-min` annotation): the catalog's `usable_gib` when the product is known, else the
  `nvidia.com/gpu.memory` label (NVML total, a little above what CUDA reports), else unknown;
- `price_per_hour` per GPU from the catalog (unknown products: None);
- a `NodeTable` that keeps these per-node facts as arrays aligned with the rows of a `Cluster`, so that
  filtering and scoring 20,000 nodes stays vectorized.

Pure: reads parsed objects only.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from placement.catalog import GFD_PRODUCT_LABEL, GpuCatalog
from placement.planner.snapshot import SnapshotError, node_from_k8s
from placement.topology import BoolArray, Cluster, FloatArray, GpuNode, IntArray, NvlinkLayout

GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
CLIQUE_LABEL = "nvidia.com/gpu.clique"
UNKNOWN = -1


class NodeReadError(ValueError):
    """A Node object the extender cannot use; the message names the node and the field."""


@dataclass(frozen=True)
class NodeInfo:
    """One GPU node's static facts (capacity, topology, price); what is free comes from its pods."""

    name: str
    model: str  # catalog GPU id, or the product label value when the catalog does not know it
    gpu_count: int
    cpu_milli: int
    memory_mib: int
    nvlink: NvlinkLayout
    clique: str = ""
    schedulable: bool = True
    gpu_memory_mib: int | None = None  # per GPU, CUDA-usable MiB
    price_per_hour: float | None = None  # per GPU
    product: str = ""  # the nvidia.com/gpu.product label as the node carries it (for people)

    @property
    def domain_size(self) -> int:
        return self.nvlink.size_for(self.gpu_count)

    def empty_gpu_node(self) -> GpuNode:
        return GpuNode.empty(self.name, self.model, self.gpu_count, self.cpu_milli, self.memory_mib,
                             self.nvlink)


def node_info_from_k8s(obj: Mapping[str, Any], catalog: GpuCatalog) -> NodeInfo | None:
    """The node's facts, or None for a node without allocatable GPUs."""
    try:
        snap = node_from_k8s(obj, catalog)
    except (SnapshotError, KeyError, TypeError, AttributeError) as exc:
        name = (obj.get("metadata") or {}).get("name", "?") if isinstance(obj, Mapping) else "?"
        raise NodeReadError(f"Node {name}: {exc}") from exc
    if snap is None:
        return None
    labels = (obj.get("metadata") or {}).get("labels") or {}
    spec = catalog.get(snap.model) if snap.model in catalog else None
    memory: int | None = None
    if spec is not None:
        memory = int(spec.usable_gib * 1024)
    else:
        raw = str(labels.get(GPU_MEMORY_LABEL, "")).strip()
        if raw.isdigit():
            memory = int(raw)
    return NodeInfo(
        name=snap.name, model=snap.model, gpu_count=snap.gpu_count, cpu_milli=snap.cpu_milli,
        memory_mib=snap.memory_mib, nvlink=snap.nvlink, clique=snap.clique, schedulable=snap.schedulable,
        gpu_memory_mib=memory, price_per_hour=spec.price_per_hour if spec is not None else None,
        product=str(labels.get(GFD_PRODUCT_LABEL, snap.model)),
    )


class NodeTable:
    """Per-node facts as arrays in the row order of the `Cluster` built with them (`cluster()`).

    `gpu_memory_mib` is -1 where unknown, `price` NaN where unknown, `clique_id` -1 for nodes outside a
    multi-node NVLink domain. `host_json[row]` is the start of the node's `HostPriority` JSON object, so
    /prioritize can write thousands of entries without building a dict per node.
    """

    def __init__(self, infos: Sequence[NodeInfo]) -> None:
        self.infos: tuple[NodeInfo, ...] = tuple(infos)
        self.names: list[str] = [i.name for i in self.infos]
        self.row: dict[str, int] = {n: r for r, n in enumerate(self.names)}
        if len(self.row) != len(self.names):
            raise NodeReadError("a node name appears twice")
        self.gpu_memory_mib: IntArray = np.array(
            [UNKNOWN if i.gpu_memory_mib is None else i.gpu_memory_mib for i in self.infos], dtype=np.int64)
        self.price: FloatArray = np.array(
            [np.nan if i.price_per_hour is None else i.price_per_hour for i in self.infos], dtype=np.float64)
        self.cliques: list[str] = sorted({i.clique for i in self.infos if i.clique})
        clique_index = {c: k for k, c in enumerate(self.cliques)}
        self.clique_id: IntArray = np.array([clique_index.get(i.clique, UNKNOWN) for i in self.infos],
                                            dtype=np.int64)
        self.schedulable: BoolArray = np.array([i.schedulable for i in self.infos], dtype=bool)
        self.host_json: list[str] = ['{"Host":' + json.dumps(n) + ',"Score":' for n in self.names]

    def __len__(self) -> int:
        return len(self.infos)

    def cluster(self) -> Cluster:
        """A Cluster of these nodes, all GPUs, CPU and memory free (the caller applies the pods)."""
        return Cluster([i.empty_gpu_node() for i in self.infos])

    def rows_of(self, names: Sequence[str]) -> IntArray:
        """Row of each name, -1 for names this table does not hold."""
        if len(names) > 1:
            try:
                return np.array(operator.itemgetter(*names)(self.row), dtype=np.int64)
            except KeyError:
                pass  # some names unknown: one by one
        get = self.row.get
        return np.fromiter((get(n, UNKNOWN) for n in names), dtype=np.int64, count=len(names))
