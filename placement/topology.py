"""The node model the extender, the planner and the simulator share: GPUs, CPU, memory, NVLink domains.

Two views of the same facts:

- `GpuNode` (one node, plain Python) and `PodRequest` (one pod) for code that handles a few objects, such
  as the extender building the model from Kubernetes Node and Pod objects;
- `Cluster`, the same nodes as numpy arrays (one row per node), so that filtering and scoring a pod
  against 20,000 nodes is a handful of vectorized operations.

GPU capacity is counted in milli-GPUs: a GPU has 1000, a shared-GPU pod asks for a share (1..999) of one
GPU, a whole-GPU pod for 1000 on each of its GPUs. A whole-GPU request only takes GPUs that are entirely
free, as the device plugins (and the paper's simulator) do.

NVLink layout per node (design.md "Nodes"): `switch` puts all GPUs of the node in one domain (HGX/DGX SXM;
a smaller `domain_size` splits the node into equal domains, e.g. a V100 hybrid cube-mesh as two fully
connected quads), `pairs` makes domains of 2 (PCIe cards with NVLink bridges), `none` makes every GPU a
domain of its own (PCIe only). GPU `i` belongs to domain `i // domain_size`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

MILLI = 1000  # milli-GPUs in one GPU
MAX_MODELS = 62  # GPU models are bits of an int64 mask

NvlinkKind = Literal["switch", "pairs", "none"]
NVLINK_KINDS: tuple[NvlinkKind, ...] = ("switch", "pairs", "none")

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


class TopologyError(ValueError):
    """A node or pod that cannot exist (negative capacity, share above 1000, unknown layout)."""


@dataclass(frozen=True)
class NvlinkLayout:
    """How a node's GPUs are joined by NVLink. `domain_size` 0 means the natural size for the kind."""

    kind: NvlinkKind = "none"
    domain_size: int = 0

    def __post_init__(self) -> None:
        if self.kind not in NVLINK_KINDS:
            raise TopologyError(f"nvlink kind {self.kind!r} is not one of {', '.join(NVLINK_KINDS)}")
        if self.domain_size < 0:
            raise TopologyError(f"nvlink domain size {self.domain_size} is negative")

    def size_for(self, gpu_count: int) -> int:
        """GPUs per domain on a node with `gpu_count` GPUs (1: no NVLink between any two GPUs)."""
        if self.kind == "none" or gpu_count <= 1:
            return 1
        natural = gpu_count if self.kind == "switch" else 2
        return max(1, min(self.domain_size or natural, gpu_count))


@dataclass(frozen=True)
class PodRequest:
    """What one pod asks for. `gpu_models` empty: any model; otherwise the models it may run on."""

    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int = 0
    gpu_milli: int = 0  # per GPU: 1000 whole, 1..999 a share of one GPU
    gpu_models: frozenset[str] = frozenset()
    nvlink_required: bool = False

    def __post_init__(self) -> None:
        if self.cpu_milli < 0 or self.memory_mib < 0 or self.num_gpu < 0:
            raise TopologyError(f"pod {self.name}: negative request")
        if self.num_gpu and not 0 < self.gpu_milli <= MILLI:
            raise TopologyError(f"pod {self.name}: gpu_milli {self.gpu_milli} outside 1..{MILLI}")
        if self.num_gpu > 1 and self.gpu_milli != MILLI:
            raise TopologyError(f"pod {self.name}: a GPU share below {MILLI} is only possible on one GPU")

    @property
    def gpu_request_milli(self) -> int:
        """Per-GPU request, 0 for a CPU-only pod."""
        return self.gpu_milli if self.num_gpu else 0

    @property
    def total_gpu_milli(self) -> int:
        return self.num_gpu * self.gpu_request_milli

    @property
    def is_shared(self) -> bool:
        return self.num_gpu == 1 and self.gpu_milli < MILLI

    @property
    def needs_domain(self) -> bool:
        """Whether the pod must sit inside one NVLink domain (only whole multi-GPU pods can)."""
        return self.nvlink_required and self.num_gpu > 1


@dataclass
class GpuNode:
    """One node as the scheduler sees it. Free amounts default to the totals (an empty node)."""

    name: str
    model: str
    cpu_milli_total: int
    memory_mib_total: int
    gpu_free_milli: list[int] = field(default_factory=list)
    cpu_milli_free: int | None = None
    memory_mib_free: int | None = None
    nvlink: NvlinkLayout = NvlinkLayout()

    def __post_init__(self) -> None:
        if self.cpu_milli_free is None:
            self.cpu_milli_free = self.cpu_milli_total
        if self.memory_mib_free is None:
            self.memory_mib_free = self.memory_mib_total
        if any(not 0 <= f <= MILLI for f in self.gpu_free_milli):
            raise TopologyError(f"node {self.name}: free GPU share outside 0..{MILLI}")
        if self.cpu_milli_total < 0 or self.memory_mib_total < 0:
            raise TopologyError(f"node {self.name}: negative capacity")

    @classmethod
    def empty(cls, name: str, model: str, gpus: int, cpu_milli: int, memory_mib: int,
              nvlink: NvlinkLayout = NvlinkLayout()) -> GpuNode:
        return cls(name, model, cpu_milli, memory_mib, [MILLI] * gpus, nvlink=nvlink)

    @property
    def gpu_count(self) -> int:
        return len(self.gpu_free_milli)

    @property
    def domain_size(self) -> int:
        return self.nvlink.size_for(self.gpu_count)

    def free_whole_gpus(self) -> list[int]:
        return [i for i, f in enumerate(self.gpu_free_milli) if f == MILLI]

    def domains(self) -> list[list[int]]:
        """GPU indices of each NVLink domain, in index order."""
        size = self.domain_size
        return [list(range(s, min(s + size, self.gpu_count))) for s in range(0, self.gpu_count, size)]

    def free_blocks(self) -> list[int]:
        """Entirely free GPUs in each NVLink domain."""
        return [sum(self.gpu_free_milli[i] == MILLI for i in d) for d in self.domains()]

    def largest_free_block(self) -> int:
        """The most whole GPUs one NVLink-bound pod could get here."""
        return max(self.free_blocks(), default=0)


def _domain_of(gpu_count: IntArray, domain_size: IntArray, width: int) -> IntArray:
    """Domain index of every GPU slot, -1 for slots past the node's GPU count."""
    slots = np.arange(width)[None, :]
    dom = slots // domain_size[:, None]
    return np.where(slots < gpu_count[:, None], dom, -1)


class Cluster:
    """All nodes as arrays. Rows are nodes; `gpu_free[n, i]` is the free milli-share of GPU i of node n
    (slots past the node's GPU count hold 0, so they never host anything and count as nothing free).

    `version[n]` goes up whenever node n changes, so scorers can cache per-node results.
    """

    def __init__(self, nodes: Sequence[GpuNode]) -> None:
        if not nodes:
            raise TopologyError("a cluster needs at least one node")
        self.names: list[str] = [n.name for n in nodes]
        self.models: tuple[str, ...] = tuple(sorted({n.model for n in nodes}))
        if len(self.models) > MAX_MODELS:
            raise TopologyError(f"{len(self.models)} GPU models; at most {MAX_MODELS} supported")
        model_index = {m: i for i, m in enumerate(self.models)}
        self.model_id: IntArray = np.array([model_index[n.model] for n in nodes], dtype=np.int64)
        self.model_bit: IntArray = np.left_shift(np.int64(1), self.model_id)
        self.gpu_count: IntArray = np.array([n.gpu_count for n in nodes], dtype=np.int64)
        self.width = max(1, int(self.gpu_count.max()))
        self.gpu_free: IntArray = np.zeros((len(nodes), self.width), dtype=np.int64)
        for row, node in enumerate(nodes):
            self.gpu_free[row, : node.gpu_count] = node.gpu_free_milli
        self.cpu_total: IntArray = np.array([n.cpu_milli_total for n in nodes], dtype=np.int64)
        self.cpu_free: IntArray = np.array([n.cpu_milli_free for n in nodes], dtype=np.int64)
        self.mem_total: IntArray = np.array([n.memory_mib_total for n in nodes], dtype=np.int64)
        self.mem_free: IntArray = np.array([n.memory_mib_free for n in nodes], dtype=np.int64)
        self.nvlink: list[NvlinkLayout] = [n.nvlink for n in nodes]
        self.domain_size: IntArray = np.array([n.domain_size for n in nodes], dtype=np.int64)
        self.has_nvlink: BoolArray = self.domain_size > 1
        self.domain_of: IntArray = _domain_of(self.gpu_count, self.domain_size, self.width)
        self.version: IntArray = np.zeros(len(nodes), dtype=np.int64)
        self.uid = uuid.uuid4().hex  # lets caches tell two clusters apart

    def __len__(self) -> int:
        return len(self.names)

    # ---- single-node view -------------------------------------------------------------------------
    def node(self, n: int) -> GpuNode:
        return GpuNode(
            name=self.names[n], model=self.models[self.model_id[n]],
            cpu_milli_total=int(self.cpu_total[n]), memory_mib_total=int(self.mem_total[n]),
            gpu_free_milli=[int(f) for f in self.gpu_free[n, : self.gpu_count[n]]],
            cpu_milli_free=int(self.cpu_free[n]), memory_mib_free=int(self.mem_free[n]),
            nvlink=self.nvlink[n],
        )

    # ---- capacity ---------------------------------------------------------------------------------
    @property
    def gpu_capacity_milli(self) -> int:
        return int(self.gpu_count.sum()) * MILLI

    def gpu_free_total(self, nodes: IntArray | None = None) -> IntArray:
        free = self.gpu_free if nodes is None else self.gpu_free[nodes]
        return free.sum(axis=1)

    def gpu_used_milli(self) -> int:
        return self.gpu_capacity_milli - int(self.gpu_free.sum())

    def whole_free(self, nodes: IntArray | None = None) -> IntArray:
        """Entirely free GPUs per node."""
        free = self.gpu_free if nodes is None else self.gpu_free[nodes]
        return (free == MILLI).sum(axis=1)

    def free_blocks(self, nodes: IntArray | None = None) -> IntArray:
        """[nodes, width]: entirely free GPUs in each NVLink domain (domain d in column d)."""
        sel = slice(None) if nodes is None else nodes
        whole = self.gpu_free[sel] == MILLI
        dom = self.domain_of[sel]
        return np.stack([(whole & (dom == d)).sum(axis=1) for d in range(self.width)], axis=1)

    def largest_free_block(self, nodes: IntArray | None = None) -> IntArray:
        """Most whole GPUs inside one NVLink domain, per node (1 on PCIe-only nodes with a free GPU)."""
        return self.free_blocks(nodes).max(axis=1)

    # ---- fit --------------------------------------------------------------------------------------
    def model_mask(self, models: frozenset[str]) -> int:
        """Bit mask of the cluster's models a pod may use (all bits when it names none)."""
        if not models:
            return -1
        mask = 0
        for i, m in enumerate(self.models):
            if m in models:
                mask |= 1 << i
        return mask

    def feasible(self, pod: PodRequest, nodes: IntArray | None = None) -> BoolArray:
        """Which nodes (all, or the given rows) can take the pod now: CPU, memory, model, GPUs."""
        sel = slice(None) if nodes is None else nodes
        ok = (self.cpu_free[sel] >= pod.cpu_milli) & (self.mem_free[sel] >= pod.memory_mib)
        if not pod.num_gpu:
            return ok
        ok &= (self.model_bit[sel] & self.model_mask(pod.gpu_models)) != 0
        if pod.needs_domain:
            return ok & (self.largest_free_block(nodes) >= pod.num_gpu)
        fits = (self.gpu_free[sel] >= pod.gpu_milli).sum(axis=1)
        return ok & (fits >= pod.num_gpu)

    def place(self, n: int, pod: PodRequest, gpus: Sequence[int]) -> None:
        """Bind the pod to node n on the given GPU indices."""
        if len(gpus) != pod.num_gpu:
            raise TopologyError(f"pod {pod.name} needs {pod.num_gpu} GPUs, got {len(gpus)}")
        idx = np.asarray(gpus, dtype=np.int64)
        outside = np.any(idx >= self.gpu_count[n])
        if pod.num_gpu and (outside or np.any(self.gpu_free[n, idx] < pod.gpu_milli)):
            raise TopologyError(f"pod {pod.name} does not fit GPUs {list(gpus)} of {self.names[n]}")
        if len(set(gpus)) != len(gpus):
            raise TopologyError(f"pod {pod.name}: GPU indices repeat: {list(gpus)}")
        if self.cpu_free[n] < pod.cpu_milli or self.mem_free[n] < pod.memory_mib:
            raise TopologyError(f"pod {pod.name} does not fit the CPU or memory left on {self.names[n]}")
        self.gpu_free[n, idx] -= pod.gpu_milli
        self.cpu_free[n] -= pod.cpu_milli
        self.mem_free[n] -= pod.memory_mib
        self.version[n] += 1
