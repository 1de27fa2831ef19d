"""Batch placement: where a set of pending pods should go, all at once, with CP-SAT.

A scheduler places pods one at a time and cannot take back an early choice that blocks a later pod. This
planner sees the whole batch: it first **maximizes the GPU demand placed** (milli-GPUs), then, among
placements that reach it, **maximizes the GPUs left in whole free blocks**: every entirely free NVLink
domain of 2+ GPUs counts its GPUs, and every entirely free node counts its GPUs again (an empty 8-GPU
NVSwitch node is worth 16, which is the point: it is what an 8-GPU job needs). Nothing already running
moves (that is `defrag`). Every pod's CPU, memory, GPU count, per-GPU share, allowed GPU models and NVLink
domain (pods with `needs_domain`) must fit, as `topology.Cluster.feasible` says.

It is the offline reference the greedy policies are measured against. To stay tractable on 1,000+ nodes
each pod considers at most `max_nodes` of the nodes it fits on now (half the best-fitting ones, at most
`copies` in the same state; half a window further down that differs between pods of the same shape), plus
the nodes the greedy passes pick (best fit in the given order and largest first, and the `hint_policies`,
gpuplace's own policy by default). The best pass is the solver's starting hint, so the answer never
places less than any of them; what the solver adds on top is the gap a greedy scheduler leaves.
Any cut is reported in `scope`; `proven_optimal` needs an uncut model solved to optimality in both phases.
The two phases share the time limit (`demand_share` of it for the first).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from placement.fragmentation import ShapeDistribution
from placement.planner.solver import SolveOptions, SolveOutcome, solve

if TYPE_CHECKING:  # ortools (and the pandas it pulls in) loads only when a plan is solved
    from ortools.sat.python import cp_model
from placement.policies import PolicyContext, make_policy, pick_best
from placement.policies.base import (
    best_fit_domain_whole,
    first_free_whole,
    mask_to_indices,
    tightest_share_gpu,
)
from placement.topology import Cluster, IntArray, PodRequest

Assignment = tuple[int, tuple[int, ...]] | None  # (node row, GPU indices) or not placed


@dataclass(frozen=True)
class BatchOptions:
    solve: SolveOptions = field(default_factory=SolveOptions)
    max_nodes: int = 40
    copies: int = 4
    demand_share: float = 0.7
    hint_policies: tuple[str, ...] = ("gpuplace",)  # greedy policies whose passes seed the solver


@dataclass(frozen=True)
class Placement:
    pod: str
    node: str
    gpus: tuple[int, ...]


@dataclass(frozen=True)
class BatchResult:
    """`status`: optimal (both phases solved to optimality within the model: see `scope`), feasible (best
    found in the time limit), or greedy (the solver found nothing in time; the best greedy pass is the
    answer). `proven_optimal`: optimal and nothing was cut from the model. The two phases' own outcomes
    (status, objective, bound, seconds) are kept for reports."""

    status: str
    placements: tuple[Placement, ...]
    unplaced: tuple[str, ...]
    demand_milli: int
    placed_milli: int
    placed_bound_milli: int  # no placement within the model places more
    free_block_gpus: int
    greedy_placed_milli: int  # the best greedy pass
    proven_optimal: bool
    scope: str
    solve_s: float  # end to end: greedy passes, candidates, model, both solves
    demand_phase: SolveOutcome  # status "skipped" when the greedy pass already placed everything
    blocks_phase: SolveOutcome


# ---- measures -------------------------------------------------------------------------------------------
def domain_sizes(cluster: Cluster) -> IntArray:
    """[nodes, width] GPUs in NVLink domain d of each node (column d)."""
    return np.stack([(cluster.domain_of == d).sum(axis=1) for d in range(cluster.width)], axis=1)


def free_block_gpus(cluster: Cluster) -> int:
    """The secondary objective (module docstring) of the cluster as it is."""
    sizes = domain_sizes(cluster)
    blocks = cluster.free_blocks()
    value = int((sizes * ((blocks == sizes) & (sizes >= 2))).sum())
    empty = (cluster.whole_free() == cluster.gpu_count) & (cluster.gpu_count > 0)
    return value + int((cluster.gpu_count * empty).sum())


def copy_cluster(cluster: Cluster) -> Cluster:
    return Cluster([cluster.node(i) for i in range(len(cluster))])


# ---- the greedy pass (hint and floor) ---------------------------------------------------------------------
def select_gpus(cluster: Cluster, node: int, pod: PodRequest) -> tuple[int, ...]:
    """GPUs for the pod on the node: a tightest GPU for a share, the best-fitting NVLink domain for a pod
    that needs one, else the first free ones."""
    nodes = np.array([node])
    if pod.is_shared:
        gpu = int(tightest_share_gpu(cluster, nodes, pod.gpu_milli)[0])
        return (gpu,) if gpu >= 0 else ()
    pick = best_fit_domain_whole if pod.needs_domain else first_free_whole
    return mask_to_indices(pick(cluster, nodes, pod.num_gpu)[0])


def _best_fit_order(cluster: Cluster, pod: PodRequest, nodes: IntArray) -> IntArray:
    """Nodes sorted fullest first: least GPU left after the pod, then least CPU left, then row."""
    gpu_left = cluster.gpu_free_total(nodes) - pod.total_gpu_milli
    cpu_left = cluster.cpu_free[nodes] - pod.cpu_milli
    return nodes[np.lexsort((nodes, cpu_left, gpu_left))]


def greedy_pass(cluster: Cluster, pods: Sequence[PodRequest], order: Sequence[int] | None = None
                ) -> list[Assignment]:
    """Best fit, one pod at a time in `order`, on a copy of the cluster."""
    work = copy_cluster(cluster)
    out: list[Assignment] = [None] * len(pods)
    for i in order if order is not None else range(len(pods)):
        pod = pods[i]
        feasible = np.flatnonzero(work.feasible(pod))
        if not len(feasible):
            continue
        node = int(_best_fit_order(work, pod, feasible)[0])
        gpus = select_gpus(work, node, pod)
        work.place(node, pod, gpus)
        out[i] = (node, gpus)
    return out


def _placed_milli(pods: Sequence[PodRequest], assignment: Sequence[Assignment]) -> int:
    return sum(p.total_gpu_milli for p, a in zip(pods, assignment, strict=True) if a is not None)


def policy_pass(cluster: Cluster, pods: Sequence[PodRequest], policy_name: str) -> list[Assignment]:
    """One of gpuplace's placement policies choosing the nodes, in the given order (ties to the lowest
    row); GPUs picked by `select_gpus`, so NVLink domains always hold."""
    work = copy_cluster(cluster)
    shapes = ShapeDistribution.from_pods(pods)
    policy = make_policy(policy_name, PolicyContext(shapes=shapes, nvlink=True))
    rank = np.arange(len(work))
    out: list[Assignment] = [None] * len(pods)
    for i, pod in enumerate(pods):
        feasible = np.flatnonzero(work.feasible(pod))
        if not len(feasible):
            continue
        node = int(feasible[pick_best(policy.score(work, pod, feasible), rank[feasible])])
        gpus = select_gpus(work, node, pod)
        work.place(node, pod, gpus)
        out[i] = (node, gpus)
    return out


def greedy_passes(cluster: Cluster, pods: Sequence[PodRequest], policies: Sequence[str]
                  ) -> list[list[Assignment]]:
    """Best fit in the given order and largest GPU demand first, then each named policy in order."""
    largest = sorted(range(len(pods)), key=lambda i: -pods[i].total_gpu_milli)
    passes = [greedy_pass(cluster, pods), greedy_pass(cluster, pods, largest)]
    return passes + [policy_pass(cluster, pods, name) for name in policies]


def best_greedy(cluster: Cluster, pods: Sequence[PodRequest], policies: Sequence[str] = ()
                ) -> list[Assignment]:
    """The pass that places the most GPU demand (the first of equals)."""
    return max(greedy_passes(cluster, pods, policies), key=lambda a: _placed_milli(pods, a))


# ---- candidates -----------------------------------------------------------------------------------------
def _shape(pod: PodRequest) -> tuple[object, ...]:
    return (pod.cpu_milli, pod.memory_mib, pod.num_gpu, pod.gpu_milli, pod.gpu_models, pod.needs_domain)


def _candidates(cluster: Cluster, pod: PodRequest, twin: int, hints: set[int], options: BatchOptions
                ) -> tuple[list[int], bool]:
    """Nodes the pod may go to in the model, and whether some feasible ones were left out.

    Half the slots go to the best-fitting nodes (at most `copies` in one identical state); the other half
    to a window further down the best-fit order that moves with `twin`, the pod's rank among pods of the
    same shape. Same-shaped pods are interchangeable, so their windows together reach far more nodes than
    any one list would, without giving every pod every node."""
    feasible = _best_fit_order(cluster, pod, np.flatnonzero(cluster.feasible(pod)))
    half = max(1, options.max_nodes // 2)
    chosen: list[int] = []
    per_state: dict[tuple[object, ...], int] = defaultdict(int)
    for n in feasible:
        state = (int(cluster.model_id[n]), cluster.gpu_free[n].tobytes(), int(cluster.cpu_free[n]),
                 int(cluster.mem_free[n]), int(cluster.domain_size[n]))
        if per_state[state] >= options.copies:
            continue
        per_state[state] += 1
        chosen.append(int(n))
        if len(chosen) >= half:
            break
    rest = [int(n) for n in feasible if int(n) not in set(chosen)]
    if rest:
        start = (twin * half) % len(rest)
        window = (rest[start:] + rest[:start])[: options.max_nodes - len(chosen)]
        chosen += window
    chosen += sorted(hints - set(chosen))
    return chosen, len(chosen) < len(feasible)


# ---- the model ------------------------------------------------------------------------------------------
class _Model:
    def __init__(self, cluster: Cluster, pods: Sequence[PodRequest], cands: list[list[int]]) -> None:
        from ortools.sat.python import cp_model

        self.m = cp_model.CpModel()
        self.cluster, self.pods = cluster, pods
        self.x: dict[tuple[int, int], cp_model.IntVar] = {}
        self.z: dict[tuple[int, int, int], cp_model.IntVar] = {}
        self.u: dict[tuple[int, int], list[tuple[cp_model.IntVar, list[int]]]] = {}  # domain choices
        self.free: list[tuple[cp_model.IntVar, int, int | None]] = []  # (var, node, domain or whole node)
        gpu_terms: dict[tuple[int, int], list[cp_model.LinearExprT]] = defaultdict(list)
        cpu_terms: dict[int, list[cp_model.LinearExprT]] = defaultdict(list)
        mem_terms: dict[int, list[cp_model.LinearExprT]] = defaultdict(list)
        self.placed = []
        for i, (pod, nodes) in enumerate(zip(pods, cands, strict=True)):
            xs = []
            for n in nodes:
                x = self.m.new_bool_var(f"x{i}_{n}")
                self.x[i, n] = x
                xs.append(x)
                self._gpu_vars(i, n, x)
                cpu_terms[n].append(pod.cpu_milli * x)
                mem_terms[n].append(pod.memory_mib * x)
                for g in range(int(cluster.gpu_count[n])):
                    if (i, n, g) in self.z:
                        gpu_terms[n, g].append(pod.gpu_milli * self.z[i, n, g])
            placed = self.m.new_bool_var(f"p{i}")
            self.m.add(sum(xs) == placed)
            self.placed.append(placed)
        for (n, g), terms in gpu_terms.items():
            self.m.add(sum(terms) <= int(cluster.gpu_free[n, g]))
        for n, terms in cpu_terms.items():
            self.m.add(sum(terms) <= int(cluster.cpu_free[n]))
        for n, terms in mem_terms.items():
            self.m.add(sum(terms) <= int(cluster.mem_free[n]))
        self.demand = sum(p.total_gpu_milli * v for p, v in zip(pods, self.placed, strict=True))
        self.blocks, self.blocks_const = self._block_objective(cands)

    def _gpu_vars(self, i: int, n: int, x: cp_model.IntVar) -> None:
        pod, c = self.pods[i], self.cluster
        if not pod.num_gpu:
            return
        room = [g for g in range(int(c.gpu_count[n])) if c.gpu_free[n, g] >= pod.gpu_milli]
        if pod.needs_domain:
            groups = [[g for g in room if c.domain_of[n, g] == d] for d in range(c.width)]
            groups = [d for d in groups if len(d) >= pod.num_gpu]
        else:
            groups = [room]
        us = []
        for d in groups:
            u = self.m.new_bool_var("") if len(groups) > 1 else x
            us.append(u)
            for g in d:
                self.z[i, n, g] = self.m.new_bool_var(f"z{i}_{n}_{g}")
                self.m.add_implication(self.z[i, n, g], u)
            self.m.add(sum(self.z[i, n, g] for g in d) == pod.num_gpu * u)
        if len(groups) > 1:
            self.m.add(sum(us) == x)
            self.u[i, n] = list(zip(us, groups, strict=True))

    def _block_objective(self, cands: list[list[int]]) -> tuple[cp_model.LinearExprT, int]:
        """Free-block GPUs on the nodes pods may touch (variables) plus those on the rest (a constant)."""
        c = self.cluster
        sizes = domain_sizes(c)
        blocks = c.free_blocks()
        touched = sorted({n for nodes in cands for n in nodes})
        on_node: dict[int, list[int]] = defaultdict(list)
        for (i, n) in self.x:
            on_node[n].append(i)
        terms: list[cp_model.LinearExprT] = []
        touched_value = 0
        for n in touched:
            count = int(c.gpu_count[n])
            if count and int(c.whole_free(np.array([n]))[0]) == count:
                touched_value += count
                free = self.m.new_bool_var(f"empty{n}")
                for i in on_node[n]:
                    self.m.add(free + self.x[i, n] <= 1)
                terms.append(count * free)
                self.free.append((free, n, None))
            for d in range(c.width):
                size = int(sizes[n, d])
                if size < 2 or blocks[n, d] != size:
                    continue
                touched_value += size
                free = self.m.new_bool_var(f"dom{n}_{d}")
                for i in on_node[n]:
                    for g in range(int(c.gpu_count[n])):
                        if c.domain_of[n, g] == d and (i, n, g) in self.z:
                            self.m.add(free + self.z[i, n, g] <= 1)
                terms.append(size * free)
                self.free.append((free, n, d))
        return sum(terms), free_block_gpus(c) - touched_value

    def hint(self, assignment: Sequence[Assignment]) -> None:
        """A complete hint (every variable), so that the solver starts from a full feasible solution."""
        self.m.clear_hints()
        used: dict[int, set[int]] = defaultdict(set)  # GPUs taken per node
        busy: set[int] = set()  # nodes that get a pod
        for (i, n), x in self.x.items():
            a = assignment[i]
            self.m.add_hint(x, a is not None and a[0] == n)
            if a is not None and a[0] == n:
                used[n].update(a[1])
                busy.add(n)
        for (i, n, g), z in self.z.items():
            a = assignment[i]
            self.m.add_hint(z, a is not None and a[0] == n and g in a[1])
        for (i, n), choices in self.u.items():
            a = assignment[i]
            for u, gpus in choices:
                self.m.add_hint(u, a is not None and a[0] == n and set(a[1]) <= set(gpus))
        for i, placed in enumerate(self.placed):
            self.m.add_hint(placed, assignment[i] is not None)
        c = self.cluster
        for var, n, d in self.free:
            if d is None:
                self.m.add_hint(var, n not in busy)
            else:
                self.m.add_hint(var, not any(c.domain_of[n, g] == d for g in used[n]))

    def read(self, solver: cp_model.CpSolver) -> list[Assignment]:
        out: list[Assignment] = [None] * len(self.pods)
        for (i, n), x in self.x.items():
            if solver.value(x):
                gpus = tuple(g for g in range(int(self.cluster.gpu_count[n]))
                             if (i, n, g) in self.z and solver.value(self.z[i, n, g]))
                out[i] = (n, gpus)
        return out


def _apply(cluster: Cluster, pods: Sequence[PodRequest], assignment: Sequence[Assignment]) -> Cluster:
    """A copy of the cluster with the assignment placed (raises if it does not fit: a model bug)."""
    after = copy_cluster(cluster)
    for pod, a in zip(pods, assignment, strict=True):
        if a is not None:
            after.place(a[0], pod, a[1])
    return after


def plan_batch(cluster: Cluster, pods: Sequence[PodRequest], options: BatchOptions = BatchOptions()
               ) -> BatchResult:
    """Place `pods` (GPU pods; others are left to the scheduler) on the cluster as it is."""
    start = time.perf_counter()
    pods = [p for p in pods if p.num_gpu]
    passes = greedy_passes(cluster, pods, options.hint_policies)
    greedy = max(passes, key=lambda a: _placed_milli(pods, a))
    cands, cut = [], False
    twins: dict[tuple[object, ...], int] = defaultdict(int)
    for i, pod in enumerate(pods):
        hints = {a[0] for p in passes if (a := p[i]) is not None}
        nodes, pruned = _candidates(cluster, pod, twins[_shape(pod)], hints, options)
        twins[_shape(pod)] += 1
        cands.append(nodes)
        cut |= pruned
    model = _Model(cluster, pods, cands)
    model.hint(greedy)
    demand = sum(p.total_gpu_milli for p in pods)
    limit = options.solve.time_limit_s
    best, from_solver = greedy, False
    if _placed_milli(pods, greedy) == demand:  # nothing left to gain: the first phase is settled
        first = SolveOutcome("skipped", float(demand), float(demand), 0.0)
    else:
        model.m.maximize(model.demand)
        solver, first = solve(model.m, options.solve, limit * options.demand_share)
        if first.has_solution and first.objective >= _placed_milli(pods, greedy):
            best, from_solver = model.read(solver), True
    bound = int(first.bound) if first.has_solution or first.status == "skipped" else demand
    placed = _placed_milli(pods, best)
    second = SolveOutcome("skipped", 0.0, 0.0, 0.0)
    remaining = limit - (time.perf_counter() - start)
    if placed and remaining > 0.05:
        model.m.add(model.demand >= placed)
        model.hint(best)
        model.m.maximize(model.blocks)
        solver, second = solve(model.m, options.solve, remaining, light_presolve=True)
        if second.has_solution:
            best, from_solver = model.read(solver), True
    after = _apply(cluster, pods, best)
    settled = first.status in ("optimal", "skipped") and (second.status == "optimal" or not placed)
    status = "optimal" if settled else "feasible" if from_solver else "greedy"
    proven = settled and not cut
    by_row = cluster.names
    return BatchResult(
        status=status,
        placements=tuple(Placement(p.name, by_row[a[0]], a[1]) for p, a in zip(pods, best, strict=True)
                         if a is not None),
        unplaced=tuple(p.name for p, a in zip(pods, best, strict=True) if a is None),
        demand_milli=sum(p.total_gpu_milli for p in pods), placed_milli=placed,
        placed_bound_milli=max(bound, placed), free_block_gpus=free_block_gpus(after),
        greedy_placed_milli=_placed_milli(pods, greedy), proven_optimal=proven,
        scope="exact" if not cut else f"pruned: at most {options.max_nodes} nodes per pod "
        f"({options.copies} per identical node state)",
        solve_s=time.perf_counter() - start, demand_phase=first, blocks_phase=second,
    )
