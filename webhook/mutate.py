"""The JSONPatch /mutate returns: requirements stamped as annotations on the pod template, and optionally
schedulerName on GPU pods. Idempotent: an object that already carries the same values gets an empty patch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from placement.workload import Workload
from webhook.affinity import native_constraints, requests_gpus
from webhook.jsonpatch import pointer

DEFAULT_SCHEDULER = "default-scheduler"


def _template(obj: Mapping[str, Any], path: Sequence[str]) -> Mapping[str, Any] | None:
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, Mapping) else None


def annotation_patch(
    obj: Mapping[str, Any], path: Sequence[str], wanted: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Ops that make `<path>/metadata/annotations` carry `wanted`, whatever already exists there."""
    holder = _template(obj, path)
    if holder is None or not wanted:
        return []
    meta = holder.get("metadata")
    if not isinstance(meta, Mapping):
        return [{"op": "add", "path": pointer([*path, "metadata"]), "value": {"annotations": dict(wanted)}}]
    current = meta.get("annotations")
    if not isinstance(current, Mapping):
        return [{"op": "add", "path": pointer([*path, "metadata", "annotations"]), "value": dict(wanted)}]
    return [
        {"op": "add", "path": pointer([*path, "metadata", "annotations", key]), "value": value}
        for key, value in sorted(wanted.items())
        if current.get(key) != value
    ]


def stamps_on(obj: Mapping[str, Any], path: Sequence[str], keys: Sequence[str]) -> dict[str, str]:
    """The values of `keys` among the annotations at `<path>/metadata/annotations` (what a previous
    /mutate stamped there)."""
    holder = _template(obj, path)
    meta = holder.get("metadata") if holder is not None else None
    current = meta.get("annotations") if isinstance(meta, Mapping) else None
    if not isinstance(current, Mapping):
        return {}
    return {k: str(current[k]) for k in keys if isinstance(current.get(k), str)}


def scheduler_on(obj: Mapping[str, Any], path: Sequence[str]) -> str | None:
    holder = _template(obj, path)
    spec = holder.get("spec") if holder is not None else None
    value = spec.get("schedulerName") if isinstance(spec, Mapping) else None
    return value if isinstance(value, str) else None


def scheduler_patch(obj: Mapping[str, Any], path: Sequence[str], scheduler: str) -> list[dict[str, Any]]:
    """Route GPU pods to gpuplace's scheduler unless the user chose a scheduler of their own."""
    holder = _template(obj, path)
    spec = holder.get("spec") if holder else None
    if not isinstance(spec, Mapping):
        return []
    current = spec.get("schedulerName")
    if current == scheduler or current not in (None, "", DEFAULT_SCHEDULER):
        return []
    return [{"op": "add", "path": pointer([*path, "spec", "schedulerName"]), "value": scheduler}]


def mutation(
    obj: Mapping[str, Any],
    workload: Workload,
    stamps: Mapping[str, str],
    scheduler: str | None,
    native: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """`native`: the label families for native constraints (webhook/affinity.py); empty: none."""
    # Kinds with a pod template stamp it; a Pod stamps itself; an InferenceService its own metadata
    # (KServe copies it to the predictor pods); a LeaderWorkerSet both its leader and worker templates (the
    # extender places the whole group by the same stamps).
    ops: list[dict[str, Any]] = []
    for path in workload.stamp_paths:
        path_stamps, affinity_ops = dict(stamps), list[dict[str, Any]]()
        template = _template(obj, path)
        if native and workload.ref.kind != "InferenceService" and requests_gpus(template):
            recorded, affinity_ops = native_constraints(template, path, stamps, workload.tier, native)
            path_stamps.update(recorded)
        ops += annotation_patch(obj, path, path_stamps) + affinity_ops
        if scheduler and workload.ref.kind != "InferenceService":
            ops += scheduler_patch(obj, path, scheduler)
    return ops
