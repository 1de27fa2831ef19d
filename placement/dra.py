"""What a pod asks of GPUs through Dynamic Resource Allocation (resource.k8s.io/v1).

A container's `resources.claims` names entries of the pod's `spec.resourceClaims`, each a
ResourceClaimTemplate or a ResourceClaim. Their `spec.devices.requests` say the DeviceClass, how many
devices (`exactly.allocationMode`/`count`), CEL selectors, or `firstAvailable` sub-requests (a prioritized
list: the allocator takes the first that it can satisfy). This module turns that into the alternatives a
container may get: a count of GPUs and the catalog tiers (or MIG profile) the selectors allow.

Pure: the caller supplies the claim objects (from the same input for `gpuplace check`, from one cached API
read in the webhook). Unreadable parts never raise: they become an unknown tier with a one-line reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from placement.catalog import GpuCatalog, GpuSpec
from placement.cel import NVIDIA_DRIVER, Reading, StringTest, read_selector

API_GROUP = "resource.k8s.io"
TEMPLATE_KIND = "ResourceClaimTemplate"
CLAIM_KIND = "ResourceClaim"
CLAIM_KINDS = (TEMPLATE_KIND, CLAIM_KIND)
# The NVIDIA DRA driver's DeviceClasses (deployments/helm/.../deviceclass-gpu.yaml, deviceclass-mig.yaml).
GPU_DEVICE_CLASSES: Mapping[str, str] = {"gpu.nvidia.com": "gpu", "mig.nvidia.com": "mig"}
# Kubernetes' own limits (k8s.io/api/resource/v1: DeviceRequestsMaxSize, FirstAvailableDeviceRequestMaxSize,
# AllocationResultsMaxSize): beyond them the apiserver rejects the object, so gpuplace reads no further.
MAX_REQUESTS = 32
MAX_SUBREQUESTS = 8
MAX_COUNT = 32
MAX_ALTERNATIVES = 16  # combinations of firstAvailable choices judged per container


@dataclass(frozen=True)
class DeviceChoice:
    """One way a request can be met: the request itself, or one of its firstAvailable sub-requests."""

    name: str  # "gpu", or "gpu/h100" for a sub-request
    device_class: str
    count: int  # 0: allocationMode All (every matching device on the node)
    reading: Reading

    @property
    def is_gpu(self) -> bool:
        return self.device_class in GPU_DEVICE_CLASSES or NVIDIA_DRIVER in self.reading.drivers


@dataclass(frozen=True)
class DeviceRequest:
    name: str
    choices: tuple[DeviceChoice, ...]  # more than one: firstAvailable, in the user's order


@dataclass(frozen=True)
class ClaimSpec:
    source: str  # "ResourceClaimTemplate/llama" (what messages name)
    requests: tuple[DeviceRequest, ...]
    problems: tuple[str, ...] = ()  # what could not be read, one line each


# (kind, name) in the pod's namespace -> the claim spec, or the one-line reason it is not available.
ClaimLookup = Callable[[str, str], "ClaimSpec | str"]


@dataclass(frozen=True)
class Alternative:
    """What a container gets under one choice of every firstAvailable request it uses."""

    label: str  # request names joined, e.g. "gpu/l40s"
    count: int  # GPUs; 0: not known (allocationMode All): the engine's tp x pp is assumed
    gpus: tuple[GpuSpec, ...] = ()  # catalog tiers the selectors allow; empty with no reason: any GPU
    mig_profile: str | None = None
    unknown_values: tuple[str, ...] = ()
    reason: str = ""  # why the tier is unknown (unread selector, missing template); empty when known
    source: str = ""  # e.g. "ResourceClaimTemplate/llama request gpu productName"


@dataclass
class ContainerDevices:
    """The GPU alternatives of one container (empty: it uses claims, but none for a GPU)."""

    alternatives: list[Alternative] = field(default_factory=list)


# --- reading claim objects ------------------------------------------------------------------------------


def is_claim_object(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") in CLAIM_KINDS and str(obj.get("apiVersion", "")).startswith(API_GROUP + "/")


def claim_spec(obj: Mapping[str, Any]) -> ClaimSpec:
    """The device requests of a ResourceClaimTemplate (spec.spec.devices) or ResourceClaim (spec.devices)."""
    kind = str(obj.get("kind", ""))
    name = str((obj.get("metadata") or {}).get("name", ""))
    source = f"{kind}/{name}"
    spec: Any = obj.get("spec") or {}
    prefix = "spec"
    if kind == TEMPLATE_KIND:
        spec, prefix = (spec.get("spec") if isinstance(spec, Mapping) else None) or {}, "spec.spec"
    devices = spec.get("devices") if isinstance(spec, Mapping) else None
    raw = devices.get("requests") if isinstance(devices, Mapping) else None
    if raw is None:
        return ClaimSpec(source, ())
    if not isinstance(raw, list):
        return ClaimSpec(source, (), (f"{prefix}.devices.requests must be a list",))
    problems: list[str] = []
    if len(raw) > MAX_REQUESTS:
        problems.append(
            f"{prefix}.devices.requests has {len(raw)} entries; Kubernetes allows at most {MAX_REQUESTS}"
        )
        raw = raw[:MAX_REQUESTS]
    requests = []
    for i, entry in enumerate(raw):
        req = _request(entry, f"{prefix}.devices.requests[{i}]", problems)
        if req is not None:
            requests.append(req)
    return ClaimSpec(source, tuple(requests), tuple(problems))


def _request(entry: Any, where: str, problems: list[str]) -> DeviceRequest | None:
    if not isinstance(entry, Mapping) or not entry.get("name"):
        problems.append(f"{where} must be a mapping with a name")
        return None
    name = str(entry["name"])
    if isinstance(entry.get("exactly"), Mapping):
        choice = _choice(name, entry["exactly"], f"{where}.exactly", problems)
        return DeviceRequest(name, (choice,)) if choice else None
    subs = entry.get("firstAvailable")
    if isinstance(subs, list) and subs:
        if len(subs) > MAX_SUBREQUESTS:
            problems.append(f"{where}.firstAvailable has {len(subs)} entries; at most {MAX_SUBREQUESTS}")
            subs = subs[:MAX_SUBREQUESTS]
        choices = []
        for j, sub in enumerate(subs):
            sub_where = f"{where}.firstAvailable[{j}]"
            if not isinstance(sub, Mapping) or not sub.get("name"):
                problems.append(f"{sub_where} must be a mapping with a name")
                continue
            c = _choice(f"{name}/{sub['name']}", sub, sub_where, problems)
            if c is not None:
                choices.append(c)
        return DeviceRequest(name, tuple(choices)) if choices else None
    problems.append(f"{where} has neither exactly nor firstAvailable")
    return None


def _choice(name: str, body: Mapping[str, Any], where: str, problems: list[str]) -> DeviceChoice | None:
    device_class = body.get("deviceClassName")
    if not isinstance(device_class, str) or not device_class:
        problems.append(f"{where}.deviceClassName is missing")
        return None
    mode = body.get("allocationMode") or "ExactCount"
    count = 0
    if mode == "ExactCount":
        raw_count = body.get("count", 1)
        if type(raw_count) is not int or not 1 <= raw_count <= MAX_COUNT:
            problems.append(f"{where}.count must be a whole number 1..{MAX_COUNT}, got {raw_count!r}")
            raw_count = 0  # unknown: assumed from the engine's parallelism
        count = raw_count
    elif mode != "All":
        problems.append(f"{where}.allocationMode must be ExactCount or All, got {mode!r}")
    reading = Reading()
    selectors = body.get("selectors") or []
    for k, sel in enumerate(selectors if isinstance(selectors, list) else []):
        cel = sel.get("cel") if isinstance(sel, Mapping) else None
        expression = cel.get("expression") if isinstance(cel, Mapping) else None
        if isinstance(expression, str):
            reading.merge(read_selector(expression))
        else:
            problems.append(f"{where}.selectors[{k}].cel.expression is missing")
    return DeviceChoice(name, device_class, count, reading)


class ClaimIndex:
    """Claim specs by (namespace, kind, name), from the objects of one input (`gpuplace check` files)."""

    def __init__(self, objects: Iterable[Mapping[str, Any]] = ()) -> None:
        self._specs: dict[tuple[str, str, str], ClaimSpec] = {}
        for obj in objects:
            if is_claim_object(obj):
                meta = obj.get("metadata") or {}
                key = (str(meta.get("namespace") or ""), str(obj["kind"]), str(meta.get("name", "")))
                self._specs[key] = claim_spec(obj)

    def __len__(self) -> int:
        return len(self._specs)

    def lookup(self, namespace: str | None) -> ClaimLookup:
        def find(kind: str, name: str) -> ClaimSpec | str:
            hit = self._specs.get((namespace or "", kind, name))
            if hit is None and not namespace:  # files often leave the namespace out on one side only
                hit = next((s for (_, k, n), s in self._specs.items() if k == kind and n == name), None)
            return hit if hit is not None else f"{kind} {name} is not in the input"

        return find


# --- from a pod spec to a container's alternatives ------------------------------------------------------


def uses_claims(pod_spec: Mapping[str, Any]) -> bool:
    return bool(pod_spec.get("resourceClaims"))


def pod_claim_refs(pod_spec: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """spec.resourceClaims: entry name -> (kind, object name)."""
    refs: dict[str, tuple[str, str]] = {}
    for entry in pod_spec.get("resourceClaims") or []:
        if not isinstance(entry, Mapping) or not entry.get("name"):
            continue
        if entry.get("resourceClaimTemplateName"):
            refs[str(entry["name"])] = (TEMPLATE_KIND, str(entry["resourceClaimTemplateName"]))
        elif entry.get("resourceClaimName"):
            refs[str(entry["name"])] = (CLAIM_KIND, str(entry["resourceClaimName"]))
    return refs


def container_devices(
    container: Mapping[str, Any],
    refs: Mapping[str, tuple[str, str]],
    lookup: ClaimLookup,
    catalog: GpuCatalog,
) -> ContainerDevices | None:
    """The GPU alternatives of a container, or None when it names no claim."""
    resources = container.get("resources")
    claims = resources.get("claims") if isinstance(resources, Mapping) else None
    if not claims or not isinstance(claims, list):
        return None
    per_request: list[list[tuple[str, Alternative]]] = []  # for each GPU request used, its choices
    unknown: list[Alternative] = []
    for entry in claims:
        if not isinstance(entry, Mapping) or not entry.get("name"):
            continue
        ref = refs.get(str(entry["name"]))
        if ref is None:
            unknown.append(_unknown(f"resources.claims {entry['name']} names no spec.resourceClaims entry"))
            continue
        spec = lookup(*ref)
        if isinstance(spec, str):
            unknown.append(_unknown(spec))
            continue
        wanted = entry.get("request")
        requests = [r for r in spec.requests if not wanted or r.name == wanted]
        gpu_requests = [r for r in requests if any(c.is_gpu for c in r.choices)]
        if spec.problems:  # read only in part (Kubernetes would refuse it): no judgement on the rest
            unknown.append(_unknown(f"{spec.source}: {spec.problems[0]}"))
        for req in gpu_requests:
            per_request.append([(c.name, choice_alternative(c, spec.source, catalog)) for c in req.choices])
    if unknown:
        return ContainerDevices([unknown[0]])  # no judgement on a guess: one reason is enough
    if not per_request:
        return ContainerDevices([])
    alternatives = []
    for combo in product(*per_request):
        alternatives.append(_combine(combo))
        if len(alternatives) >= MAX_ALTERNATIVES:
            break
    return ContainerDevices(alternatives)


def _unknown(reason: str) -> Alternative:
    return Alternative(label="", count=0, reason=reason)


def _combine(combo: tuple[tuple[str, Alternative], ...]) -> Alternative:
    """Several GPU requests in one container: their devices add up; the tiers are those all allow
    (a container spanning two requests runs on both, so the smaller decides)."""
    if len(combo) == 1:
        return combo[0][1]
    alts = [a for _, a in combo]
    reason = next((a.reason for a in alts if a.reason), "")
    pinned = [a for a in alts if a.gpus]
    gpus = tuple(g for g in pinned[0].gpus if all(g in a.gpus for a in pinned[1:])) if pinned else ()
    return Alternative(
        label="+".join(name for name, _ in combo),
        count=0 if any(a.count == 0 for a in alts) else sum(a.count for a in alts),
        gpus=gpus,
        mig_profile=next((a.mig_profile for a in alts if a.mig_profile), None),
        unknown_values=tuple(v for a in alts for v in a.unknown_values),
        reason=reason,
        source=pinned[0].source if pinned else alts[0].source,
    )


def gpu_alternatives(spec: ClaimSpec, catalog: GpuCatalog) -> list[Alternative]:
    """Every GPU choice of every request of a claim, read on its own (admission of the claim itself)."""
    return [
        choice_alternative(choice, spec.source, catalog)
        for request in spec.requests
        for choice in request.choices
        if choice.is_gpu
    ]


def choice_alternative(choice: DeviceChoice, source: str, catalog: GpuCatalog) -> Alternative:
    reading = choice.reading
    where = f"{source} request {choice.name}"
    base = Alternative(label=choice.name, count=choice.count, source=where)
    if reading.invalid:
        return _with(base, reason=f"{where}: selector is not valid CEL ({reading.invalid[0]})")
    mig = choice.device_class == "mig.nvidia.com" or reading.device_type == "mig" or bool(reading.profiles)
    profile = _profile(reading, catalog) if mig else None
    if mig and profile is None:
        return _with(base, reason=f"{where}: MIG device without a profile gpuplace can read")
    if not reading.says_anything:
        if reading.unread:
            return _with(base, reason=f"{where}: selector {reading.unread[0]!r} is not one gpuplace reads")
        return _with(base, mig_profile=profile)  # any GPU of the class: judged like an unpinned pod
    gpus, unknown = _matching(reading, catalog)
    if not gpus:
        if unknown:
            return _with(base, unknown_values=tuple(unknown), source=f"{where} productName")
        if reading.products or reading.architectures:
            return _with(base, reason=f"{where}: its selectors match no GPU in the catalog")
        if reading.memory_min_bytes and not mig:
            return _with(base, reason=f"{where}: no catalog GPU has {reading.memory_min_bytes >> 30} GiB")
    what = "productName" if reading.products else "memory" if reading.memory_min_bytes else "architecture"
    return _with(base, gpus=tuple(gpus), mig_profile=profile, source=f"{where} {what}")


def _with(base: Alternative, **changes: Any) -> Alternative:
    from dataclasses import replace

    return replace(base, **changes)


def product_names(gpu: GpuSpec) -> list[str]:
    """How the NVIDIA driver's productName (NVML's device name) may spell this GPU: GPU Feature Discovery's
    label is that name with spaces turned into hyphens, so both forms are tried, and the catalog name."""
    names = []
    for gfd in gpu.gfd_products:
        names += [gfd.replace("-", " "), gfd]
    return [*names, gpu.name, gpu.id]


def _matching(reading: Reading, catalog: GpuCatalog) -> tuple[list[GpuSpec], list[str]]:
    """Catalog GPUs every readable part allows, and == literals that name no catalog GPU."""
    gpus = catalog.all()
    unknown: list[str] = []
    for tests in reading.products:
        literals = [t.value for t in tests if t.op == "==" and not t.lower]
        exact = {g.id for v in literals if (g := catalog.resolve(v)) is not None}
        unknown += [v for v in literals if catalog.resolve(v) is None]
        gpus = [g for g in gpus if g.id in exact or _any(tests, product_names(g))]
    for tests in reading.architectures:
        gpus = [g for g in gpus if _any(tests, _architecture_names(g))]
    if reading.memory_min_bytes:
        gpus = [g for g in gpus if memory_bytes(g) >= reading.memory_min_bytes]
    return gpus, unknown if not gpus else []


# NVML's architecture names (the driver's `architecture` attribute) where they differ from the generation.
_ARCH = {"ada": "Ada Lovelace"}


def _architecture_names(gpu: GpuSpec) -> list[str]:
    return [gpu.generation, gpu.generation.capitalize(), _ARCH.get(gpu.generation, "")]


def memory_bytes(gpu: GpuSpec) -> int:
    """The `memory` capacity the NVIDIA driver publishes for a full GPU: NVML's total, in bytes."""
    return gpu.gfd_memory_mib * 2**20 if gpu.gfd_memory_mib else int(gpu.memory_gib * 2**30)


def _any(tests: tuple[StringTest, ...], names: list[str]) -> bool:
    return any(t(n) for t in tests for n in names)


def _profile(reading: Reading, catalog: GpuCatalog) -> str | None:
    for tests in reading.profiles:
        for t in tests:
            if t.op == "==":
                return t.value
    return None


# --- the memory floor as a selector the DRA allocator enforces (webhook mutation, off by default) --------

POD_CLAIM_ANNOTATION = "resource.kubernetes.io/pod-claim-name"  # on claims made from a pod's template


def memory_floor_expression(mib: int) -> str:
    """A CEL selector that admits only devices with at least `mib` MiB of memory capacity."""
    return f'device.capacity["{NVIDIA_DRIVER}"].memory.compareTo(quantity("{int(mib)}Mi")) >= 0'


def memory_floor_patch(claim: Mapping[str, Any], mib: int) -> list[dict[str, Any]]:
    """JSONPatch ops adding the floor to every GPU request of a ResourceClaim (each firstAvailable choice
    too); none where it is already there, so a second review changes nothing."""
    expression = memory_floor_expression(mib)
    requests = ((claim.get("spec") or {}).get("devices") or {}).get("requests") or []
    ops: list[dict[str, Any]] = []
    for i, request in enumerate(requests if isinstance(requests, list) else []):
        if not isinstance(request, Mapping):
            continue
        if isinstance(request.get("exactly"), Mapping):
            ops += _floor_op(request["exactly"], f"/spec/devices/requests/{i}/exactly", expression)
        for j, sub in enumerate(request.get("firstAvailable") or []):
            if isinstance(sub, Mapping):
                ops += _floor_op(sub, f"/spec/devices/requests/{i}/firstAvailable/{j}", expression)
    return ops


def _floor_op(body: Mapping[str, Any], path: str, expression: str) -> list[dict[str, Any]]:
    if GPU_DEVICE_CLASSES.get(str(body.get("deviceClassName"))) != "gpu":
        return []  # a MIG slice's memory is its profile's: the floor is a whole-GPU figure
    selectors = body.get("selectors")
    selector = {"cel": {"expression": expression}}
    if not isinstance(selectors, list):
        return [{"op": "add", "path": f"{path}/selectors", "value": [selector]}]
    if any(isinstance(s, Mapping) and s.get("cel") == selector["cel"] for s in selectors):
        return []
    return [{"op": "add", "path": f"{path}/selectors/-", "value": selector}]
