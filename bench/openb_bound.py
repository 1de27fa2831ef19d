"""A lower bound on the unallocated GPU % at 100% arrived demand that no placement policy can beat.

    .venv/bin/python bench/openb_bound.py --traces gpushare60,gpushare100,default --seeds 10

For each trace and seed, the arrived pods are exactly those the replay schedules
(`placement.simulate.replay_workload`: the same shuffle, the same resizing to 1.3x the GPU capacity, the
same random streams), and the figure is computed with the replay's own metric
(`ReplayResult.unallocated_at(100)`: 100 minus the mean allocated % over the pods whose arrived demand
rounds to 100% of capacity), fed with an upper bound on what any policy can have allocated after each of
those pods. The bound holds for every policy, online or offline, that sees all arrived pods at once, places
them in any order and may leave any of them out, because it bounds the GPU demand of every subset of the
arrived pods that fits on the cluster at the same time.

The argument:

1. After pod i, any replay has allocated the GPU demand of a set of pods among pods 0..i that sit on the
   cluster together. That set is also a packable subset of pods 0..j for every checkpoint j >= i, so the
   allocation is at most OPT(j), the largest GPU demand of a packable subset of pods 0..j, and at most the
   arrived demand after pod i. The metric decreases when allocations grow, so feeding it
   min(arrived_i, UB(j)) with UB(j) >= OPT(j) for the next checkpoint j >= i gives a lower bound on it.
   Checkpoints: several pods inside the window whose arrived demand rounds to 100%, and the last pod.

2. UB(j) is the value of a linear program that every packing satisfies (a relaxation), aggregated by pod
   type (cpu, memory, GPU count, share per GPU, allowed GPU models) and node type (cpu, memory, GPUs,
   model). CPU-only pods are left out: they allocate no GPU and dropping them only frees room. Variables:
   x[p,n], the pods of type p on nodes of type n (only where the model is allowed and one node can hold the
   pod: cpu, memory, GPU count); z[n,c], the GPUs of nodes of type n whose shared pods (share < 1000) form
   the multiset c of shares (one variable per maximal multiset of the trace's share values with sum
   <= 1000). Constraints per node type n (N_n nodes of C_n cpu, M_n memory, G_n GPUs):
     sum_n x[p,n] <= count of p;  sum_p cpu_p x[p,n] <= N_n C_n;  sum_p mem_p x[p,n] <= N_n M_n;
     sum_{p whole} gpus_p x[p,n] + sum_c z[n,c] <= N_n G_n;
     for each share s: sum_{p with share s} x[p,n] <= sum_c c_s z[n,c].
   Objective: sum_p gpus_p share_p x[p,n]. Any packing satisfies all of these with x the pod counts and z
   the count of GPUs by the multiset of shares on them, each multiset extended to a maximal one (it fits
   one GPU, so an extension exists, and extending only adds slots): a whole-GPU pod needs GPUs with
   nothing else on them, so whole GPUs and shared GPUs are disjoint, and a GPU's shares sum to at most
   1000. The multiset variables are the strengthening that matters for shares: two pods above 500 milli
   never share a GPU, an 810-milli pod leaves only 190 for pods of 160 or less, etc. Their value is the
   packing's allocation, so the LP optimum is >= OPT(j).

3. The LP solver's answer is not trusted: UB(j) is computed from its dual values by weak duality. For any
   y >= 0 over the rows (A x <= b) and any x with A x <= b and 0 <= x <= u, c.x = y.Ax + (c - A'y).x
   <= y.b + sum_k u_k max(0, c_k - (A'y)_k). Every packing has x[p,n] <= count of p and
   z[n,c] <= N_n G_n, so that sum, evaluated here in exact rational arithmetic on the solver's y
   (clipped at 0), bounds OPT(j) whatever the solver's tolerances were; allocations are integers, so
   UB(j) is that sum rounded down.

What it leaves out (all of which only make the bound weaker, never invalid): CPU, memory and shares are
pooled per node type rather than per node, and multi-GPU pods are not tied to one node's GPUs.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from ortools.linear_solver import pywraplp

from placement.simulate import ReplayConfig, ReplayResult, Summary, replay_workload
from placement.topology import MILLI, Cluster, GpuNode, PodRequest
from placement.trace import OPENB_NODE_FILE, OPENB_PUBLISHED, openb_traces, read_nodes, read_pods

DEFAULT_TRACE_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "openb"
WINDOW_CHECKPOINTS = 8  # upper bounds computed inside the 100% window (plus one on the whole workload)


@dataclass(frozen=True)
class NodeType:
    cpu: int
    mem: int
    gpus: int
    model: str
    count: int


@dataclass(frozen=True)
class PodType:
    cpu: int
    mem: int
    gpus: int
    share: int  # per GPU, 1..1000
    models: frozenset[str]
    count: int

    @property
    def shared(self) -> bool:
        return self.share < MILLI

    @property
    def value(self) -> int:
        return self.gpus * self.share

    def fits(self, node: NodeType) -> bool:
        """Whether one empty node of this type can hold one such pod."""
        return (
            self.cpu <= node.cpu
            and self.mem <= node.mem
            and self.gpus <= node.gpus
            and (not self.models or node.model in self.models)
        )


def node_types(nodes: Sequence[GpuNode]) -> list[NodeType]:
    counts = Counter((n.cpu_milli_total, n.memory_mib_total, n.gpu_count, n.model) for n in nodes)
    return [
        NodeType(cpu, mem, gpus, model, k)
        for (cpu, mem, gpus, model), k in sorted(counts.items())
        if gpus > 0
    ]


def pod_types(pods: Sequence[PodRequest]) -> list[PodType]:
    """GPU pods by type; CPU-only pods are dropped (they allocate no GPU)."""
    counts = Counter(
        (p.cpu_milli, p.memory_mib, p.num_gpu, p.gpu_milli, p.gpu_models) for p in pods if p.num_gpu > 0
    )
    return [
        PodType(cpu, mem, g, s, models, k)
        for (cpu, mem, g, s, models), k in sorted(counts.items(), key=lambda kv: repr(kv[0]))
    ]


def share_configurations(shares: Sequence[int], capacity: int = MILLI) -> list[dict[int, int]]:
    """Every maximal multiset of `shares` (as share -> count) whose sum is at most `capacity`: no further
    share fits beside it. Any multiset that fits is contained in one of these."""
    values = sorted(set(shares), reverse=True)
    if not values:
        return []
    smallest = values[-1]
    out: list[dict[int, int]] = []

    def extend(i: int, room: int, taken: dict[int, int]) -> None:
        if i == len(values):
            if taken and room < smallest:
                out.append(dict(taken))
            return
        value = values[i]
        for k in range(room // value, -1, -1):
            if k:
                taken[value] = k
            else:
                taken.pop(value, None)
            extend(i + 1, room - k * value, taken)
        taken.pop(value, None)

    extend(0, capacity, {})
    return out


@dataclass(frozen=True)
class PackingBound:
    upper: int  # certified upper bound on the packable GPU demand (milli; allocations are integers)
    lp_value: float  # the solver's primal objective (for comparison)


def packable_upper_bound(
    nodes: Sequence[NodeType], pods: Sequence[PodType], configs: Sequence[dict[int, int]] | None = None
) -> PackingBound:
    """An upper bound on the GPU demand (milli) of any subset of `pods` that fits on `nodes` at once:
    the LP relaxation of the module docstring, certified from its duals."""
    if configs is None:
        configs = share_configurations([p.share for p in pods if p.shared])
    solver = pywraplp.Solver.CreateSolver("GLOP")
    if solver is None:
        raise RuntimeError("ortools GLOP is not available")
    cols: list[tuple[pywraplp.Variable, int, int, list[tuple[int, int]]]] = []  # var, objective, upper, rows
    rows_b: list[int] = []

    def row(bound: int) -> int:
        rows_b.append(bound)
        return len(rows_b) - 1

    count_row = [row(p.count) for p in pods]
    for n in nodes:
        cpu, mem, gpu = row(n.count * n.cpu), row(n.count * n.mem), row(n.count * n.gpus)
        fitting = [(i, p) for i, p in enumerate(pods) if p.fits(n)]
        slot = {s: row(0) for s in sorted({p.share for _, p in fitting if p.shared})}
        for i, p in fitting:
            entries = [(count_row[i], 1), (cpu, p.cpu), (mem, p.mem)]
            entries.append((slot[p.share], 1) if p.shared else (gpu, p.gpus))
            cols.append((solver.NumVar(0, p.count, ""), p.value, p.count, entries))
        if slot:
            for c in configs:
                entries = [(gpu, 1)] + [(slot[s], -k) for s, k in c.items() if s in slot]
                if len(entries) > 1:
                    cols.append((solver.NumVar(0, n.count * n.gpus, ""), 0, n.count * n.gpus, entries))
    constraints = [solver.Constraint(-solver.infinity(), b) for b in rows_b]
    objective = solver.Objective()
    for var, value, _, entries in cols:
        objective.SetCoefficient(var, value)
        for r, a in entries:
            constraints[r].SetCoefficient(var, a)
    objective.SetMaximization()
    if solver.Solve() not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        raise RuntimeError("the LP relaxation did not solve")
    # weak duality with the solver's duals, in exact arithmetic: y.b + sum_k u_k max(0, c_k - A_k'y)
    y = [max(Fraction(c.dual_value()), Fraction(0)) for c in constraints]
    total = sum((yr * b for yr, b in zip(y, rows_b, strict=True)), Fraction(0))
    for _, value, upper, entries in cols:
        reduced = value - sum((y[r] * a for r, a in entries), Fraction(0))
        if reduced > 0:
            total += upper * reduced
    return PackingBound(math.floor(total), float(objective.Value()))


@dataclass(frozen=True)
class SeedBound:
    seed: int
    unallocated_lb: float  # lower bound on the unallocated GPU % at 100% arrived demand
    window_pods: int
    packable_at_end_pct: float  # the bound on the allocated % at the last pod of the 100% window
    seconds: float


def allocation_bounds(
    nodes: Sequence[GpuNode], pods: Sequence[PodRequest], seed: int, checkpoints: int = WINDOW_CHECKPOINTS
) -> tuple[ReplayResult, float]:
    """For the replay of `pods` with `seed`: a ReplayResult whose allocation after each pod is an upper
    bound on any policy's (step 1 of the module docstring), and the bound at the last pod of the 100%
    window (milli)."""
    capacity = Cluster(nodes).gpu_capacity_milli
    work = replay_workload(pods, capacity, ReplayConfig(seed=seed))
    arrived = np.cumsum([p.total_gpu_milli for p in work], dtype=np.int64)
    window = np.flatnonzero(np.rint(arrived * 100.0 / capacity).astype(np.int64) == 100)
    marks = sorted(
        {int(chunk[-1]) for chunk in np.array_split(window, checkpoints) if len(chunk)} | {len(work) - 1}
    )
    ntypes = node_types(nodes)
    configs = share_configurations([p.gpu_milli for p in work if p.is_shared])
    upper = [packable_upper_bound(ntypes, pod_types(work[: j + 1]), configs).upper for j in marks]
    allocated = np.empty(len(work), dtype=np.int64)
    lo = 0
    for j, ub in zip(marks, upper, strict=True):
        allocated[lo : j + 1] = np.minimum(arrived[lo : j + 1], ub)
        lo = j + 1
    end = int(window[-1]) if len(window) else len(work) - 1
    result = ReplayResult("bound", seed, capacity, arrived, allocated, np.zeros(len(work), dtype=np.int64))
    return result, float(allocated[end])


def seed_bound(
    nodes: Sequence[GpuNode], pods: Sequence[PodRequest], seed: int, checkpoints: int = WINDOW_CHECKPOINTS
) -> SeedBound:
    """The lower bound of the module docstring for one replay seed (the replay's own arrived pods)."""
    start = time.perf_counter()
    result, at_end = allocation_bounds(nodes, pods, seed, checkpoints)
    window = int((np.rint(result.arrived_milli * 100.0 / result.capacity_milli) == 100).sum())
    return SeedBound(
        seed,
        result.unallocated_at(100),
        window,
        100.0 * at_end / result.capacity_milli,
        time.perf_counter() - start,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--trace-dir", type=Path, default=DEFAULT_TRACE_DIR)
    parser.add_argument(
        "--traces", default="gpushare60,gpushare100,default", help="comma-separated openb trace names"
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1, as the replay uses")
    parser.add_argument("--checkpoints", type=int, default=WINDOW_CHECKPOINTS)
    args = parser.parse_args(argv)
    nodes = read_nodes(args.trace_dir / OPENB_NODE_FILE)
    files = openb_traces(args.trace_dir)
    rows: list[str] = []
    for trace in args.traces.split(","):
        pods = read_pods(files[trace])
        bounds: list[float] = []
        for seed in range(args.seeds):
            b = seed_bound(nodes, pods, seed, args.checkpoints)
            bounds.append(b.unallocated_lb)
            print(
                f"{trace} seed {seed}: unallocated >= {b.unallocated_lb:.3f}%  (window {b.window_pods} "
                f"pods, packable <= {b.packable_at_end_pct:.3f}% at its end, {b.seconds:.1f}s)",
                flush=True,
            )
        summary = Summary.of(bounds)
        best_fit = OPENB_PUBLISHED.get(trace, {}).get("best-fit")
        target = f"{2 * best_fit[0] / 3:.2f}" if best_fit else "-"
        verdict = (
            "-"
            if not best_fit
            else "provably infeasible"
            if summary.mean > 2 * best_fit[0] / 3
            else "not excluded by the bound"
        )
        rows.append(f"| {trace} | {summary} (n={summary.n}) | {target} | {verdict} |")
    print("\n| trace | lower bound, unallocated GPU % | target (2/3 paper BestFit) | target |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
