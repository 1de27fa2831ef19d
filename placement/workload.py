"""What a Kubernetes object asks of GPUs: its pod template(s), GPU containers, GPU count, allowed tiers.

Reads plain dicts (the JSON of the object as the API server or a YAML file has it) for Deployment,
StatefulSet, Job, CronJob, Pod, LeaderWorkerSet, KServe InferenceService and Knative Service; the CRDs
that serve models (Ray, KubeAI, KServe LLMInferenceService, AIBrix, Dynamo) have their readers in
`placement.workloads`. Nothing here judges; `placement.checks` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from placement import dra
from placement.catalog import TIER_LABEL_KEYS, GpuCatalog, GpuSpec
from placement.engines import Container, EngineConfig, parse_container
from placement.findings import ObjectRef

GPU_RESOURCE = "nvidia.com/gpu"
MIG_PREFIX = "nvidia.com/mig-"
ANNOTATION_PREFIX = "gpuplace.io/"
TIER_ANNOTATION = "gpuplace.io/tier"

# kind -> path of the pod template inside the object (None: the object is the pod).
TEMPLATE_PATHS: Mapping[str, tuple[str, ...] | None] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "Pod": None,
    "LeaderWorkerSet": ("spec", "leaderWorkerTemplate", "workerTemplate"),
}
LWS_LEADER_PATH = ("spec", "leaderWorkerTemplate", "leaderTemplate")
BATCH_KINDS = {"Job", "CronJob"}
WORKLOAD_KINDS = set(TEMPLATE_PATHS) | {"InferenceService", "Service"}


class WorkloadError(ValueError):
    """The object cannot be read: names the field and what was expected."""


@dataclass(frozen=True)
class TierPin:
    """How the pod is pinned to GPU tiers: the catalog GPUs it allows, and label values not in the catalog."""

    gpus: tuple[GpuSpec, ...] = ()
    unknown_values: tuple[str, ...] = ()
    source: str = ""  # e.g. "nodeSelector nvidia.com/gpu.product"
    reason: str = ""  # why the tier cannot be known (a DRA selector gpuplace cannot read, a missing claim)

    @property
    def pinned(self) -> bool:
        return bool(self.gpus)


@dataclass
class GpuContainer:
    name: str
    container: Container
    gpus: int  # whole GPUs per pod for this container
    mig_profile: str | None
    engine: EngineConfig | None
    cpu_limit_millis: int | None


@dataclass
class Workload:
    ref: ObjectRef
    labels: dict[str, str]  # pod template labels (autoscalers and selectors match these)
    annotations: dict[str, str]  # object annotations overlaid by pod template annotations
    containers: list[GpuContainer]
    tier: TierPin
    replicas: int | None  # None: managed elsewhere (autoscaler) or not applicable
    batch: bool
    group_size: int = 1  # pods per multi-node group (LeaderWorkerSet size)
    # GPUs of one whole group when its pods differ (a LeaderWorkerSet leader and its workers); None: every
    # pod of the group is like this one (group_size x the pod's GPUs).
    group_gpus: int | None = None
    template_path: tuple[str, ...] | None = None  # where /mutate stamps annotations
    # Other pod templates of the same object that get the same stamps (a LeaderWorkerSet's workers).
    other_template_paths: tuple[tuple[str, ...], ...] = ()
    # The containers of those other templates: part of what the checks read (the inputs hash).
    other_containers: list[GpuContainer] = field(default_factory=list)
    scheduler_name: str | None = None
    raw_template: Mapping[str, Any] = field(default_factory=dict)
    # DRA firstAvailable: (choice label, the workload as that choice leaves it), in the user's order. The
    # workload itself is the first choice (the allocator's preference). Empty: one way to get GPUs.
    variants: tuple[tuple[str, Workload], ...] = ()
    # Other serving components of the same object, judged on their own (a Dynamo graph's prefill and
    # decode workers, each model of a Ray Serve application): their own containers, replicas and tier.
    parts: tuple[Workload, ...] = ()
    # Why the object's model or GPUs could not be read at all (a CRD form gpuplace does not read): a short
    # fixed code (the coverage metric's reason label) and the sentence the unknown-model finding says.
    not_judged_reason: str = ""
    not_judged_detail: str = ""

    @property
    def components(self) -> tuple[Workload, ...]:
        """This workload and its parts: every serving component the checks judge."""
        return (self, *self.parts)

    @property
    def stamp_paths(self) -> tuple[tuple[str, ...], ...]:
        """Every pod template /mutate stamps: the judged one first."""
        return (self.template_path or (), *self.other_template_paths)

    @property
    def gpu_containers(self) -> list[GpuContainer]:
        return [c for c in self.containers if c.gpus > 0 or c.mig_profile]

    def annotation(self, key: str) -> str | None:
        return self.annotations.get(ANNOTATION_PREFIX + key)


def object_ref(obj: Mapping[str, Any]) -> ObjectRef:
    meta = obj.get("metadata") or {}
    kind, name = obj.get("kind", ""), meta.get("name", "")
    return ObjectRef(
        kind if type(kind) is str else str(kind),
        name if type(name) is str else str(name),
        meta.get("namespace"),
    )


def extract(
    obj: Mapping[str, Any], catalog: GpuCatalog, claims: dra.ClaimLookup | None = None
) -> Workload | None:
    """The workload of an object, or None when the kind carries no pod template. `claims` finds the
    ResourceClaimTemplates and ResourceClaims a pod names (DRA); without it they are unknown."""
    kind = obj.get("kind")
    if kind == "InferenceService":
        return _inference_service(obj, catalog)
    if isinstance(kind, str) and kind in CRD_KINDS:
        # Imported here: the CRD readers build on this module's readers (a top-level import would cycle).
        from placement.workloads import read_crd

        return read_crd(obj, catalog)
    if kind == "Service" and str(obj.get("apiVersion", "")).startswith("serving.knative.dev"):
        return _from_template(obj, ("spec", "template"), catalog, replicas=None, claims=claims)
    if not isinstance(kind, str) or kind not in TEMPLATE_PATHS:
        return None
    path = TEMPLATE_PATHS[kind]
    replicas = (
        _int_at(obj, ("spec", "replicas"), default=1) if kind in {"Deployment", "StatefulSet"} else None
    )
    if kind == "LeaderWorkerSet":
        return _leader_worker_set(obj, catalog, claims)
    workload = _from_template(obj, path, catalog, replicas=replicas, claims=claims)
    if kind in MULTI_NODE_KINDS:
        _span_nodes(workload)
    return workload


# CRD kinds that serve models, read by `placement.workloads` (kind names are checked with their API group
# there: a `Model` of another group is not KubeAI's).
CRD_KINDS = frozenset(
    {"RayService", "RayCluster", "Model", "LLMInferenceService", "RayClusterFleet", "ModelAdapter",
     "DynamoGraphDeployment"}
)  # fmt: skip

# Kinds whose pods may together run one engine instance across nodes (SGLang --nnodes, vLLM over Ray).
MULTI_NODE_KINDS = {"StatefulSet", "Deployment", "Pod"}


def _span_nodes(workload: Workload) -> None:
    """One engine instance over several pods, outside LeaderWorkerSet:

    - SGLang `--nnodes N` (`--node-rank` from the StatefulSet ordinal): N pods, each with its own GPUs,
      form one instance of tp x pp over all of them; a StatefulSet's replicas are pods, N per instance.
      A Deployment or Pod with --nnodes is one rank; the other ranks run elsewhere, alike.
    - vLLM `--distributed-executor-backend ray` with tp x pp over more GPUs than the pod has: a StatefulSet's
      pods are the Ray cluster (pod 0 the head), so all its pods are one instance. From a Deployment or a
      Pod the rest of the Ray cluster is not visible: its GPUs are taken to be what tp x pp asks.
    """
    for c in workload.gpu_containers:
        engine = c.engine
        if engine is None or not c.gpus:
            continue
        nnodes = _flag_int(engine.flags.get("nnodes"))
        pods = workload.replicas if workload.replicas is not None else 1
        if nnodes and nnodes > 1:
            workload.group_size = nnodes
            if workload.ref.kind == "StatefulSet":  # ranks from the ordinal: its own pods are the nodes
                workload.replicas = max(pods // nnodes, 1)
                if pods < nnodes:
                    engine.problems.append(
                        f"--nnodes {nnodes} but the StatefulSet runs {pods} pod(s): the server waits for the "
                        f"missing nodes. Set replicas: {nnodes}"
                    )
            return
        ray = engine.flags.get("distributed-executor-backend") == "ray"
        if ray and engine.tp * engine.pp > c.gpus:
            if workload.ref.kind == "StatefulSet":
                workload.group_size, workload.replicas = max(pods, 1), 1
            else:
                workload.group_gpus = engine.tp * engine.pp
            return


def _flag_int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def _leader_worker_set(
    obj: Mapping[str, Any], catalog: GpuCatalog, claims: dra.ClaimLookup | None
) -> Workload:
    """One LeaderWorkerSet group is one serving instance: `size` pods, the leader from `leaderTemplate`
    (the worker template when absent) and size - 1 workers. Multi-node vLLM runs its engine command on the
    leader only (the workers just join Ray), so the leader's container is the one judged, with the GPUs of
    the whole group: leader + (size - 1) x worker."""
    worker_path = TEMPLATE_PATHS["LeaderWorkerSet"]
    assert worker_path is not None
    replicas = _int_at(obj, ("spec", "replicas"), default=1)
    size = _int_at(obj, ("spec", "leaderWorkerTemplate", "size"), default=1) or 1
    worker = _from_template(obj, worker_path, catalog, replicas=replicas, claims=claims)
    worker.group_size = size
    if not _dig(obj, ("spec", "leaderWorkerTemplate"), "a leaderWorkerTemplate").get("leaderTemplate"):
        return worker  # every pod of the group runs the worker template
    leader = _from_template(obj, LWS_LEADER_PATH, catalog, replicas=replicas, claims=claims)
    judged = leader if any(c.engine for c in leader.gpu_containers) or not worker.gpu_containers else worker
    judged.annotations = {**worker.annotations, **leader.annotations}
    judged.group_size = size
    judged.group_gpus = _pod_gpus(leader) + (size - 1) * _pod_gpus(worker)
    if judged is leader:
        judged.other_template_paths = (worker_path,)
        judged.other_containers = worker.containers
        if not (leader.tier.pinned or leader.tier.reason or leader.tier.unknown_values):
            judged.tier = worker.tier  # the GPU nodes are often pinned on the workers only
    else:
        judged.other_template_paths = (LWS_LEADER_PATH,)
        judged.other_containers = leader.containers
    return judged


def _pod_gpus(workload: Workload) -> int:
    return sum(c.gpus for c in workload.containers)


def _from_template(
    obj: Mapping[str, Any],
    path: tuple[str, ...] | None,
    catalog: GpuCatalog,
    replicas: int | None,
    claims: dra.ClaimLookup | None = None,
    template: Mapping[str, Any] | None = None,
) -> Workload:
    if template is None:
        template = obj if path is None else _dig(obj, path, "a pod template")
    spec = template.get("spec")
    if type(spec) is not dict:
        spec = _mapping(spec, _where(path, "spec"))
    meta = _mapping_or_empty(template.get("metadata"), path, "metadata")
    obj_meta = _mapping_or_empty(obj.get("metadata"), None, "metadata")
    annotations = _str_map(obj_meta.get("annotations"))
    if meta is not obj_meta and meta.get("annotations"):
        annotations.update(_str_map(meta.get("annotations")))
    raw_containers = spec.get("containers")
    if type(raw_containers) is not list:
        raw_containers = _list(raw_containers, "containers")
    workload = Workload(
        ref=object_ref(obj),
        labels=_str_map(meta.get("labels")),
        annotations=annotations,
        containers=[_gpu_container(c, i, path) for i, c in enumerate(raw_containers)],
        tier=tier_pin(spec, annotations, catalog),
        replicas=replicas,
        batch=_is_batch(obj, annotations),
        template_path=path,
        scheduler_name=spec.get("schedulerName"),
        raw_template=template,
    )
    if spec.get("resourceClaims"):
        _apply_claims(workload, spec, raw_containers, claims or _no_claims, catalog)
    return workload


def _no_claims(kind: str, name: str) -> str:
    return f"{kind} {name} was not available to gpuplace"


def _apply_claims(
    workload: Workload,
    spec: Mapping[str, Any],
    raw_containers: list[Any],
    claims: dra.ClaimLookup,
    catalog: GpuCatalog,
) -> None:
    """GPUs a container gets through DRA claims: the count adds to its nvidia.com/gpu, and the claim's
    selectors pin the tier (they say more directly than node labels which device the pod gets)."""
    refs = dra.pod_claim_refs(spec)
    label_tier, expand = workload.tier, None
    for i, raw in enumerate(raw_containers):
        devices = dra.container_devices(raw, refs, claims, catalog) if isinstance(raw, Mapping) else None
        if not devices or not devices.alternatives:
            continue
        before = workload.containers[i]
        if before.engine is None:
            before.engine = parse_container(before.container)
        if devices.alternatives[0].reason and before.engine is None and not before.gpus:
            continue  # an unreadable claim on a container that runs no engine: maybe not a GPU at all
        workload.containers[i], tier = _with_devices(before, devices.alternatives[0], label_tier)
        workload.tier = tier
        if len(devices.alternatives) > 1 and expand is None:
            expand = (i, before, devices.alternatives)
    if expand is not None:
        i, before, alternatives = expand
        variants = []
        for alt in alternatives:
            container, tier = _with_devices(before, alt, label_tier)
            containers = list(workload.containers)
            containers[i] = container
            variants.append((alt.label, replace(workload, containers=containers, tier=tier, variants=())))
        workload.variants = tuple(variants)


def _with_devices(c: GpuContainer, alt: dra.Alternative, label_tier: TierPin) -> tuple[GpuContainer, TierPin]:
    engine = c.engine
    count = alt.count or (max(engine.tp * engine.pp, 1) if engine else 1)  # All / unknown: what it uses
    container = replace(c, gpus=c.gpus + count, mig_profile=alt.mig_profile or c.mig_profile)
    if alt.gpus or alt.unknown_values or alt.reason:
        return container, TierPin(alt.gpus, alt.unknown_values, alt.source, alt.reason)
    return container, label_tier


def _inference_service(obj: Mapping[str, Any], catalog: GpuCatalog) -> Workload:
    """KServe v1beta1: `spec.predictor.model` (runtime picks the image; the HF runtime runs vLLM) or
    `spec.predictor.containers`. Annotations on the InferenceService reach the predictor pods."""
    predictor = _dig(obj, ("spec", "predictor"), "spec.predictor")
    meta = _mapping(obj.get("metadata") or {}, "metadata")
    annotations = _str_map(meta.get("annotations"))
    containers: list[GpuContainer] = []
    model = predictor.get("model")
    if isinstance(model, Mapping):
        containers.append(_kserve_model_container(model))
    for i, raw in enumerate(_list(predictor.get("containers") or [], "spec.predictor.containers")):
        containers.append(_gpu_container(raw, i, ("spec", "predictor")))
    return Workload(
        ref=object_ref(obj),
        labels=_str_map(meta.get("labels")),
        annotations=annotations,
        containers=containers,
        tier=tier_pin(predictor, annotations, catalog),
        replicas=_int_at(predictor, ("minReplicas",), default=1),
        batch=_is_batch(obj, annotations),
        template_path=None,
    )


def _kserve_model_container(model: Mapping[str, Any]) -> GpuContainer:
    fmt = str((model.get("modelFormat") or {}).get("name", "")).lower()
    args = [str(a) for a in _list(model.get("args") or [], "spec.predictor.model.args")]
    storage = str(model.get("storageUri") or "")
    if storage.startswith("hf://") and not any("model_id" in a or "model-id" in a for a in args):
        args.append(f"--model_id={storage[len('hf://') :]}")
    elif storage and not any("model_id" in a or "model-id" in a or "model_dir" in a for a in args):
        args.append(f"--model_id={storage}")
    image = "kserve/huggingfaceserver" if fmt in {"huggingface", ""} else f"kserve/{fmt}"
    raw = {
        "name": "kserve-container",
        "image": image,
        "args": args,
        "env": model.get("env") or [],
        "resources": model.get("resources") or {},
    }
    container = _gpu_container(raw, 0, ("spec", "predictor", "model"))
    if container.engine is None and fmt == "huggingface":
        container.engine = parse_container(
            Container(name=container.name, image="vllm/vllm-openai", args=tuple(args))
        )
    return container


def _gpu_container(raw: Any, index: int, path: tuple[str, ...] | None) -> GpuContainer:
    # Where a field sits ("spec.template.spec.containers[0].args") is spelled out only for an error:
    # building it for every field of every container costs more than reading them.
    def where(leaf: str = "") -> str:
        return _where(path, f"spec.containers[{index}]{leaf}")

    c = raw if type(raw) is dict else _mapping(raw, where())
    name = str(c.get("name") or f"#{index}")
    resources = c.get("resources") or {}
    if type(resources) is not dict:
        resources = _mapping(resources, where(".resources"))
    limits = _str_map(resources.get("limits"))
    if resources.get("requests"):  # a limit wins over the request of the same resource
        limits = {**_str_map(resources["requests"]), **limits}
    gpus = _quantity_int(limits.get(GPU_RESOURCE, "0"), where, GPU_RESOURCE)
    mig = None
    for key in limits:
        if key.startswith(MIG_PREFIX):  # a MIG device counts as one GPU of its own tier (design.md)
            mig = key[len(MIG_PREFIX) :]
            gpus += _quantity_int(limits[key], where, key)
            break
    command, args, env = c.get("command"), c.get("args"), c.get("env")
    container = Container(
        name=name,
        image=str(c.get("image") or ""),
        command=_words(command, where, ".command") if command else (),
        args=_words(args, where, ".args") if args else (),
        env=_env(env, where) if env else {},
    )
    engine = parse_container(container) if (gpus or mig) else None
    cpu = limits.get("cpu")
    return GpuContainer(name, container, gpus, mig, engine, _cpu_millis(cpu) if cpu else None)


def tier_pin(spec: Mapping[str, Any], annotations: Mapping[str, str], catalog: GpuCatalog) -> TierPin:
    """Tiers from nodeSelector, required node affinity (`In` terms, OR-ed), or gpuplace.io/tier."""
    if TIER_ANNOTATION in annotations:
        values = [v.strip() for v in annotations[TIER_ANNOTATION].split(",") if v.strip()]
        return _pin([(TIER_ANNOTATION, v) for v in values], catalog, f"annotation {TIER_ANNOTATION}")
    selector = spec.get("nodeSelector")
    if selector and isinstance(selector, Mapping):
        for key in TIER_LABEL_KEYS:
            if selector.get(key) is not None:
                return _pin([(key, str(selector[key]))], catalog, f"nodeSelector {key}")
    pairs = _affinity_tier_values(spec)
    if pairs:
        return _pin(pairs, catalog, f"nodeAffinity {pairs[0][0]}")
    return TierPin()


def _pin(pairs: list[tuple[str, str]], catalog: GpuCatalog, source: str) -> TierPin:
    gpus: list[GpuSpec] = []
    unknown: list[str] = []
    for key, value in pairs:
        gpu = catalog.from_node_label(key, value)
        if gpu is None:
            unknown.append(value)
        elif gpu not in gpus:
            gpus.append(gpu)
    return TierPin(tuple(gpus), tuple(unknown), source)


def _affinity_tier_values(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    pairs: list[tuple[str, str]] = []
    for term in required.get("nodeSelectorTerms") or []:
        for expr in (term or {}).get("matchExpressions") or []:
            if expr.get("key") in TIER_LABEL_KEYS and expr.get("operator") == "In":
                pairs.extend((expr["key"], str(v)) for v in expr.get("values") or [])
    return pairs


def _is_batch(obj: Mapping[str, Any], annotations: Mapping[str, str]) -> bool:
    declared = annotations.get(ANNOTATION_PREFIX + "workload")
    if declared in {"online", "batch"}:
        return declared == "batch"
    return obj.get("kind") in BATCH_KINDS


# --- small readers that turn shape errors into WorkloadError naming the field ---------------------------


def _where(path: tuple[str, ...] | None, leaf: str) -> str:
    return leaf if path is None else ".".join(path) + "." + leaf


def _dig(obj: Mapping[str, Any], path: tuple[str, ...], what: str) -> Mapping[str, Any]:
    node: Any = obj
    for i, key in enumerate(path):
        if (type(node) is not dict and not isinstance(node, Mapping)) or key not in node:
            raise WorkloadError(f"missing {'.'.join(path[: i + 1])} ({what} expected)")
        node = node[key]
    return _mapping(node, ".".join(path))


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    # `type(...) is dict` first: parsed JSON and YAML are plain dicts, and the ABC check costs several
    # times more on a path every review walks a dozen times.
    if type(value) is not dict and not isinstance(value, Mapping):
        raise WorkloadError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _mapping_or_empty(value: Any, path: tuple[str, ...] | None, leaf: str) -> Mapping[str, Any]:
    if type(value) is dict:
        return value
    return _mapping(value or {}, _where(path, leaf))


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise WorkloadError(f"{where} must be a list, got {type(value).__name__}")
    return value


def _words(value: Any, where: Callable[[str], str], leaf: str) -> tuple[str, ...]:
    """command or args: a list of strings (numbers and booleans in YAML become their text)."""
    if not value:
        return ()
    if type(value) is not list:
        value = _list(value, where(leaf))
    return tuple(map(str, value))


def _str_map(value: Any) -> dict[str, str]:
    """A fresh dict of strings (labels, annotations, resources); anything but a mapping reads as empty."""
    if type(value) is not dict:
        if not value or not isinstance(value, Mapping):
            return {}
    elif not value:
        return {}
    elif _ONLY_STR.issuperset(map(type, value.values())) and _ONLY_STR.issuperset(map(type, value)):
        return dict(value)  # what the API server sends: all strings, copied in C
    return {
        k if type(k) is str else str(k): v if type(v) is str else str(v)
        for k, v in value.items()
        if v is not None
    }


_ONLY_STR = frozenset({str})


def _env(value: Any, where: Callable[[str], str]) -> dict[str, str | None]:
    env: dict[str, str | None] = {}
    if not value:
        return env
    for i, item in enumerate(value if type(value) is list else _list(value, where(".env"))):
        entry = item if type(item) is dict else _mapping(item, where(f".env[{i}]"))
        name = entry.get("name")
        if not name:
            raise WorkloadError(f"{where(f'.env[{i}]')}.name is missing")
        env[str(name)] = None if "valueFrom" in entry else str(entry.get("value", ""))
    return env


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _int_at(obj: Mapping[str, Any], path: tuple[str, ...], default: int | None) -> int | None:
    node: Any = obj
    for key in path:
        if (type(node) is not dict and not isinstance(node, Mapping)) or key not in node:
            return default
        node = node[key]
    try:
        value = int(node)
    except (TypeError, ValueError, OverflowError) as exc:
        raise WorkloadError(f"{'.'.join(path)} must be an integer, got {node!r}") from exc
    if not INT32_MIN <= value <= INT32_MAX:  # replicas and sizes are int32 in Kubernetes
        raise WorkloadError(f"{'.'.join(path)} must be a 32-bit integer, got {node!r}")
    return value


def _quantity_int(value: str, where: Callable[[str], str], resource: str) -> int:
    try:
        return int(value)  # int() itself ignores surrounding whitespace
    except ValueError as exc:
        raise WorkloadError(
            f"{where(f'.resources.limits[{resource}]')} must be a whole number of GPUs, got {value!r}"
        ) from exc


def _cpu_millis(value: str) -> int | None:
    text = str(value).strip()
    try:
        return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)
    except ValueError:
        return None


# --- what the CRD readers (placement.workloads) build on ------------------------------------------------


def pod_workload(
    obj: Mapping[str, Any],
    template: Mapping[str, Any],
    where: tuple[str, ...],
    catalog: GpuCatalog,
    replicas: int | None,
) -> Workload:
    """The workload of a pod template (`metadata` + `spec`) a CRD nests at `where`, or one a reader put
    together from the CRD's own fields. Not stamped by /mutate: the operator's pods are, through the pods
    webhook."""
    workload = _from_template(obj, where, catalog, replicas=replicas, template=template)
    workload.template_path = None
    return workload


def field_int(obj: Mapping[str, Any], path: tuple[str, ...], default: int | None) -> int | None:
    """An int32 field (replicas, sizes), or `default` when absent; WorkloadError naming it otherwise."""
    return _int_at(obj, path, default)


def field_map(value: Any, where: str) -> Mapping[str, Any]:
    """A mapping field, or WorkloadError naming it."""
    return _mapping(value, where)


def field_list(value: Any, where: str) -> list[Any]:
    return _list(value, where)


def str_map(value: Any) -> dict[str, str]:
    return _str_map(value)


def span_nodes(workload: Workload) -> None:
    """One engine instance over several pods (SGLang --nnodes, vLLM over Ray): see `_span_nodes`."""
    _span_nodes(workload)
