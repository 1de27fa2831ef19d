"""/filter: which of the candidate nodes can take the pod (rules: `placement.scheduling.filter_nodes`).

Nodes refused for good (GPUs too small, no NVLink domain big enough, wrong tier, another clique of the
pod's group) go to `FailedAndUnresolvableNodes`, so kube-scheduler's preemption leaves them alone; nodes
refused for now (GPUs busy, free GPUs in pieces) go to `FailedNodes`.

Shortlist (`shortlist`, default 1; 0 turns it off): of the nodes that fit, only the best `shortlist` by
the extender's own ranking are passed on. The others fit but are not offered, and are named in neither
failure map. kube-scheduler then runs its score plugins and /prioritize on a handful of nodes instead of
thousands, which is most of what an extender costs it per pod; the extender's best node is on the list
and wins with the shipped weight either way. The best node is nominated at once (its GPUs held), since
with one node left the scheduler binds without asking /prioritize.
"""

from __future__ import annotations

import logging
from collections import Counter

from extender.cache.cluster_cache import RecordState
from extender.core import Extender
from extender.prioritize import tier_misplacement
from extender.protocol import ExtenderArgs, ExtenderFilterResult, filter_error, filter_result
from placement.scheduling import (
    FilterOutcome,
    PodNeeds,
    PodReadError,
    Refusal,
    best_first,
    choose_gpus,
    filter_nodes,
    fragmentation_finding,
    rank_values,
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
        passed_rows = rows[out.passed]
        fitting = len(passed)
        limit = ext.settings.shortlist
        values = None
        cluster, table = view.cluster, view.table
        rank = bool(limit) or len(passed) == 1
        if cluster is not None and table is not None and needs.gpus and passed and rank:
            policy = ext.policy.policy()
            if limit:  # rank here, offer the best `limit`; /prioritize answers from this ranking
                values = rank_values(policy, cluster, table, needs, passed_rows, group)
                keep = best_first(values, limit)
                passed, passed_rows, values = [passed[int(i)] for i in keep], passed_rows[keep], values[keep]
                ext.note(needs.uid, tier_misplacement(cluster, table, needs, len(out.passed),
                                                      int(passed_rows[0])))
            if needs.uid:
                gpus = choose_gpus(policy, cluster, int(passed_rows[0]), needs.request)
                if gpus is not None:
                    ext.cache.nominate(needs.uid, needs.key, passed[0], needs.request, gpus, needs.group)
        ext.remember_passed(needs.uid, view.generation, passed, passed_rows, values)
    counts = out.counts()
    for reason, n in counts.items():
        ext.metrics.refused_nodes.labels(reason.value).inc(n)
    if not passed:
        _log_refusal(ext, needs, len(names), counts, out)
    elif log.isEnabledFor(logging.DEBUG):
        log.debug("%s (%s): %d of %d nodes fit, %d offered (best %s); refused %s", needs.key,
                  needs.describe(), fitting, len(names), len(passed), passed[0],
                  ", ".join(f"{n} {r.value}" for r, n in counts.most_common()) or "none")
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

