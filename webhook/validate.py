"""What /validate and /mutate decide for one request (async, bounded API reads; no HTTP here)."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from common.config import WebhookConfig
from placement.autoscaling import Autoscaler, extract_autoscaler, is_autoscaler
from placement.checks import CheckContext, check_autoscaler, check_workload, claim_object_findings, servings
from placement.coverage import NOT_JUDGED_LEVEL, UNREADABLE, Coverage, coverage
from placement.dra import (
    POD_CLAIM_ANNOTATION,
    ClaimLookup,
    ClaimSpec,
    claim_spec,
    is_claim_object,
    memory_floor_patch,
    pod_claim_refs,
)
from placement.findings import Finding
from placement.native_affinity import NODE_AFFINITY
from placement.requirements import GPU_MEMORY_MIN, STAMPED, gpu_spec_hash, requirements
from placement.serving import Serving
from placement.workload import CRD_KINDS, TEMPLATE_PATHS, WORKLOAD_KINDS, Workload, WorkloadError, extract
from webhook.admission import Request
from webhook.cluster import ClusterReader
from webhook.decision import Decision, decide
from webhook.mutate import mutation, scheduler_on, stamps_on

log = logging.getLogger("gpuplace.webhook")
ALWAYS_EXEMPT = ("kube-system",)


@dataclass
class Outcome:
    decision: Decision
    findings: list[Finding]
    mode: str
    note: str = ""  # why nothing was judged (exempt, unchanged, not ours)
    # How much of a GPU workload was judged (None: not a GPU workload, or not reviewed at all).
    coverage: Coverage | None = None


class Reviewer:
    def __init__(
        self, cfg: WebhookConfig, ctx: CheckContext, reader: ClusterReader | None, own_namespace: str
    ) -> None:
        self.cfg, self.ctx, self.reader, self.own_namespace = cfg, ctx, reader, own_namespace
        # Findings of a workload are a function of the object alone (and the config, fixed at start), so
        # the same object seen again (`kubectl apply --dry-run=server` then the apply, GitOps drift checks
        # by server-side dry run, re-applies of unchanged manifests) is answered without re-running checks.
        self._cache: OrderedDict[bytes, tuple[tuple[Finding, ...], Coverage | None]] = OrderedDict()

    async def mode_for(self, namespace: str | None) -> tuple[str, str]:
        """(mode, note): exempt namespaces, then the namespace's gpuplace.io/mode label, else the default."""
        if namespace and (
            namespace in ALWAYS_EXEMPT
            or namespace == self.own_namespace
            or namespace in self.cfg.exempt_namespaces
        ):
            return "exempt", f"namespace {namespace} is exempt"
        if namespace and self.reader is not None:
            labels, note = await self.reader.namespace_labels(namespace)
            if labels is None:
                log.warning("namespace %s: mode label unread (%s); using %s", namespace, note, self.cfg.mode)
            elif labels.get(self.cfg.mode_label) in ("enforce", "warn", "audit"):
                return labels[self.cfg.mode_label], ""
            elif self.cfg.mode_label in labels:
                log.warning(
                    "namespace %s: %s=%r is not enforce|warn|audit; using %s",
                    namespace,
                    self.cfg.mode_label,
                    labels[self.cfg.mode_label],
                    self.cfg.mode,
                )
        return self.cfg.mode, ""

    async def validate(self, req: Request) -> Outcome:
        mode, note = await self.mode_for(req.object_namespace)
        if mode == "exempt" or req.obj is None:
            return Outcome(Decision(True), [], mode, note or "nothing to judge")
        if req.operation == "UPDATE" and _unchanged(req, self.ctx):
            return Outcome(Decision(True), [], mode, "GPU spec unchanged")
        findings, judged = await self.assess(req.obj, req.object_namespace)
        return Outcome(decide(findings, mode), findings, mode, coverage=judged)

    async def findings(self, obj: Mapping[str, Any], namespace: str | None) -> list[Finding]:
        return (await self.assess(obj, namespace))[0]

    async def assess(
        self, obj: Mapping[str, Any], namespace: str | None
    ) -> tuple[list[Finding], Coverage | None]:
        """The findings of an object and how much of it was judged (placement.coverage)."""
        if is_claim_object(obj):
            return claim_object_findings(obj, self.ctx), None
        claims, claim_key = await self._claims(obj, namespace)
        # Autoscaler findings depend on the target's current state: not cached.
        content = None if is_autoscaler(obj) else content_key(obj, namespace)
        if content is None:
            return await self._findings(obj, namespace, claims)
        key = content + claim_key  # DRA: what the claims said is part of the input
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return list(hit[0]), hit[1]
        found, judged = await self._findings(obj, namespace, claims)
        self._remember(key, found, judged)
        return found, judged

    async def _claims(
        self, obj: Mapping[str, Any], namespace: str | None
    ) -> tuple[ClaimLookup | None, bytes]:
        """The DRA claim templates and claims the pod template names: one bounded, cached read each (all at
        once). A failed read leaves that claim unknown with the reason (an info finding, never a denial)."""
        refs = pod_claim_refs(_pod_spec(obj))
        if not refs:
            return None, b""
        wanted = sorted(set(refs.values()))
        if self.reader is None or not namespace:
            specs: dict[tuple[str, str], ClaimSpec | str] = {
                ref: f"{ref[0]} {ref[1]}: no API access to read it" for ref in wanted
            }
        else:
            reader = self.reader
            got = await asyncio.gather(*(reader.claim(kind, namespace, name) for kind, name in wanted))
            specs = {
                ref: claim_spec(found) if found is not None else note
                for ref, (found, note) in zip(wanted, got, strict=True)
            }
        key = orjson.dumps([[*ref, repr(spec)] for ref, spec in specs.items()])

        def lookup(kind: str, name: str) -> ClaimSpec | str:
            return specs.get((kind, name), f"{kind} {name} was not read")

        return lookup, key

    def _remember(self, key: bytes, found: list[Finding], judged: Coverage | None) -> None:
        if self.cfg.findings_cache_size <= 0 or len(key) > MAX_KEY_BYTES:
            return
        self._cache[key] = (tuple(found), judged)
        while len(self._cache) > self.cfg.findings_cache_size:
            self._cache.popitem(last=False)

    async def _findings(
        self, obj: Mapping[str, Any], namespace: str | None, claims: ClaimLookup | None = None
    ) -> tuple[list[Finding], Coverage | None]:
        out: list[Finding] = []
        judged: Coverage | None = None
        try:
            workload = extract(obj, self.ctx.gpus, claims)
        except WorkloadError as exc:
            _cannot_read(obj, exc)
            workload, judged = None, Coverage(NOT_JUDGED_LEVEL, UNREADABLE)
        if workload is not None:
            out.extend(check_workload(workload, self.ctx))
            judged = coverage(workload, out)
        if is_autoscaler(obj):
            autoscaler = _autoscaler(obj)
            if autoscaler is not None:
                targets, note = await self._targets(autoscaler, workload, namespace)
                out.extend(check_autoscaler(autoscaler, lambda _a: (targets, note), self.ctx))
        return out, judged

    async def _targets(
        self, a: Autoscaler, own: Workload | None, namespace: str | None
    ) -> tuple[list[Serving] | None, str]:
        if own is not None and a.target_kind == own.ref.kind and a.target_name == own.ref.name:
            return servings(own, self.ctx), ""  # Knative Service / InferenceService scale themselves
        if self.reader is None or not namespace:
            return None, "no API access to read the target"
        obj, note = await self.reader.target(a.target_kind, namespace, a.target_name)
        if obj is None:
            return None, note
        target = _workload(obj, self.ctx)
        return (servings(target, self.ctx), "") if target else (None, "target has no pod template")

    def mutate(self, req: Request) -> list[dict[str, Any]]:
        if req.obj is None or req.kind not in WORKLOAD_KINDS:
            return []
        workload = _workload(req.obj, self.ctx)
        if workload is None or not workload.gpu_containers:
            return []
        if req.operation == "UPDATE" and req.old_obj is not None:
            kept = self._kept_on_update(req.old_obj, workload)
            if kept is not None:
                stamps, scheduler = kept
                # Native constraints the template carried are kept (restored if a replace dropped them).
                kept_native = self.cfg.native_constraint_labels if NODE_AFFINITY in stamps else ()
                native = kept_native if self.cfg.native_constraints else ()
                return mutation(req.obj, workload, stamps, scheduler, native)
        stamps = requirements(workload, self.ctx)
        # A Pod's schedulerName and node affinity are immutable after creation.
        mutable = req.operation == "CREATE" or req.kind != "Pod"
        scheduler = self.cfg.scheduler_name if mutable else None
        native = self.cfg.native_constraint_labels if (mutable and self.cfg.native_constraints) else ()
        return mutation(req.obj, workload, stamps, scheduler, native)

    async def claim_memory_floor(self, req: Request) -> list[dict[str, Any]]:
        """DRA, opt-in (webhook.dra_memory_floor): a ResourceClaim Kubernetes makes from a pod's claim
        template gets the memory the pod's model needs as a selector, so the allocator itself keeps the
        pod off GPUs too small for it, whichever scheduler runs. Reads the owning pod's gpu-memory-min
        stamp (one bounded API read); anything missing leaves the claim as it is."""
        claim = req.obj
        if not self.cfg.dra_memory_floor or claim is None or req.operation != "CREATE":
            return []
        meta = claim.get("metadata") or {}
        owner = next((o for o in meta.get("ownerReferences") or [] if o.get("kind") == "Pod"), None)
        made_for_pod = POD_CLAIM_ANNOTATION in (meta.get("annotations") or {})
        if not made_for_pod or owner is None or self.reader is None or not req.object_namespace:
            return []
        pod, note = await self.reader.pod(req.object_namespace, str(owner.get("name", "")))
        floor = ((pod or {}).get("metadata") or {}).get("annotations", {}).get(GPU_MEMORY_MIN, "")
        if not str(floor).isdigit():
            if note:
                log.warning("claim %s/%s: no memory floor (%s)", req.object_namespace, meta.get("name"), note)
            return []
        return memory_floor_patch(claim, int(floor))

    def _kept_on_update(
        self, old_obj: Mapping[str, Any], workload: Workload
    ) -> tuple[dict[str, str], str | None] | None:
        """On an UPDATE that leaves the GPU spec as it was, the pod template keeps exactly what it carried:
        the old object's stamps (restored when a `kubectl replace` dropped them) and no new or changed ones.
        A changed pod template rolls out every pod, so a label edit of a Deployment created before gpuplace
        was installed, or after an upgrade that estimates differently, must not restart its GPU pods.
        None: the GPU spec changed (a rollout is under way anyway), stamp afresh."""
        old = _workload(old_obj, self.ctx)
        if old is None or gpu_spec_hash(old) != gpu_spec_hash(workload):
            return None
        path = workload.template_path or ()
        stamps = stamps_on(old_obj, path, STAMPED)
        had = scheduler_on(old_obj, path)
        scheduler = had if had is not None and had == self.cfg.scheduler_name else None
        return stamps, scheduler


def _pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod spec of a workload object (where spec.resourceClaims sits); empty for other kinds."""
    kind = obj.get("kind")
    path = ("spec", "template") if kind == "Service" else TEMPLATE_PATHS.get(str(kind), ())
    node: Any = obj
    for key in (*(path or ()), "spec"):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _workload(
    obj: Mapping[str, Any], ctx: CheckContext, claims: ClaimLookup | None = None
) -> Workload | None:
    try:
        return extract(obj, ctx.gpus, claims)
    except WorkloadError as exc:
        _cannot_read(obj, exc)
        return None


def _cannot_read(obj: Mapping[str, Any], exc: WorkloadError) -> None:
    # The apiserver has validated built-in kinds; this is a CRD with a shape gpuplace cannot read.
    log.warning("%s/%s: cannot read: %s", obj.get("kind"), (obj.get("metadata") or {}).get("name"), exc)


def _autoscaler(obj: Mapping[str, Any]) -> Autoscaler | None:
    try:
        return extract_autoscaler(obj)
    except WorkloadError as exc:  # a CRD (KEDA, Knative) or a field gpuplace cannot read: judged no further
        log.warning("%s/%s: cannot read: %s", obj.get("kind"), (obj.get("metadata") or {}).get("name"), exc)
        return None


# Objects whose key (the JSON of what the checks read) is longer are judged every time, not remembered:
# a pod spec is a few KiB, so the cache stays within a few MiB at its default size.
MAX_KEY_BYTES = 64 * 1024


def content_key(obj: Mapping[str, Any], namespace: str | None) -> bytes | None:
    """Everything the workload checks can read, as JSON: kind, name, labels, annotations and spec; not
    uid, resourceVersion, timestamps or managedFields, which differ between a dry run and the apply.
    The JSON itself is the key, not a digest of it: a dict compares it exactly, and no hash library
    runs per review. None for an object nested deeper than the encoder goes (orjson stops at 254 levels,
    the parser at 1024): such an object is judged every time, like one too large to remember."""
    meta = obj.get("metadata") or {}
    parts = [
        obj.get("apiVersion"),
        obj.get("kind"),
        namespace or meta.get("namespace"),
        meta.get("name") or meta.get("generateName"),
        meta.get("labels"),
        meta.get("annotations"),
        obj.get("spec"),
    ]
    try:
        return orjson.dumps(parts, default=str)
    except orjson.JSONEncodeError:
        return None


def _unchanged(req: Request, ctx: CheckContext) -> bool:
    """On UPDATE, an unchanged GPU spec is not re-judged: editing labels must not start failing."""
    if req.old_obj is None or req.obj is None:
        return False
    old_meta, new_meta = req.old_obj.get("metadata") or {}, req.obj.get("metadata") or {}
    if req.obj.get("spec") == req.old_obj.get("spec") and new_meta.get("annotations") == old_meta.get(
        "annotations"
    ):
        return True  # the common UPDATE (controllers, labels): nothing the checks read changed
    if is_autoscaler(req.obj) and req.obj.get("spec") != req.old_obj.get("spec"):
        return False
    if req.obj.get("kind") in CRD_KINDS:
        return False  # a CRD's GPUs and tier sit outside the containers the hash covers (a Serve config)
    new, old = _workload(req.obj, ctx), _workload(req.old_obj, ctx)
    if new is None or old is None:
        return new is None and old is None and req.obj.get("spec") == req.old_obj.get("spec")
    return gpu_spec_hash(new) == gpu_spec_hash(old)
