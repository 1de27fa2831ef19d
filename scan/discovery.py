"""GPU pods, and the workloads that own them: each workload reported once, with its replicas and age.

A pod holds GPUs when a container asks for `nvidia.com/gpu` or a MIG resource (`nvidia.com/mig-<profile>`),
or when it names DRA resource claims (whether those are GPUs is what placement's claim reader decides when
the workload is checked). Owner chains are walked through the objects read (Pod -> ReplicaSet ->
Deployment, Pod -> StatefulSet -> LeaderWorkerSet, Pod -> Job -> CronJob); KServe and Knative workloads are
recognised by the labels their controllers stamp on every pod, because their chains run through objects
(Revisions, Configurations) the scan does not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from placement.findings import ObjectRef
from placement.planner.snapshot import TERMINAL_PHASES
from placement.workload import WORKLOAD_KINDS
from scan.inventory import KNATIVE_SERVICE, Inventory, meta, name_of, namespace_of, parse_time

GPU_RESOURCE = "nvidia.com/gpu"
MIG_PREFIX = "nvidia.com/mig-"
# Labels the controllers put on every pod they make (KServe, Knative Serving, LeaderWorkerSet).
OWNER_LABELS: tuple[tuple[str, str], ...] = (
    ("serving.kserve.io/inferenceservice", "InferenceService"),
    ("serving.knative.dev/service", KNATIVE_SERVICE),
    ("leaderworkerset.sigs.k8s.io/name", "LeaderWorkerSet"),
)
# Kinds an owner chain may pass through, in the inventory's keys.
CHAIN_KINDS = ("ReplicaSet", "Deployment", "StatefulSet", "Job", "CronJob", "LeaderWorkerSet", "Pod")
MAX_CHAIN = 8  # owner references never nest this deep; a loop in bad data stops here


@dataclass
class GpuPod:
    obj: dict[str, Any]
    namespace: str
    name: str
    node: str | None
    phase: str
    gpus: int  # whole GPUs (nvidia.com/gpu limits, else requests)
    mig: dict[str, int]  # MIG profile -> instances
    dra: bool  # names resource claims
    created: datetime | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def bound(self) -> bool:
        return self.node is not None and self.phase not in TERMINAL_PHASES

    @property
    def pending(self) -> bool:
        return self.node is None and self.phase not in TERMINAL_PHASES


@dataclass
class ScannedWorkload:
    """One workload: its top owner (the object the checks read: None when it could not be read, then the
    checks read a pod), and its GPU pods."""

    kind: str
    namespace: str
    name: str
    obj: dict[str, Any] | None
    pods: list[GpuPod] = field(default_factory=list)
    chain: set[tuple[str, str]] = field(default_factory=set)  # owners between the pods and the workload

    @property
    def ref(self) -> ObjectRef:
        kind = "Service" if self.kind == KNATIVE_SERVICE else self.kind
        return ObjectRef(kind, self.name, self.namespace)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.ref.kind, self.name)

    @property
    def checked_object(self) -> dict[str, Any]:
        """What the deploy-time checks read: the owner when read and a kind they know, else a pod."""
        if self.obj is not None and self.ref.kind in WORKLOAD_KINDS:
            return self.obj
        return self.pods[0].obj

    @property
    def checked_ref(self) -> ObjectRef:
        obj = self.checked_object
        return ObjectRef(str(obj.get("kind")), name_of(obj), namespace_of(obj) or None)

    @property
    def running(self) -> list[GpuPod]:
        return [p for p in self.pods if p.bound]

    @property
    def desired_replicas(self) -> int | None:
        spec = (self.obj or {}).get("spec") or {}
        for key in ("replicas", "parallelism"):
            if isinstance(spec.get(key), int):
                return int(spec[key])
        return None

    @property
    def created(self) -> datetime | None:
        if self.obj is not None and (t := parse_time(meta(self.obj).get("creationTimestamp"))):
            return t
        times = [p.created for p in self.pods if p.created]
        return min(times) if times else None

    @property
    def gpus(self) -> int:
        """Whole GPUs its running pods hold."""
        return sum(p.gpus for p in self.running)


def _resources(container: Mapping[str, Any]) -> dict[str, Any]:
    res = container.get("resources")
    if not isinstance(res, Mapping):
        return {}
    out: dict[str, Any] = dict(res.get("requests") or {})
    out.update(res.get("limits") or {})  # limits win: extended resources are set as limits
    return out


def _count(value: Any) -> int:
    try:
        return max(0, int(str(value)))
    except ValueError:
        return 0


def gpu_pod(obj: dict[str, Any]) -> GpuPod | None:
    """The pod's GPU holding, or None when it holds none."""
    spec = obj.get("spec") or {}
    gpus = init_gpus = 0
    mig: dict[str, int] = {}
    # As the scheduler counts: the containers' sum, at least the largest init container's.
    for container in spec.get("containers") or []:
        if isinstance(container, Mapping):
            for key, value in _resources(container).items():
                if key == GPU_RESOURCE:
                    gpus += _count(value)
                elif key.startswith(MIG_PREFIX):
                    mig[key[len(MIG_PREFIX):]] = mig.get(key[len(MIG_PREFIX):], 0) + _count(value)
    for container in spec.get("initContainers") or []:
        if isinstance(container, Mapping):
            init_gpus = max(init_gpus, _count(_resources(container).get(GPU_RESOURCE, 0)))
    gpus = max(gpus, init_gpus)
    dra = bool(spec.get("resourceClaims"))
    if not gpus and not any(mig.values()) and not dra:
        return None
    m = meta(obj)
    return GpuPod(obj, namespace_of(obj), name_of(obj), spec.get("nodeName") or None,
                  str((obj.get("status") or {}).get("phase") or "Pending"), gpus,
                  {k: v for k, v in mig.items() if v}, dra, parse_time(m.get("creationTimestamp")))


class OwnerIndex:
    """The objects an owner chain can pass through, by (kind, namespace, name)."""

    def __init__(self, inv: Inventory) -> None:
        self._by: dict[tuple[str, str, str], dict[str, Any]] = {}
        for kind in (*CHAIN_KINDS, "InferenceService", KNATIVE_SERVICE):
            for obj in inv.of(kind):
                self._by[(kind, namespace_of(obj), name_of(obj))] = obj

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._by.get((kind, namespace, name))

    def top(self, pod: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None, list[tuple[str, str]]]:
        """The workload owning the pod: (kind, name, object or None when it was not read, the owners
        passed on the way: their scale events are the workload's)."""
        ns = namespace_of(pod)
        kind, name, cur = "Pod", name_of(pod), pod
        obj: dict[str, Any] | None = pod
        chain: list[tuple[str, str]] = []
        for _ in range(MAX_CHAIN):
            ref = _controller(cur)
            if ref is None:
                break
            kind, name = ref
            chain.append(ref)
            obj = self.get(kind, ns, name)
            if obj is None:
                break
            cur = obj
        labels = meta(pod).get("labels") or {}
        for label, owner_kind in OWNER_LABELS:
            value = str(labels.get(label) or "")
            if value and (owner := self.get(owner_kind, ns, value)) is not None:
                return owner_kind, value, owner, chain
        return kind, name, obj, chain


def _controller(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    refs = [r for r in meta(obj).get("ownerReferences") or [] if isinstance(r, Mapping)]
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if ref is None or not ref.get("kind") or not ref.get("name"):
        return None
    return str(ref["kind"]), str(ref["name"])


def discover(inv: Inventory) -> list[ScannedWorkload]:
    """GPU workloads, in namespace then kind then name order. Pods that ended (Succeeded, Failed) count
    only where nothing else of their workload runs (a finished Job is still reported)."""
    owners = OwnerIndex(inv)
    groups: dict[tuple[str, str, str], ScannedWorkload] = {}
    for obj in inv.of("Pod"):
        if inv.namespace and namespace_of(obj) != inv.namespace:
            continue
        pod = gpu_pod(obj)
        if pod is None:
            continue
        kind, name, top, chain = owners.top(obj)
        key = (pod.namespace, kind, name)
        group = groups.get(key)
        if group is None:
            group = groups[key] = ScannedWorkload(kind, pod.namespace, name, top)
        group.pods.append(pod)
        group.chain.update(chain)
    return [groups[k] for k in sorted(groups)]
