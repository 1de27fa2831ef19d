"""The planner's model of a cluster, and the reader that builds it from Kubernetes objects.

A snapshot is what `kubectl get nodes,pods,pdb -A -o json` prints (a `kind: List`), or the same objects
read from a live cluster. The planners need more than the scheduler's free counts: *which* pod holds
*which* GPU (to know what must move to open a block), whether the pod may move at all, what moving it
costs, and how many pods each PodDisruptionBudget still lets go. This module only turns parsed objects
into that model; reading files and talking to the API server stay in the CLI (`placement` does no I/O).

Reading rules (design.md, "Nodes"):
- A node with `status.allocatable["nvidia.com/gpu"] > 0` is a GPU node. Its GPU comes from the label
  `nvidia.com/gpu.product` (else the other tier labels) through the GPU catalog, which also gives the
  NVLink layout; a product the catalog does not know keeps its label value as model and gets no NVLink.
  `nvidia.com/gpu.clique` is kept (a multi-node NVLink domain; a pod still lives on one node).
  Cordoned nodes (`spec.unschedulable`) keep their pods but take no new ones.
- A pod is bound when it has `spec.nodeName` and its phase is neither Succeeded nor Failed; pending when
  it has no node. Requests: the sum over containers (a missing request defaults to the limit, as the API
  server does), at least the largest init container. GPUs: `nvidia.com/gpu` limits. Which GPUs: the
  annotation `gpuplace.io/gpus` ("0,1") when present, else the lowest indices still free.
- Movable: annotation `gpuplace.io/movable` "true"/"false" decides; otherwise a pod is movable when a
  controller that recreates it elsewhere owns it (ReplicaSet, StatefulSet, Job, LeaderWorkerSet,
  ReplicationController). DaemonSet pods come back on the same node and mirror (static) pods cannot be
  evicted, so neither moves; nor does a bare pod, which would simply be gone.
- A PodDisruptionBudget (policy/v1) allows `healthy - desired` disruptions, where healthy counts the
  matching pods that are Running and Ready, and desired comes from minAvailable or maxUnavailable (an int,
  or a percentage of the matching pods rounded up, as the disruption controller does). When the object
  carries `status.disruptionsAllowed`, the smaller of the two wins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from placement.catalog import GFD_PRODUCT_LABEL, TIER_LABEL_KEYS, GpuCatalog, default_gpu_catalog
from placement.topology import MILLI, GpuNode, NvlinkLayout, PodRequest, TopologyError

GPU_RESOURCE = "nvidia.com/gpu"
CLIQUE_LABEL = "nvidia.com/gpu.clique"
GPUS_ANNOTATION = "gpuplace.io/gpus"
MOVABLE_ANNOTATION = "gpuplace.io/movable"
NVLINK_ANNOTATION = "gpuplace.io/nvlink"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
RECREATING_OWNERS = frozenset({"ReplicaSet", "StatefulSet", "Job", "LeaderWorkerSet",
                               "ReplicationController"})
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
MIB = 1 << 20


class SnapshotError(ValueError):
    """Input the planner cannot use; the message names the object and the field."""


@dataclass(frozen=True)
class SnapNode:
    """A GPU node's capacity (allocatable) and layout. GPU `i` is in NVLink domain `i // domain_size`."""

    name: str
    model: str
    gpu_count: int
    cpu_milli: int
    memory_mib: int
    nvlink: NvlinkLayout = field(default_factory=NvlinkLayout)
    clique: str = ""
    schedulable: bool = True

    @property
    def domain_size(self) -> int:
        return self.nvlink.size_for(self.gpu_count)

    def domains(self) -> list[tuple[int, ...]]:
        """GPU indices of each NVLink domain, in index order."""
        size = self.domain_size
        return [tuple(range(s, min(s + size, self.gpu_count))) for s in range(0, self.gpu_count, size)]

    @classmethod
    def from_gpu_node(cls, node: GpuNode, clique: str = "", schedulable: bool = True) -> SnapNode:
        """The capacity of a topology node (its free amounts are ignored: pods say what is used)."""
        return cls(node.name, node.model, node.gpu_count, node.cpu_milli_total, node.memory_mib_total,
                   node.nvlink, clique, schedulable)


@dataclass(frozen=True)
class SnapPod:
    """One pod: its request, where it runs (`node` None: pending) and on which GPUs, and what moving it
    means. `labels` only serve PodDisruptionBudget selectors."""

    namespace: str
    name: str
    request: PodRequest
    node: str | None = None
    gpus: tuple[int, ...] = ()
    priority: int = 0
    movable: bool = False
    healthy: bool = True
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions entry of a label selector."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist


@dataclass(frozen=True)
class Budget:
    """A PodDisruptionBudget reduced to what the planner needs: whom it covers and how many may go."""

    namespace: str
    name: str
    match_labels: Mapping[str, str]
    expressions: tuple[Requirement, ...]
    allowed: int

    def covers(self, pod: SnapPod) -> bool:
        if pod.namespace != self.namespace:
            return False
        if any(pod.labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return all(r.matches(pod.labels) for r in self.expressions)


@dataclass
class Snapshot:
    """Nodes, the pods bound to them or pending, and the disruption budgets. Treat as read-only: pods are
    indexed by node when it is made (build a new one for another state, as `defrag.after_plan` does)."""

    nodes: list[SnapNode]
    pods: list[SnapPod]
    budgets: list[Budget] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_name: dict[str, SnapNode] = {n.name: n for n in self.nodes}
        if len(self.by_name) != len(self.nodes):
            raise SnapshotError("a node name appears twice")
        self._on: dict[str, list[SnapPod]] = {}
        for pod in self.pods:
            if pod.node is not None:
                self._on.setdefault(pod.node, []).append(pod)
        for node in self.nodes:
            self.gpu_used(node.name)  # raises on overcommitted or out-of-range GPUs

    def bound(self) -> list[SnapPod]:
        return [p for p in self.pods if p.node is not None]

    def pending(self) -> list[SnapPod]:
        return [p for p in self.pods if p.node is None]

    def pods_on(self, node: str) -> list[SnapPod]:
        return list(self._on.get(node, ()))

    def find(self, key: str) -> SnapPod | None:
        return next((p for p in self.pods if p.key == key), None)

    def gpu_used(self, node: str) -> list[int]:
        """Used milli-GPU of each GPU of the node."""
        spec = self.by_name[node]
        used = [0] * spec.gpu_count
        for pod in self.pods_on(node):
            for gpu in pod.gpus:
                if not 0 <= gpu < spec.gpu_count:
                    raise SnapshotError(f"pod {pod.key}: GPU {gpu} outside 0..{spec.gpu_count - 1} of {node}")
                used[gpu] += pod.request.gpu_milli
                if used[gpu] > MILLI:
                    raise SnapshotError(f"node {node}: GPU {gpu} is given to more pods than it holds")
        return used

    def gpu_node(self, node: str) -> GpuNode:
        """The node's free state in the topology model (free CPU and memory never below 0)."""
        spec = self.by_name[node]
        pods = self.pods_on(node)
        cpu = max(0, spec.cpu_milli - sum(p.request.cpu_milli for p in pods))
        mem = max(0, spec.memory_mib - sum(p.request.memory_mib for p in pods))
        return GpuNode(spec.name, spec.model, spec.cpu_milli, spec.memory_mib,
                       [MILLI - u for u in self.gpu_used(node)], cpu, mem, spec.nvlink)

    def gpu_nodes(self, schedulable_only: bool = True) -> list[GpuNode]:
        """Free state of every node (cordoned ones left out unless asked for)."""
        return [self.gpu_node(n.name) for n in self.nodes if n.schedulable or not schedulable_only]


# ---- reading Kubernetes objects ------------------------------------------------------------------------
def iter_objects(docs: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Every object in parsed documents, unwrapping `kind: List` / `items` (kubectl's output)."""
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise SnapshotError(f"expected a Kubernetes object or List, got {type(doc).__name__}")
        if "items" in doc and (doc.get("kind", "List").endswith("List")):
            yield from iter_objects(doc.get("items") or [])
        else:
            yield doc


def _where(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind', 'object')} {ns + '/' if ns else ''}{meta.get('name', '?')}"


def parse_quantity(value: Any, where: str) -> Decimal:
    """A Kubernetes quantity ("500m", "16Gi", "1e3", 2) as a Decimal."""
    from kubernetes.utils import parse_quantity as k8s_parse  # the client's own parser, imported lazily

    try:
        return Decimal(k8s_parse(value))
    except (ValueError, TypeError, InvalidOperation):
        raise SnapshotError(f"{where}: {value!r} is not a Kubernetes quantity") from None


def _milli(value: Any, where: str) -> int:
    return math.ceil(parse_quantity(value, where) * 1000)


def _mib(value: Any, where: str) -> int:
    return math.ceil(parse_quantity(value, where) / MIB)


def _count(value: Any, where: str) -> int:
    q = parse_quantity(value, where)
    if q != q.to_integral_value() or q < 0:
        raise SnapshotError(f"{where}: {value!r} is not a whole, non-negative count")
    return int(q)


def node_from_k8s(obj: Mapping[str, Any], catalog: GpuCatalog) -> SnapNode | None:
    """The planner's node, or None for a node without GPUs."""
    where = _where(obj)
    alloc = (obj.get("status") or {}).get("allocatable") or {}
    gpus = _count(alloc.get(GPU_RESOURCE, 0), f"{where}: status.allocatable[{GPU_RESOURCE}]")
    if not gpus:
        return None
    labels = (obj.get("metadata") or {}).get("labels") or {}
    model, layout = labels.get(GFD_PRODUCT_LABEL, "unknown"), NvlinkLayout()
    for key in TIER_LABEL_KEYS:
        spec = catalog.from_node_label(key, labels[key]) if key in labels else None
        if spec is not None:
            model, layout = spec.id, NvlinkLayout(spec.nvlink, spec.nvlink_domain_gpus)
            break
    return SnapNode(
        name=str(obj["metadata"]["name"]), model=model, gpu_count=gpus,
        cpu_milli=_milli(alloc.get("cpu", 0), f"{where}: status.allocatable.cpu"),
        memory_mib=_mib(alloc.get("memory", 0), f"{where}: status.allocatable.memory"),
        nvlink=layout, clique=str(labels.get(CLIQUE_LABEL, "")),
        schedulable=not (obj.get("spec") or {}).get("unschedulable", False),
    )


def _container_amounts(container: Mapping[str, Any], where: str) -> tuple[int, int, int]:
    res = container.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    name = container.get("name", "?")

    def amount(key: str) -> Any:
        return req.get(key, lim.get(key, 0))

    cpu = _milli(amount("cpu"), f"{where}: container {name} resources cpu")
    mem = _mib(amount("memory"), f"{where}: container {name} resources memory")
    gpu = _count(lim.get(GPU_RESOURCE, req.get(GPU_RESOURCE, 0)), f"{where}: container {name} {GPU_RESOURCE}")
    return cpu, mem, gpu


def _allowed_models(spec: Mapping[str, Any], catalog: GpuCatalog) -> frozenset[str]:
    """GPU models a pod may run on, from nodeSelector or required node affinity on the tier labels."""

    def resolve(key: str, value: str) -> str:
        hit = catalog.from_node_label(key, value)
        return hit.id if hit else value

    selector = spec.get("nodeSelector") or {}
    for key in TIER_LABEL_KEYS:
        if key in selector:
            return frozenset({resolve(key, str(selector[key]))})
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    allowed: set[str] = set()
    for term in required.get("nodeSelectorTerms") or []:
        term_models = {resolve(e["key"], str(v)) for e in term.get("matchExpressions") or []
                       if e.get("key") in TIER_LABEL_KEYS and e.get("operator") == "In"
                       for v in e.get("values") or []}
        if not term_models:
            return frozenset()  # one term without a GPU constraint lets the pod go anywhere
        allowed |= term_models
    return frozenset(allowed)


def pod_request_from_k8s(obj: Mapping[str, Any], catalog: GpuCatalog | None = None) -> PodRequest:
    """What a Pod asks for in the topology model. A multi-GPU pod needs one NVLink domain unless its
    `gpuplace.io/nvlink` annotation says `none` (the extender's rule when /mutate left no annotation)."""
    catalog = catalog or default_gpu_catalog()
    where = _where({"kind": "Pod", **obj})
    spec = obj.get("spec") or {}
    cpu = mem = gpu = 0
    for c in spec.get("containers") or []:
        c_cpu, c_mem, c_gpu = _container_amounts(c, where)
        cpu, mem, gpu = cpu + c_cpu, mem + c_mem, gpu + c_gpu
    for c in spec.get("initContainers") or []:
        c_cpu, c_mem, c_gpu = _container_amounts(c, where)
        cpu, mem, gpu = max(cpu, c_cpu), max(mem, c_mem), max(gpu, c_gpu)
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    nvlink = annotations.get(NVLINK_ANNOTATION, "required") != "none"
    models = _allowed_models(spec, catalog) if gpu else frozenset()
    name = str((obj.get("metadata") or {}).get("name", "?"))
    try:
        return PodRequest(name, cpu, mem, gpu, MILLI if gpu else 0, models, nvlink and gpu > 1)
    except TopologyError as exc:
        raise SnapshotError(f"{where}: {exc}") from exc


def is_movable(obj: Mapping[str, Any]) -> bool:
    """Whether evicting the pod gets it recreated elsewhere (see the module docstring)."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    flag = str(annotations.get(MOVABLE_ANNOTATION, "")).lower()
    if flag in ("true", "false"):
        return flag == "true"
    if MIRROR_ANNOTATION in annotations:
        return False
    owners = meta.get("ownerReferences") or []
    return any(o.get("controller", True) and o.get("kind") in RECREATING_OWNERS for o in owners)


def _is_healthy(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return status.get("phase") == "Running" and ready


def _gpu_annotation(obj: Mapping[str, Any], count: int, where: str) -> tuple[int, ...] | None:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(GPUS_ANNOTATION)
    if text is None:
        return None
    try:
        gpus = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise SnapshotError(f"{where}: annotation {GPUS_ANNOTATION} {text!r} is not a list of GPU indices") \
            from None
    if len(gpus) != count or len(set(gpus)) != count:
        raise SnapshotError(f"{where}: annotation {GPUS_ANNOTATION} {text!r} names {len(set(gpus))} "
                            f"distinct GPUs, the pod requests {count}")
    return gpus


def _assign_gpus(pods: list[tuple[SnapPod, tuple[int, ...] | None]], nodes: Mapping[str, SnapNode]
                 ) -> list[SnapPod]:
    """Pods with GPU indices: annotated ones keep theirs, the rest take the lowest indices still free."""
    taken: dict[str, set[int]] = {}
    for pod, gpus in pods:
        if pod.node is not None and gpus:
            taken.setdefault(pod.node, set()).update(gpus)
    out: list[SnapPod] = []
    for pod, gpus in pods:
        if pod.node is None or not pod.request.num_gpu or gpus is not None:
            out.append(pod if gpus is None else _with_gpus(pod, gpus))
            continue
        used = taken.setdefault(pod.node, set())
        free = [i for i in range(nodes[pod.node].gpu_count) if i not in used]
        if len(free) < pod.request.num_gpu:
            raise SnapshotError(f"Pod {pod.key}: node {pod.node} has {len(free)} GPUs left for its "
                                f"{pod.request.num_gpu}")
        chosen = tuple(free[: pod.request.num_gpu])
        used.update(chosen)
        out.append(_with_gpus(pod, chosen))
    return out


def _with_gpus(pod: SnapPod, gpus: tuple[int, ...]) -> SnapPod:
    return SnapPod(pod.namespace, pod.name, pod.request, pod.node, gpus, pod.priority, pod.movable,
                   pod.healthy, pod.labels)


def _scaled(value: Any, total: int, where: str) -> int:
    """An IntOrString of a PDB: an int, or 'N%' of `total` rounded up."""
    text = str(value).strip()
    if text.endswith("%"):
        try:
            return math.ceil(int(text[:-1]) * total / 100)
        except ValueError:
            raise SnapshotError(f"{where}: {value!r} is not an int or a percentage") from None
    try:
        return int(text)
    except ValueError:
        raise SnapshotError(f"{where}: {value!r} is not an int or a percentage") from None


def _selector(obj: Mapping[str, Any], where: str) -> tuple[dict[str, str], tuple[Requirement, ...]] | None:
    sel = (obj.get("spec") or {}).get("selector")
    if sel is None:
        return None  # policy/v1: a null selector matches no pod
    exprs = []
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise SnapshotError(f"{where}: spec.selector.matchExpressions operator {op!r} is unknown")
        exprs.append(Requirement(str(e.get("key")), op, frozenset(str(v) for v in e.get("values") or [])))
    return {str(k): str(v) for k, v in (sel.get("matchLabels") or {}).items()}, tuple(exprs)


def budget_from_k8s(obj: Mapping[str, Any], pods: Sequence[SnapPod]) -> Budget | None:
    """The budget and the disruptions it allows now (None: its selector matches nothing by definition)."""
    where = _where({"kind": "PodDisruptionBudget", **obj})
    parsed = _selector(obj, where)
    if parsed is None:
        return None
    meta = obj.get("metadata") or {}
    probe = Budget(str(meta.get("namespace", "default")), str(meta.get("name", "?")), parsed[0], parsed[1], 0)
    matched = [p for p in pods if probe.covers(p)]
    healthy = sum(p.healthy for p in matched)
    spec = obj.get("spec") or {}
    if spec.get("minAvailable") is not None:
        desired = _scaled(spec["minAvailable"], len(matched), f"{where}: spec.minAvailable")
    elif spec.get("maxUnavailable") is not None:
        unavailable = _scaled(spec["maxUnavailable"], len(matched), f"{where}: spec.maxUnavailable")
        desired = len(matched) - unavailable
    else:
        desired = len(matched)  # no rule given: allow nothing rather than guess
    allowed = healthy - desired
    status = obj.get("status") or {}
    if status.get("disruptionsAllowed") is not None:
        allowed = min(allowed, int(status["disruptionsAllowed"]))
    return Budget(probe.namespace, probe.name, probe.match_labels, probe.expressions, max(0, allowed))


def pod_from_k8s(obj: Mapping[str, Any], catalog: GpuCatalog) -> tuple[SnapPod, tuple[int, ...] | None]:
    """The planner's pod and its annotated GPU indices (None: not annotated)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    request = pod_request_from_k8s(obj, catalog)
    pod = SnapPod(
        namespace=str(meta.get("namespace", "default")), name=str(meta.get("name", "?")), request=request,
        node=spec.get("nodeName") or None, priority=int(spec.get("priority") or 0),
        movable=is_movable(obj), healthy=_is_healthy(obj),
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
    )
    gpus = _gpu_annotation(obj, request.num_gpu, _where({"kind": "Pod", **obj})) if pod.node else None
    return pod, gpus


def snapshot_from_objects(docs: Iterable[Any], catalog: GpuCatalog | None = None) -> Snapshot:
    """A snapshot from parsed Node, Pod and PodDisruptionBudget objects (other kinds are ignored).
    Bound pods on nodes without GPUs (or not in the input) are left out: they cannot affect GPU plans."""
    catalog = catalog or default_gpu_catalog()
    objects = list(iter_objects(docs))
    nodes = [n for o in objects if o.get("kind") == "Node" and (n := node_from_k8s(o, catalog))]
    by_name = {n.name: n for n in nodes}
    every = [pod_from_k8s(o, catalog) for o in objects
             if o.get("kind") == "Pod" and (o.get("status") or {}).get("phase") not in TERMINAL_PHASES]
    pods = _assign_gpus([(p, g) for p, g in every if p.node is None or p.node in by_name], by_name)
    # Budgets count every pod they select, wherever it runs (CPU-only nodes included).
    all_pods = [p for p, _ in every]
    budgets = [b for o in objects if o.get("kind") == "PodDisruptionBudget"
               and (b := budget_from_k8s(o, all_pods)) is not None]
    return Snapshot(nodes, pods, budgets)
