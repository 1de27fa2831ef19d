"""/prioritize: scores 0..10 for the nodes that passed /filter (`placement.scheduling.score_nodes`).

The best node alone gets 10, so with the shipped weight the scheduler binds there; the pod is nominated
on it at once (its GPUs held) so that the next pod of a burst already sees them taken. Nodes the cache
cannot take (unknown, or full since /filter) are left out of the list, which the scheduler reads as 0.
"""

from __future__ import annotations

import logging

import numpy as np

from extender.cache.cluster_cache import RecordState
from extender.core import Extender
from extender.protocol import ExtenderArgs, ProtocolError, host_priority_json
from placement.findings import Code, Finding, ObjectRef
from placement.node_topology import NodeTable
from placement.scheduling import (
    PASS,
    PodNeeds,
    PodReadError,
    choose_gpus,
    extender_scale,
    filter_nodes,
    score_nodes,
)
from placement.topology import Cluster

log = logging.getLogger("gpuplace.extender.prioritize")


class PrioritizeError(Exception):
    """The extender cannot score now (not synced yet); the scheduler then scores without it."""


def run_prioritize(ext: Extender, args: ExtenderArgs) -> bytes:
    not_ready = ext.readiness()
    if not_ready:
        raise PrioritizeError(f"gpuplace extender not ready: {not_ready}")
    try:
        needs = ext.needs_for(args.pod)
    except PodReadError as exc:  # the pod in the request is malformed: a 400 with the reason, not a 500
        raise ProtocolError(str(exc)) from exc
    names = args.candidate_names()
    with ext.cache.view() as view:
        ranked = ext.ranked_by_filter(view, needs.uid, names)
        if ranked is not None and view.table is not None:  # /filter ranked and nominated already
            rows, values = ranked
            return host_priority_json(view.table.host_json, rows.tolist(), extender_scale(values).tolist())
    if needs.uid:
        ext.cache.forget(needs.uid, RecordState.NOMINATED)
    with ext.cache.view() as view:
        cluster, table = view.cluster, view.table
        if cluster is None or table is None or not needs.gpus:
            return b"[]"
        rows = ext.rows_for(view, names, needs.uid)
        group = view.group_placement(needs.group, exclude_uid=needs.uid)
        ok = filter_nodes(cluster, table, needs, rows, group, view.free).reason == PASS
        live = rows[ok]
        if not len(live):
            return b"[]"
        policy = ext.policy.policy()
        scores = score_nodes(policy, cluster, table, needs, live, group)
        best = int(live[int(np.argmax(scores))])
        if needs.uid:
            gpus = choose_gpus(policy, cluster, best, needs.request)
            if gpus is not None:
                ext.cache.nominate(needs.uid, needs.key, table.names[best], needs.request, gpus, needs.group)
        ext.note(needs.uid, tier_misplacement(cluster, table, needs, len(live), best))
        if log.isEnabledFor(logging.DEBUG):
            info = table.infos[best]
            log.debug("%s (%s): best of %d nodes is %s (%s, %d GPUs free)", needs.key, needs.describe(),
                      len(live), info.name, info.model, int(cluster.whole_free(np.array([best]))[0]))
        return host_priority_json(table.host_json, live.tolist(), scores.tolist())


def tier_misplacement(cluster: Cluster, table: NodeTable, needs: PodNeeds, candidates: int,
                      best: int) -> Finding | None:
    """`tier-misplacement` when the pod's best node is a pricier tier than the cheapest one in the cluster
    that holds it (that tier had no room, or the pod's group or NVLink need ruled it out)."""
    if needs.gpu_memory_mib is None or needs.request.gpu_models:
        return None
    mem = table.gpu_memory_mib
    fits = (mem >= needs.gpu_memory_mib) & np.isfinite(table.price)
    if needs.nvlink_required:
        fits &= cluster.domain_size >= needs.gpus
    if not fits.any() or not np.isfinite(table.price[best]):
        return None
    cheapest = int(np.flatnonzero(fits)[np.argmin(table.price[fits])])
    if table.price[cheapest] >= table.price[best]:
        return None
    chosen, cheap = table.infos[best], table.infos[cheapest]
    return Finding(
        Code.TIER_MISPLACEMENT, ObjectRef("Pod", needs.name, needs.namespace),
        f"goes to {chosen.model} (${chosen.price_per_hour:.2f}/GPU-h): no {cheap.model} node "
        f"(${cheap.price_per_hour:.2f}/GPU-h, holds {needs.gpu_memory_mib} MiB/GPU) had room for "
        f"{needs.gpus} GPU(s) among the {candidates} candidates. Add {cheap.model} capacity.",
        figures={"tier": chosen.model, "cheaper_tier": cheap.model},
    )
