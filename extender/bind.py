"""/bind: bind the pod through the API (`pods/binding`), with the GPU indices gpuplace chose.

The GPUs are those the pod was nominated on (/prioritize picked them) or, when the scheduler chose
another node, what the policy picks there now (for an NVLink-bound pod, the tightest domain that holds
it). They are held in the cache before the API call, so concurrent binds and the next pod's /filter see
them at once, and released again if the call fails. The binding carries the annotation
`gpuplace.io/gpus: "0,1"`, which the API server copies onto the pod in the same write as `nodeName`:
the accounting survives restarts and the planner reads it. The device plugin still decides which
physical GPUs the container gets; the annotation is gpuplace's accounting of NVLink domains.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from extender.cache.cluster_cache import RecordState
from extender.core import BindError, Extender
from extender.protocol import ExtenderBindingArgs, ExtenderBindingResult
from placement.scheduling import GPUS_ANNOTATION, FreeSummary, PodNeeds, PodReadError, choose_gpus

log = logging.getLogger("gpuplace.extender.bind")


async def run_bind(ext: Extender, args: ExtenderBindingArgs) -> ExtenderBindingResult:
    key = f"{args.pod_namespace}/{args.pod_name}"
    if ext.binder is None:
        return _fail(ext, "no-binder", f"gpuplace: cannot bind {key}: the extender has no API access")
    not_ready = ext.readiness()
    if not_ready:
        return _fail(ext, "not-ready", f"gpuplace: cannot bind {key}: extender not ready: {not_ready}")
    needs = ext.known_needs(args.pod_uid) if args.pod_uid else None
    if needs is None:  # not seen by /filter (extender restarted in between): read the pod
        try:
            pod = await ext.binder.get_pod(args.pod_namespace, args.pod_name)
        except BindError as exc:
            return _fail(ext, "api-error", f"gpuplace: cannot read pod {key}: {exc}")
        if pod is None:
            return _fail(ext, "api-error", f"gpuplace: pod {key} not found")
        try:
            needs = ext.needs_for(pod)
        except PodReadError as exc:
            return _fail(ext, "refused", f"gpuplace: {exc}")
    uid = args.pod_uid or needs.uid
    chosen = _reserve(ext, needs, uid, key, args.node)
    if isinstance(chosen, str):
        return _fail(ext, "refused", chosen)
    annotations = {GPUS_ANNOTATION: ",".join(map(str, chosen))} if chosen else {}
    start = ext.clock()
    try:
        call = ext.binder.bind(args.pod_namespace, args.pod_name, uid, args.node, annotations)
        await asyncio.wait_for(call, timeout=ext.settings.bind_timeout_s)
    except (BindError, TimeoutError, OSError) as exc:
        ext.cache.forget(uid, RecordState.ASSUMED)
        reason = str(exc) or type(exc).__name__
        return _fail(ext, "api-error", f"gpuplace: binding {key} to {args.node} failed: {reason}")
    finally:
        ext.metrics.bind_api.observe(max(0.0, ext.clock() - start))
    ext.metrics.binds.labels("ok").inc()
    _log_bound(ext, needs, key, args.node, chosen)
    note = ext.take_note(uid)
    if note is not None:
        ext.report(note)
    return ExtenderBindingResult(Error="")


def _reserve(ext: Extender, needs: PodNeeds, uid: str, key: str, node: str) -> tuple[int, ...] | str:
    """Hold the pod's GPUs on `node` (as an assumed record); the GPU indices, or why it cannot go there."""
    rec = ext.cache.record(uid)
    if rec is not None and rec.state is RecordState.NOMINATED and (rec.node != node or rec.gpus is None):
        ext.cache.forget(uid, RecordState.NOMINATED)
        rec = None
    with ext.cache.view() as view:
        table, cluster = view.table, view.cluster
        row = table.row.get(node) if table is not None else None
        if row is None or cluster is None:
            return f"gpuplace: node {node} is not a GPU node the extender knows"
        if rec is not None and rec.state is RecordState.NOMINATED and rec.gpus is not None:
            gpus: tuple[int, ...] | None = rec.gpus
        elif rec is not None and rec.state is RecordState.WATCHED:
            return f"gpuplace: pod {key} is already bound to {rec.node}"
        else:
            gpus = choose_gpus(ext.policy.policy(), cluster, row, needs.request)
        if gpus is None:
            if needs.nvlink_required:
                return (f"gpuplace: {node} has no NVLink domain with {needs.gpus} free GPUs any more "
                        f"(largest free block: {int(cluster.largest_free_block(np.array([row]))[0])})")
            log.warning("binding %s to %s although gpuplace counts fewer than %d free GPUs there "
                        "(its view may lag); no GPU indices recorded", key, node, needs.gpus)
            gpus = ()
        ext.cache.assume(uid, key, node, needs.request, gpus, needs.group)
        return gpus


def _log_bound(ext: Extender, needs: PodNeeds, key: str, node: str, gpus: tuple[int, ...]) -> None:
    if not log.isEnabledFor(logging.INFO):
        with ext.cache.lock:
            table = ext.cache.view_table()
            row = table.row.get(node) if table is not None else None
            if table is not None and row is not None:
                ext.metrics.decisions.labels(table.infos[row].model).inc()
        return
    with ext.cache.view() as view:
        table, cluster = view.table, view.cluster
        row = table.row.get(node) if table is not None else None
        if row is None or cluster is None or table is None:
            log.info("bound %s to %s", key, node)
            return
        info = table.infos[row]
        ext.metrics.decisions.labels(info.model).inc()
        free = view.free or FreeSummary.of(cluster)
        left, block = int(free.whole[row]), int(free.block[row])
        domains = sorted({int(cluster.domain_of[row, g]) for g in gpus}) if gpus else []
    where = f"GPUs {','.join(map(str, gpus))}" if gpus else "GPUs unrecorded"
    if domains and info.domain_size > 1:
        where += f" (NVLink domain {','.join(map(str, domains))} of {info.domain_size})"
    log.info("bound %s (%s) to %s [%s] on %s; %d GPUs left free there, largest free block %d",
             key, needs.describe(), node, info.model, where, left, block)


def _fail(ext: Extender, outcome: str, message: str) -> ExtenderBindingResult:
    ext.metrics.binds.labels(outcome).inc()
    log.warning("%s", message)
    return ExtenderBindingResult(Error=message)
