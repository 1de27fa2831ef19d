"""/filter: which of the candidate nodes can take the pod (rules: `placement.scheduling.filter_nodes`).

Nodes refused for good (GPUs too small, no NVLink domain big enough, wrong tier, another clique of the
pod's group) go to `FailedAndUnresolvableNodes`, so kube-scheduler's preemption leaves them alone; nodes
refused for now (GPUs busy, free GPUs in pieces) go to `FailedNodes`. When one node is left, the
scheduler will bind there without asking /prioritize, so the pod is nominated on it at once.
"""

from __future__ import annotations

import logging
from collections import Counter

from extender.cache.cluster_cache import RecordState
from extender.core import Extender
from extender.protocol import ExtenderArgs, ExtenderFilterResult, filter_error, filter_result
from placement.scheduling import (
    FilterOutcome,
    PodNeeds,
    PodReadError,
    Refusal,
    choose_gpus,
    filter_nodes,
    fragmentation_finding,
)

log = logging.getLogger("gpuplace.extender.filter")


def run_filter(ext: Extender, args: ExtenderArgs) -> ExtenderFilterResult:
    not_ready = ext.readiness()
    if not_ready:
        return filter_error(args, f"gpuplace extender not ready: {not_ready}")
    try:
        needs = ext.needs_for(args.pod)
    except PodReadError as exc:
        return filter_error(args, f"gpuplace: {exc}")
    names = args.candidate_names()
    if needs.uid:
        ext.cache.forget(needs.uid, RecordState.NOMINATED)  # the scheduler is trying the pod (again)
    with ext.cache.view() as view:
        rows = ext.rows_for(view, names)
        group = view.group_placement(needs.group, exclude_uid=needs.uid)
        out = filter_nodes(view.cluster, view.table, needs, rows, group, view.free)
        passed, failed, unresolvable = out.split(names)
        ext.remember_passed(needs.uid, view.generation, passed, rows[out.passed])
        if len(passed) == 1 and needs.uid and view.cluster is not None:
            row = int(rows[int(out.passed[0])])
            gpus = choose_gpus(ext.policy.policy(), view.cluster, row, needs.request)
            if gpus is not None:
                ext.cache.nominate(needs.uid, needs.key, passed[0], needs.request, gpus, needs.group)
    counts = out.counts()
    for reason, n in counts.items():
        ext.metrics.refused_nodes.labels(reason.value).inc(n)
    if not passed:
        _log_refusal(ext, needs, len(names), counts, out)
    elif counts:
        log.debug("%s (%s): %d of %d nodes pass; refused %s", needs.key, needs.describe(), len(passed),
                  len(names), ", ".join(f"{n} {r.value}" for r, n in counts.most_common()))
    return filter_result(args, passed, failed, unresolvable)


def _log_refusal(ext: Extender, needs: PodNeeds, total: int, counts: Counter[Refusal],
                 out: FilterOutcome) -> None:
    """One line per pod left without a node, with every rule that refused nodes and how many."""
    ranked = counts.most_common()
    ext.metrics.refused_pods.labels(ranked[0][0].value if ranked else "no-candidates").inc()
    detail = "; ".join(f"{n} node(s) {r.value}: {out.example(r).removeprefix('gpuplace: ')}"
                       for r, n in ranked)
    log.info("refused %s (%s): none of %d candidate nodes fits: %s", needs.key, needs.describe(), total,
             detail or "no candidate nodes")
    finding = fragmentation_finding(needs, out)
    if finding is not None:
        ext.report(finding)

