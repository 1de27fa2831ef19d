"""Solve time of `gpuplace plan` on the full openb cluster (1,213 GPU nodes, 6,212 GPUs).

How the cluster state is made (everything from the Alibaba openb trace, `shared/data/openb`):
1. Nodes from `openb_node_list_gpu_node.csv` with the NVLink layout `placement.trace.OPENB_NVLINK` assumes
   (G2/G3 8-GPU NVSwitch; V100 quads; T4/P100/A10 none). Pods from `openb_pod_list_default.csv`, every
   whole multi-GPU pod needing one NVLink domain.
2. The paper's replay (shuffled with the seed, resampled to 1.3x capacity) with a greedy policy, until
   the allocated GPUs reach `--fill` (90%) of capacity. Pods that fit nowhere stay failed.
3. The snapshot: every placed pod on its GPUs, priority from the trace's QoS (BE 0 < Burstable 1 < LS 2
   < Guaranteed 3), movable except a seeded `--unmovable` share (10%) standing for bare pods.

Then it times:
- defrag for an 8-GPU NVLink pod (the trace's first 8-GPU pod after the fill point; if 8 GPUs are free
  in one domain somewhere, the answer is "fits now" and the bench says so);
- batch placement of the next `--pending` GPU pods of the replay, against the greedy policies placing the
  same pods in the same order on the same state (the offline reference the greedy ones are measured by).

Run: `.venv/bin/python bench/plan_openb.py [--out bench/results/plan_openb.txt]`. CP-SAT uses 2 workers.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from placement.fragmentation import ShapeDistribution
from placement.planner.batch import BatchOptions, copy_cluster, free_block_gpus, plan_batch
from placement.planner.defrag import DefragOptions, after_plan, plan_defrag
from placement.planner.snapshot import SnapNode, SnapPod, Snapshot
from placement.planner.solver import SolveOptions
from placement.policies import PolicyContext, make_policy, pick_best
from placement.simulate import ReplayConfig, build_workload
from placement.topology import MILLI, Cluster, GpuNode, PodRequest
from placement.trace import OPENB_NVLINK, read_nodes, read_pods, with_nvlink_required

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "openb"
QOS_PRIORITY = {"BE": 0, "Burstable": 1, "LS": 2, "Guaranteed": 3}


BIG = 8


@dataclass
class Placed:
    pods: list[tuple[PodRequest, int, tuple[int, ...]]]
    failed: int
    next: int  # index of the first pod not tried


@dataclass
class Filled:
    cluster: Cluster
    placed: list[tuple[PodRequest, int, tuple[int, ...]]]
    rest: list[PodRequest]
    failed: int
    seconds: float


def place_in_order(
    cluster: Cluster,
    pods: Sequence[PodRequest],
    policy_name: str,
    shapes: ShapeDistribution,
    seed: int,
    stop_at: float = 2.0,
) -> Placed:
    """Greedy placement as the simulator does it (NVLink variant), in order; stops before the first pod
    once allocated GPU reaches `stop_at` of capacity. Pods that fit nowhere fail and stay failed."""
    policy = make_policy(
        policy_name, PolicyContext(shapes=shapes, rng=np.random.default_rng(seed), nvlink=True)
    )
    aware = bool(getattr(policy, "nvlink_aware", False))
    tie_rank = np.random.default_rng(seed + 1).permutation(len(cluster))
    out = Placed([], 0, len(pods))
    for i, pod in enumerate(pods):
        if cluster.gpu_used_milli() >= stop_at * cluster.gpu_capacity_milli:
            out.next = i
            break
        seen = (
            pod
            if aware
            else PodRequest(
                pod.name, pod.cpu_milli, pod.memory_mib, pod.num_gpu, pod.gpu_milli, pod.gpu_models
            )
        )
        feasible = np.flatnonzero(cluster.feasible(seen))
        if not len(feasible):
            out.failed += 1
            continue
        node = int(feasible[pick_best(policy.score(cluster, seen, feasible), tie_rank[feasible])])
        gpus = policy.select_gpus(cluster, node, seen)
        cluster.place(node, seen, gpus)
        out.pods.append((seen, node, tuple(gpus)))
    return out


def fill(nodes: list[GpuNode], pods: list[PodRequest], policy: str, seed: int, target: float) -> Filled:
    """The replay up to `target` allocated GPU."""
    cluster = Cluster(nodes)
    work = build_workload(pods, cluster.gpu_capacity_milli, np.random.default_rng(seed), ReplayConfig(seed))
    work = [
        PodRequest(
            f"{p.name}#{i}",
            p.cpu_milli,
            p.memory_mib,
            p.num_gpu,
            p.gpu_milli,
            p.gpu_models,
            p.nvlink_required,
        )
        for i, p in enumerate(work)
    ]
    start = time.perf_counter()
    done = place_in_order(cluster, work, policy, ShapeDistribution.from_pods(pods), seed, target)
    return Filled(cluster, done.pods, work[done.next :], done.failed, time.perf_counter() - start)


def qos_by_name(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["name"]: row.get("qos", "") for row in csv.DictReader(handle)}


def snapshot_of(
    nodes: list[GpuNode], filled: Filled, qos: dict[str, str], unmovable: float, seed: int
) -> Snapshot:
    rng = np.random.default_rng(seed + 2)
    names = filled.cluster.names
    pods = []
    for pod, node, gpus in filled.placed:
        prio = QOS_PRIORITY.get(qos.get(pod.name.split("#")[0], ""), 0)
        pods.append(SnapPod("openb", pod.name, pod, names[node], gpus, prio, bool(rng.random() >= unmovable)))
    return Snapshot([SnapNode.from_gpu_node(n) for n in nodes], pods)


def greedy_on(
    cluster: Cluster, pods: list[PodRequest], policy: str, shapes: ShapeDistribution, seed: int
) -> tuple[int, int, float]:
    """(placed milli-GPU, free-block GPUs after, seconds) of a greedy policy on a copy of the cluster."""
    work = copy_cluster(cluster)
    start = time.perf_counter()
    placed = place_in_order(work, pods, policy, shapes, seed).pods
    return sum(p.total_gpu_milli for p, _, _ in placed), free_block_gpus(work), time.perf_counter() - start


def describe(filled: Filled) -> str:
    c = filled.cluster
    cpu = 1 - c.cpu_free.sum() / c.cpu_total.sum()
    return f"{c.gpu_used_milli() / c.gpu_capacity_milli:.1%} GPUs / {cpu:.1%} CPU allocated"


def defrag_at(
    say: Callable[[str], None],
    nodes: list[GpuNode],
    pods: list[PodRequest],
    qos: dict[str, str],
    args: argparse.Namespace,
    level: float,
) -> None:
    """Fill to `level`, then time a defrag for the trace's next 8-GPU pod."""
    filled = fill(nodes, pods, args.fill_policy, args.seed, level)
    c = filled.cluster
    snap = snapshot_of(nodes, filled, qos, args.unmovable, args.seed)
    big = next(
        (p for p in filled.rest if p.num_gpu == BIG),
        PodRequest("synthetic-8gpu", 64000, 262144, BIG, MILLI, nvlink_required=True),
    )
    start = time.perf_counter()
    r = plan_defrag(snap, big, DefragOptions(solve=SolveOptions(args.time_limit, 2, args.seed)))
    total = time.perf_counter() - start
    say(
        f"defrag at {describe(filled)} ({len(snap.pods)} pods, {filled.failed} failed in the fill; nodes "
        f"with {BIG} free GPUs in one domain: {int((c.largest_free_block() >= BIG).sum())}), for "
        f"{big.name} ({BIG} GPUs in one NVLink domain, {big.cpu_milli // 1000} CPU, "
        f"{big.memory_mib // 1024} GiB)"
    )
    checked = ""
    if r.found and r.moves:
        after_plan(snap, r, big)  # raises if the plan cannot be carried out
        checked = " (plan checked: every move and the pod fit)"
    say(f"  {r.status}: {r.message}{checked}")
    say(
        f"  cost {r.cost}, lower bound over all {r.blocks_total} blocks {r.lower_bound}, proven optimal: "
        f"{r.proven_optimal}; CP-SAT {r.solve_s:.2f} s, end to end {total:.2f} s; {r.scope}"
    )
    for m in r.moves:
        src, dst = ",".join(map(str, m.from_gpus)) or "-", ",".join(map(str, m.to_gpus)) or "-"
        say(f"    evict {m.pod} ({m.from_node} GPU {src}, weight {m.weight}) -> {m.to_node} GPU {dst}")
    say("")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fill", type=float, default=0.85, help="allocated GPU share before the batch")
    ap.add_argument("--defrag-fills", type=float, nargs="+", default=[0.75, 0.85, 0.90, 0.95])
    ap.add_argument(
        "--fill-policy",
        default="least-allocated",
        help="greedy policy of the fill (default: kube-scheduler's default spreading)",
    )
    ap.add_argument("--unmovable", type=float, default=0.10)
    ap.add_argument("--pending", type=int, nargs="+", default=[300, 1000])
    ap.add_argument("--time-limit", type=float, default=10.0, help="defrag solve limit (s)")
    ap.add_argument("--batch-time-limit", type=float, default=30.0)
    ap.add_argument("--policies", nargs="+", default=["best-fit", "gpuplace"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    nodes = read_nodes(args.data / "openb_node_list_gpu_node.csv", OPENB_NVLINK)
    trace = args.data / "openb_pod_list_default.csv"
    pods = with_nvlink_required(read_pods(trace))
    shapes = ShapeDistribution.from_pods(pods)
    qos = qos_by_name(trace)
    say(
        f"gpuplace plan on openb: {len(nodes)} GPU nodes, {sum(n.gpu_count for n in nodes)} GPUs; "
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores (shared); "
        f"CP-SAT 2 workers; time limit {args.time_limit:g} s (defrag), {args.batch_time_limit:g} s (batch)"
    )
    say(
        f"state: {args.fill_policy} replay of openb_pod_list_default (seed {args.seed}, NVLink variant: "
        f"whole multi-GPU pods need one domain), stopped at the fill level; {args.unmovable:.0%} of pods "
        "unmovable; priority from QoS"
    )
    say()
    for level in args.defrag_fills:
        defrag_at(say, nodes, pods, qos, args, level)
    filled = fill(nodes, pods, args.fill_policy, args.seed, args.fill)
    c = filled.cluster
    gpu_rest = [p for p in filled.rest if p.num_gpu]
    solve = SolveOptions(args.batch_time_limit, 2, args.seed)
    for n in args.pending:
        batch = gpu_rest[:n]
        demand = sum(p.total_gpu_milli for p in batch)
        start = time.perf_counter()
        r = plan_batch(c, batch, BatchOptions(solve=solve))
        total = time.perf_counter() - start
        say(f"batch at {describe(filled)}: the next {len(batch)} GPU pods ({demand / MILLI:g} GPUs demanded)")
        say(
            f"  CP-SAT: {r.placed_milli / MILLI:g} GPUs placed ({len(r.placements)} pods), bound "
            f"{r.placed_bound_milli / MILLI:g}; free-block GPUs after {r.free_block_gpus}; {r.status}; "
            f"{total:.2f} s end to end; {r.scope}"
        )
        d, b = r.demand_phase, r.blocks_phase
        say(
            f"    phase 1 (placed demand) {d.status} in {d.wall_s:.2f} s; phase 2 (free blocks) {b.status} "
            f"in {b.wall_s:.2f} s; starting hint (best greedy pass): {r.greedy_placed_milli / MILLI:g}"
        )
        for policy in args.policies:
            placed, blocks, secs = greedy_on(c, batch, policy, shapes, args.seed)
            say(
                f"  greedy {policy} (the simulator's own pass): {placed / MILLI:g} GPUs placed "
                f"({placed / max(1, r.placed_milli):.1%} of CP-SAT), free-block GPUs after {blocks}; "
                f"{secs:.2f} s"
            )
        say()
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
