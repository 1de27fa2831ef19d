"""GPUs a node publishes through Dynamic Resource Allocation: ResourceSlices of the NVIDIA DRA driver.

A node whose GPUs are managed by the NVIDIA DRA driver (k8s-dra-driver-gpu, driver `gpu.nvidia.com`)
has no allocatable `nvidia.com/gpu`; its kubelet plugin publishes one ResourceSlice per node (pool = node
name) with a device per GPU. Attribute names are the driver's (cmd/gpu-kubelet-plugin/deviceinfo.go,
mig.go): `type` (gpu | mig | vfio), `productName` (NVML's name, e.g. "NVIDIA H100 80GB HBM3"),
`architecture`, `cudaComputeCapability`, `uuid`, MIG `profile` and `parentUUID`, and the standard
`resource.kubernetes.io/pcieRoot` / `pciBusID`; capacity `memory` (bytes). `numa` and `clique`
attributes are read where a driver publishes them.

`node_with_dra_gpus` folds those devices into the Node object the rest of gpuplace reads (allocatable
`nvidia.com/gpu`, the GPU Feature Discovery product and memory labels), so topology, filtering, scoring,
fragmentation and dark-capacity figures are the same for both dialects. Pure: parsed objects in and out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from placement.cel import NVIDIA_DRIVER, quantity_int

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"
MEMORY_LABEL = "nvidia.com/gpu.memory"
CLIQUE_LABEL = "nvidia.com/gpu.clique"
PCIE_ROOT = "resource.kubernetes.io/pcieRoot"
MAX_DEVICES = 128  # k8s.io/api/resource/v1 ResourceSliceMaxDevices


@dataclass(frozen=True)
class SliceDevice:
    name: str
    pool: str
    type: str  # gpu | mig | vfio | "" (not said)
    product: str = ""
    memory_bytes: int | None = None
    architecture: str = ""
    pcie_root: str = ""
    numa: int | None = None
    clique: str = ""
    profile: str = ""

    @property
    def whole_gpu(self) -> bool:
        return self.type in ("gpu", "") and bool(self.product)


@dataclass(frozen=True)
class NodeSlice:
    """The GPU devices of one ResourceSlice, and the node they are on ("" for network-attached pools)."""

    name: str
    node: str
    devices: tuple[SliceDevice, ...]


def read_slice(obj: Mapping[str, Any]) -> NodeSlice | None:
    """The NVIDIA GPU devices of a ResourceSlice, or None when it is another driver's. Never raises:
    a device gpuplace cannot read is left out."""
    spec = obj.get("spec") if isinstance(obj, Mapping) else None
    if not isinstance(spec, Mapping) or spec.get("driver") != NVIDIA_DRIVER:
        return None
    pool: Mapping[str, Any] = spec["pool"] if isinstance(spec.get("pool"), Mapping) else {}
    devices = []
    for raw in (spec.get("devices") or [])[:MAX_DEVICES]:
        if isinstance(raw, Mapping) and raw.get("name"):
            devices.append(_device(raw, str(pool.get("name", ""))))
    name = str((obj.get("metadata") or {}).get("name", ""))
    return NodeSlice(name, str(spec.get("nodeName") or ""), tuple(devices))


def _device(raw: Mapping[str, Any], pool: str) -> SliceDevice:
    attrs: Mapping[str, Any] = raw["attributes"] if isinstance(raw.get("attributes"), Mapping) else {}
    capacity: Mapping[str, Any] = raw["capacity"] if isinstance(raw.get("capacity"), Mapping) else {}

    def attr(name: str, kind: str = "string") -> Any:
        # Attribute keys without a domain are in the driver's own domain (gpu.nvidia.com/<name>).
        value = attrs.get(name, attrs.get(f"{NVIDIA_DRIVER}/{name}"))
        return value.get(kind) if isinstance(value, Mapping) else None

    numa = attr("numa", "int")
    return SliceDevice(
        name=str(raw["name"]),
        pool=pool,
        type=str(attr("type") or ""),
        product=str(attr("productName") or ""),
        memory_bytes=_capacity_bytes(capacity.get("memory")),
        architecture=str(attr("architecture") or ""),
        pcie_root=str(attr(PCIE_ROOT) or ""),
        numa=numa if type(numa) is int else None,
        clique=str(attr("clique") or ""),
        profile=str(attr("profile") or ""),
    )


def _capacity_bytes(value: Any) -> int | None:
    return quantity_int(value.get("value") if isinstance(value, Mapping) else None)


def node_with_dra_gpus(node: Mapping[str, Any], slices: Iterable[NodeSlice]) -> Mapping[str, Any]:
    """The Node as gpuplace reads it, with the whole GPUs its ResourceSlices publish. A node that already
    has allocatable nvidia.com/gpu (device plugin) is returned as it is: the GPUs must not count twice."""
    gpus = [d for s in slices for d in s.devices if d.whole_gpu]
    status = node.get("status") or {}
    allocatable = status.get("allocatable") or {}
    if not gpus or str(allocatable.get(GPU_RESOURCE, "0")).strip() not in ("", "0"):
        return node
    product = Counter(d.product for d in gpus).most_common(1)[0][0]
    meta = node.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    labels.setdefault(PRODUCT_LABEL, product.replace(" ", "-"))  # GPU Feature Discovery's spelling
    memory = [d.memory_bytes for d in gpus if d.product == product and d.memory_bytes]
    if memory:
        labels.setdefault(MEMORY_LABEL, str(min(memory) // 2**20))
    clique = next((d.clique for d in gpus if d.clique), "")
    if clique:
        labels.setdefault(CLIQUE_LABEL, clique)
    return {
        **node,
        "metadata": {**meta, "labels": labels},
        "status": {**status, "allocatable": {**allocatable, GPU_RESOURCE: str(len(gpus))}},
    }


# The claims Kubernetes makes for a DRA-backed extended resource: their pods ask for nvidia.com/gpu in
# limits, and are counted through those (their devices must not count a second time).
EXTENDED_RESOURCE_CLAIM = "resource.kubernetes.io/extended-resource-claim"


@dataclass(frozen=True)
class ClaimAllocation:
    """The NVIDIA GPUs a ResourceClaim holds (status.allocation), on one node."""

    uid: str
    key: str  # namespace/name
    node: str  # "" when the allocation does not name one (read it from the pools)
    devices: tuple[tuple[str, str], ...]  # (pool, device)


def read_allocation(obj: Mapping[str, Any]) -> ClaimAllocation | None:
    """What a claim's allocation holds of the NVIDIA driver's devices; None if nothing (or not ours)."""
    meta = obj.get("metadata") or {}
    if (meta.get("annotations") or {}).get(EXTENDED_RESOURCE_CLAIM) == "true":
        return None
    allocation = (obj.get("status") or {}).get("allocation") or {}
    results = (allocation.get("devices") or {}).get("results") or []
    devices = tuple(
        (str(r.get("pool", "")), str(r.get("device", "")))
        for r in results
        if isinstance(r, Mapping) and r.get("driver") == NVIDIA_DRIVER
    )
    if not devices:
        return None
    key = f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"
    return ClaimAllocation(str(meta.get("uid") or key), key, _selected_node(allocation), devices)


def _selected_node(allocation: Mapping[str, Any]) -> str:
    """The node of a node-local allocation: nodeSelector matchFields metadata.name In [node]."""
    for term in (allocation.get("nodeSelector") or {}).get("nodeSelectorTerms") or []:
        for field in (term or {}).get("matchFields") or []:
            values = field.get("values") or []
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return ""
