"""Native constraints (opt-in, `webhook.native_constraints`): the memory floor gpuplace works out, and the
tier the pod pinned, written as *required* node affinity on the labels that GPU Feature Discovery puts on
nodes and that Karpenter knows before a node exists. Any scheduler (without the gpuplace extender) and any
autoscaler that simulates scheduling (Cluster Autoscaler, Karpenter) then keeps the pod off GPUs too small
for it instead of scaling up a node group it cannot run on.

Each label family is one alternative; a pod's required terms are OR-ed, so every term of the user's own
affinity is AND-ed with each alternative (the cross product): the result allows a subset of what the user
allowed (never wider) and works on clusters labelled by either family. What was added is recorded in the
`gpuplace.io/node-affinity` annotation, so that a later /mutate (the floor changed) takes out exactly its
own old expressions and nothing the user wrote; the same input gives an empty patch the second time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from placement.catalog import KARPENTER_GPU_NAME_LABEL
from placement.workload import ANNOTATION_PREFIX, TierPin

NODE_AFFINITY = ANNOTATION_PREFIX + "node-affinity"
# GPU Feature Discovery: NVML's total memory of one GPU, MiB (a little above what CUDA reports, the unit of
# gpu-memory-min, so `Gt floor-1` never excludes a GPU the extender would accept).
GFD_MEMORY_LABEL = "nvidia.com/gpu.memory"
# Karpenter (AWS provider): EC2's memory of one GPU of the instance type, MiB (nominal, >= usable).
KARPENTER_MEMORY_LABEL = "karpenter.k8s.aws/instance-gpu-memory"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"

Expr = dict[str, Any]
Term = dict[str, Any]


def alternatives(floor_mib: int | None, tier: TierPin, families: Sequence[str]) -> list[list[Expr]]:
    """One list of expressions per label family (OR-ed); empty when gpuplace knows no floor."""
    if floor_mib is None or floor_mib <= 0:
        return []
    bound = [str(floor_mib - 1)]  # `Gt` is strict; the floor itself fits
    out: list[list[Expr]] = []
    if "gpu-feature-discovery" in families:
        out.append([{"key": GFD_MEMORY_LABEL, "operator": "Gt", "values": bound}])
    if "karpenter" in families:
        karpenter: list[Expr] = [{"key": KARPENTER_MEMORY_LABEL, "operator": "Gt", "values": bound}]
        names = _karpenter_names(tier)
        if names:
            karpenter.append({"key": KARPENTER_GPU_NAME_LABEL, "operator": "In", "values": names})
        out.append(karpenter)
    return out


def _karpenter_names(tier: TierPin) -> list[str]:
    """The instance-gpu-name values of the pinned tiers, only when every pinned tier has one (a tier
    Karpenter names differently, or not at all, must not be ruled out by a partial list)."""
    if not tier.pinned or tier.unknown_values or any(not g.instance_gpu_names for g in tier.gpus):
        return []
    return sorted({n for g in tier.gpus for n in g.instance_gpu_names})


def merge_terms(
    terms: Sequence[Term], previous: Sequence[Sequence[Expr]], alts: Sequence[Sequence[Expr]]
) -> list[Term]:
    """The user's terms without gpuplace's previous expressions, each AND-ed with every alternative.
    A term that already holds one alternative whole is kept as it is."""
    old = [e for alt in previous for e in alt]
    base = _unique([_without(t, old) for t in terms])
    if alts and not base:
        base = [{}]
    out: list[Term] = []
    for term in base:
        exprs = list(term.get("matchExpressions") or [])
        if not alts or any(all(e in exprs for e in alt) for alt in alts):
            out.append(term)
            continue
        for alt in alts:
            out.append({**term, "matchExpressions": exprs + [e for e in alt if e not in exprs]})
    # An empty term matches no node: one left only by gpuplace's own old expressions goes.
    return _unique([t for t in out if t.get("matchExpressions") or t.get("matchFields")])


def _without(term: Mapping[str, Any], old: Sequence[Expr]) -> Term:
    out = dict(term)
    if "matchExpressions" in out:
        out["matchExpressions"] = [e for e in out.get("matchExpressions") or [] if e not in old]
        if not out["matchExpressions"]:
            del out["matchExpressions"]
    return out


def _unique(terms: list[Term]) -> list[Term]:
    seen: list[Term] = []
    for t in terms:
        if t not in seen:
            seen.append(t)
    return seen


def recorded(annotations: Mapping[str, Any]) -> list[list[Expr]]:
    """What a previous /mutate added (the annotation); anything unreadable counts as nothing."""
    try:
        value = json.loads(str(annotations.get(NODE_AFFINITY) or "[]"))
    except json.JSONDecodeError:
        return []
    if not isinstance(value, list) or not all(isinstance(a, list) for a in value):
        return []
    return [[e for e in a if isinstance(e, dict)] for a in value]


def user_node_affinity(spec: Mapping[str, Any], annotations: Mapping[str, Any]) -> dict[str, Any]:
    """The pod spec's nodeAffinity without what gpuplace added (what the inputs hash reads): a template
    /mutate constrained hashes as it did before, so the pod made from it is not stamped afresh."""
    node_affinity = dict((spec.get("affinity") or {}).get("nodeAffinity") or {})
    previous = recorded(annotations)
    required = node_affinity.get(REQUIRED)
    if not previous or not isinstance(required, Mapping):
        return node_affinity
    terms = [dict(t) for t in required.get("nodeSelectorTerms") or [] if isinstance(t, Mapping)]
    mine = merge_terms(terms, previous, [])
    if mine:
        node_affinity[REQUIRED] = {**required, "nodeSelectorTerms": mine}
    else:
        del node_affinity[REQUIRED]
    return node_affinity
