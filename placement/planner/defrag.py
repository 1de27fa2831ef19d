"""Defragmentation: the cheapest pod moves that open k GPUs in one NVLink domain for a pending pod.

The question an operator asks when an 8-GPU pod is pending while 8 GPUs are free in pieces: which pods
do I move, and where do they go? The answer is a CP-SAT model over the snapshot:

- pick one block (an NVLink domain, or the whole node when the pod does not need NVLink) on a node the
  pod may use, and k GPUs in it to reserve; every pod on a reserved GPU moves;
- **every moved pod must land somewhere feasible** (CPU, memory, GPU count, share, model, NVLink domain),
  on GPUs that are free once all planned evictions are done, never on the reserved block. A plan that
  left a moved pod pending would trade one pending workload for another, so it is not a plan; the
  solver may move further pods to make room, and pays for them too;
- only movable pods move (snapshot.py: controller-owned or annotated), and no PodDisruptionBudget loses
  more pods than it allows. All evictions happen before any pod lands, so a budget's allowance is the
  number of its pods moved by the whole plan;
- cost: each moved pod weighs `max(1, its GPUs) x (1 + rank of its priority)`, the rank counting the
  distinct priorities of movable pods from the lowest (0). Moving a 4-GPU pod costs as much as four
  1-GPU pods; moving a pod of the next priority class up costs double.

Two searches. Blocks are ranked by a lower bound of what clearing them costs (the cheapest k GPUs of the
block, counting every pod on them).
- Up to `full_model_pods` movable pods (small clusters): one joint model over the `max_blocks` cheapest
  blocks in which every movable pod may move, so a pod may move just to make room for another.
- Beyond that: branch and bound over the blocks, cheapest bound first, one small model per block in which
  the movable pods of that node move, until the time limit. Once the best plan costs no more than the
  next block's bound, the search stops: the plan is optimal among plans that only move pods off the
  target node. Proving that a block cannot be opened takes milliseconds this way, where one big model
  over many blocks could spend its whole time limit failing to.
CPU-only pods move too when they are movable: a block of free GPUs is no use to a pod whose node has no
CPU left for it. Each moved pod considers at most `max_destinations` nodes (its own node, then those it
fits now, fullest first, then those where room may open). Any cut is reported in `scope`; `status`
optimal means optimal within that scope; `proven_optimal` means optimal in the whole cluster: the model
was exact and solved to optimality, or the plan's cost equals the lowest bound of all blocks.

The plan is ordered: evictions first, a pod evicted only after the pods whose GPUs it is planned to land
on; then where each pod lands; then the pending pod's node and GPUs. kube-scheduler still decides where a
recreated pod goes: the landings are the plan's expectation, not a binding.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from placement.findings import Code, Finding, ObjectRef
from placement.planner.snapshot import SnapNode, SnapPod, Snapshot, SnapshotError
from placement.planner.solver import SolveOptions, solve

if TYPE_CHECKING:  # ortools (and the pandas it pulls in) loads only when a plan is solved
    from ortools.sat.python import cp_model
from placement.topology import MILLI, Cluster, GpuNode, PodRequest

MAX_SUBSETS = 3000  # above this many k-subsets in one block, the lower bound uses per-GPU shares


@dataclass(frozen=True)
class DefragOptions:
    solve: SolveOptions = field(default_factory=SolveOptions)
    max_blocks: int = 24  # joint model only
    max_destinations: int = 24
    full_model_pods: int = 150


@dataclass(frozen=True)
class Move:
    pod: str
    from_node: str
    from_gpus: tuple[int, ...]
    to_node: str
    to_gpus: tuple[int, ...]
    weight: int


@dataclass(frozen=True)
class DefragResult:
    """`status`: fits-now (no move needed), optimal or feasible (a plan: optimal within `scope`, or the best
    found in the time limit), no-plan (none exists within `scope`), unknown (time ran out before any plan
    was found). `proven_optimal`: no plan in the whole cluster is cheaper (module docstring)."""

    status: str
    message: str
    k: int
    node: str | None = None
    gpus: tuple[int, ...] = ()
    moves: tuple[Move, ...] = ()
    cost: int = 0
    lower_bound: int = 0
    proven_optimal: bool = False
    scope: str = "exact"
    solve_s: float = 0.0
    blocks_considered: int = 0
    blocks_total: int = 0

    @property
    def found(self) -> bool:
        return self.node is not None


# ---- weights and per-node state -----------------------------------------------------------------------
def move_weights(snapshot: Snapshot) -> dict[str, int]:
    """Cost of moving each movable bound pod (module docstring)."""
    movable = [p for p in snapshot.bound() if p.movable]
    rank = {prio: i for i, prio in enumerate(sorted({p.priority for p in movable}))}
    return {p.key: max(1, math.ceil(p.request.total_gpu_milli / MILLI)) * (1 + rank[p.priority])
            for p in movable}


@dataclass
class _NodeState:
    spec: SnapNode
    pods: list[SnapPod]
    occupants: list[list[SnapPod]]  # per GPU
    cpu_used: int
    mem_used: int

    @classmethod
    def of(cls, snapshot: Snapshot, spec: SnapNode) -> _NodeState:
        pods = snapshot.pods_on(spec.name)
        occ: list[list[SnapPod]] = [[] for _ in range(spec.gpu_count)]
        for p in pods:
            for g in p.gpus:
                occ[g].append(p)
        return cls(spec, pods, occ, sum(p.request.cpu_milli for p in pods),
                   sum(p.request.memory_mib for p in pods))

    def gpu_used(self, gpu: int, leaving: frozenset[str] = frozenset()) -> int:
        return sum(p.request.gpu_milli for p in self.occupants[gpu] if p.key not in leaving)

    @property
    def cpu_cap(self) -> int:
        """Allocatable CPU, or what is already used if a dump shows more (never makes the node infeasible
        before anything moves)."""
        return max(self.spec.cpu_milli, self.cpu_used)

    @property
    def mem_cap(self) -> int:
        return max(self.spec.memory_mib, self.mem_used)


def _model_ok(spec: SnapNode, req: PodRequest) -> bool:
    return not req.gpu_models or spec.model in req.gpu_models


def _blocks(spec: SnapNode, need_domain: bool) -> list[tuple[int, ...]]:
    return spec.domains() if need_domain else [tuple(range(spec.gpu_count))]


def _static_fit(spec: SnapNode, req: PodRequest) -> bool:
    """Whether the pod could ever run on the node (empty node): schedulable, model, sizes."""
    if not spec.schedulable or not _model_ok(spec, req):
        return False
    if spec.cpu_milli < req.cpu_milli or spec.memory_mib < req.memory_mib or spec.gpu_count < req.num_gpu:
        return False
    return not req.needs_domain or spec.domain_size >= req.num_gpu


def _fits_now(state: _NodeState, req: PodRequest, block: Sequence[int], avoid: frozenset[int] = frozenset()
              ) -> tuple[int, ...] | None:
    """GPUs of `block` the pod could take right now (whole GPUs, or one GPU with room for a share)."""
    if state.cpu_cap - state.cpu_used < req.cpu_milli or state.mem_cap - state.mem_used < req.memory_mib:
        return None
    room = [g for g in block if g not in avoid and MILLI - state.gpu_used(g) >= req.gpu_milli]
    return tuple(room[: req.num_gpu]) if len(room) >= req.num_gpu else None


# ---- candidate blocks ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Block:
    lower_bound: int
    node: str
    gpus: tuple[int, ...]  # the clearable GPUs of the block (no unmovable pod on them)


def _block_lower_bound(state: _NodeState, gpus: tuple[int, ...], k: int, weights: dict[str, int]) -> int:
    """The least any plan pays to clear k of these GPUs: exact over k-subsets when few, else each pod's
    weight spread over its GPUs in the block and the k cheapest GPUs summed (never above the truth)."""
    if math.comb(len(gpus), k) <= MAX_SUBSETS:
        best = math.inf
        for subset in combinations(gpus, k):
            pods = {p.key for g in subset for p in state.occupants[g]}
            best = min(best, sum(weights[key] for key in pods))
        return int(best)
    share = []
    for g in gpus:
        share.append(sum(weights[p.key] / sum(1 for x in p.gpus if x in gpus) for p in state.occupants[g]))
    return math.floor(sum(sorted(share)[:k]) + 1e-9)


def _candidate_blocks(states: dict[str, _NodeState], req: PodRequest, k: int, weights: dict[str, int]
                      ) -> list[_Block]:
    out = []
    for state in states.values():
        spec = state.spec
        if not _static_fit(spec, req):
            continue
        movable = [p for p in state.pods if p.key in weights]
        if state.cpu_cap - state.cpu_used + sum(p.request.cpu_milli for p in movable) < req.cpu_milli:
            continue
        if state.mem_cap - state.mem_used + sum(p.request.memory_mib for p in movable) < req.memory_mib:
            continue
        for block in _blocks(spec, req.needs_domain):
            clearable = tuple(g for g in block if all(p.key in weights for p in state.occupants[g]))
            if len(clearable) >= k:
                out.append(_Block(_block_lower_bound(state, clearable, k, weights), spec.name, clearable))
    out.sort(key=lambda b: (b.lower_bound, b.node, b.gpus))
    return out


# ---- destinations -------------------------------------------------------------------------------------
class _Fit:
    """Vectorized fit checks over every node of the snapshot: as the nodes are now, and empty."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.names = [n.name for n in snapshot.nodes]
        self.schedulable = np.array([n.schedulable for n in snapshot.nodes])
        self.now = Cluster(snapshot.gpu_nodes(schedulable_only=False))
        self.empty = Cluster([GpuNode.empty(n.name, n.model, n.gpu_count, n.cpu_milli, n.memory_mib, n.nvlink)
                              for n in snapshot.nodes])

    def destinations(self, pod: SnapPod, changing: set[str], limit: int) -> tuple[list[str], bool]:
        """Nodes a moved pod may land on, and whether some were cut: its own node, then the nodes it fits
        right now (fullest first: best fit), then nodes whose pods may move away (room may open there)."""
        req = pod.request
        ok = self.schedulable & self.empty.feasible(req)
        now = ok & self.now.feasible(req)
        rows = np.flatnonzero(now)
        rows = rows[np.argsort(self.now.gpu_free_total(rows), kind="stable")]
        ordered = [self.names[r] for r in rows]
        ordered += [self.names[r] for r in np.flatnonzero(ok & ~now) if self.names[r] in changing]
        if pod.node in ordered:
            ordered.remove(pod.node)
            ordered.insert(0, pod.node)
        return ordered[:limit], len(ordered) > limit


# ---- the model ------------------------------------------------------------------------------------------
class _Model:
    """The CP-SAT model for one defrag question (module docstring)."""

    def __init__(self, states: dict[str, _NodeState], req: PodRequest, blocks: list[_Block],
                 movers: list[SnapPod], dests: dict[str, list[str]], weights: dict[str, int]) -> None:
        from ortools.sat.python import cp_model

        self.m = cp_model.CpModel()
        self.states, self.req, self.blocks = states, req, blocks
        self.movers, self.weights = movers, weights
        k = req.num_gpu
        self.t = [self.m.new_bool_var(f"t{i}") for i in range(len(blocks))]
        self.m.add_exactly_one(self.t)
        self.r: dict[tuple[str, int], cp_model.IntVar] = {}
        gpu_terms: dict[tuple[str, int], list[cp_model.LinearExprT]] = defaultdict(list)
        cpu_terms: dict[str, list[cp_model.LinearExprT]] = defaultdict(list)
        mem_terms: dict[str, list[cp_model.LinearExprT]] = defaultdict(list)
        for t, block in zip(self.t, blocks, strict=True):
            rs = []
            for g in block.gpus:
                v = self.m.new_bool_var(f"r_{block.node}_{g}")
                self.m.add_implication(v, t)
                self.r[block.node, g] = v
                gpu_terms[block.node, g].append(MILLI * v)
                rs.append(v)
            self.m.add(sum(rs) == k * t)
            cpu_terms[block.node].append(req.cpu_milli * t)
            mem_terms[block.node].append(req.memory_mib * t)

        self.moved = {p.key: self.m.new_bool_var(f"m_{p.key}") for p in movers}
        leaving = frozenset(self.moved)
        self.landing: dict[str, list[tuple[str, cp_model.IntVar, dict[int, cp_model.IntVar]]]] = {}
        for p in movers:
            mv = self.moved[p.key]
            assert p.node is not None
            for g in p.gpus:
                if (p.node, g) in self.r:
                    self.m.add_implication(self.r[p.node, g], mv)
                gpu_terms[p.node, g].append(p.request.gpu_milli * (1 - mv))
            cpu_terms[p.node].append(p.request.cpu_milli * (1 - mv))
            mem_terms[p.node].append(p.request.memory_mib * (1 - mv))
            options = []
            for name in dests[p.key]:
                x, zs = self._landing_vars(p, self.states[name], leaving)
                if x is None:
                    continue
                options.append((name, x, zs))
                for g, z in zs.items():
                    gpu_terms[name, g].append(p.request.gpu_milli * z)
                cpu_terms[name].append(p.request.cpu_milli * x)
                mem_terms[name].append(p.request.memory_mib * x)
            self.m.add(sum(x for _, x, _ in options) == mv)
            self.landing[p.key] = options

        for (name, g), terms in gpu_terms.items():
            self.m.add(sum(terms) <= MILLI - self.states[name].gpu_used(g, leaving))
        for name, terms in cpu_terms.items():
            st = self.states[name]
            fixed = sum(p.request.cpu_milli for p in st.pods if p.key not in leaving)
            self.m.add(sum(terms) <= st.cpu_cap - fixed)
        for name, terms in mem_terms.items():
            st = self.states[name]
            fixed = sum(p.request.memory_mib for p in st.pods if p.key not in leaving)
            self.m.add(sum(terms) <= st.mem_cap - fixed)
        self.objective = sum(weights[p.key] * self.moved[p.key] for p in movers)
        self.m.minimize(self.objective)

    def _landing_vars(self, p: SnapPod, st: _NodeState, leaving: frozenset[str]
                      ) -> tuple[cp_model.IntVar | None, dict[int, cp_model.IntVar]]:
        """x (lands on this node) and z per GPU it may take there; a domain choice for NVLink pods."""
        req = p.request
        if not req.num_gpu:
            return self.m.new_bool_var(f"x_{p.key}_{st.spec.name}"), {}
        room = [g for g in range(st.spec.gpu_count) if MILLI - st.gpu_used(g, leaving) >= req.gpu_milli]
        if req.needs_domain:
            domains = [[g for g in d if g in room] for d in st.spec.domains()]
            domains = [d for d in domains if len(d) >= req.num_gpu]
        else:
            domains = [room] if len(room) >= req.num_gpu else []
        if not domains:
            return None, {}
        x = self.m.new_bool_var(f"x_{p.key}_{st.spec.name}")
        zs: dict[int, cp_model.IntVar] = {}
        us = []
        for d in domains:
            u = self.m.new_bool_var("") if len(domains) > 1 else x
            us.append(u)
            for g in d:
                zs[g] = self.m.new_bool_var(f"z_{p.key}_{st.spec.name}_{g}")
                self.m.add_implication(zs[g], u)
            self.m.add(sum(zs[g] for g in d) == req.num_gpu * u)
        if len(domains) > 1:
            self.m.add(sum(us) == x)
        return x, zs

    def add_budgets(self, snapshot: Snapshot) -> list[str]:
        """One constraint per budget covering a pod that may move; the names of those budgets."""
        used = []
        for b in snapshot.budgets:
            covered = [self.moved[p.key] for p in self.movers if b.covers(p)]
            if covered and len(covered) > b.allowed:
                self.m.add(sum(covered) <= b.allowed)
                used.append(f"{b.namespace}/{b.name}")
        return used


# ---- the entry point -----------------------------------------------------------------------------------
def _no_block_message(snapshot: Snapshot, req: PodRequest, k: int) -> str:
    allowed = [n for n in snapshot.nodes if n.schedulable and _model_ok(n, req)]
    what = f"{k} GPUs in one NVLink domain" if req.needs_domain else f"{k} GPUs on one node"
    if not allowed:
        models = ", ".join(sorted(req.gpu_models)) or "any"
        return f"no schedulable node has a GPU model the pod allows ({models})"
    largest = max(n.domain_size if req.needs_domain else n.gpu_count for n in allowed)
    if largest < k:
        unit = "NVLink domain" if req.needs_domain else "node"
        return f"the pod needs {what}; the largest {unit} on nodes it may use has {largest}"
    return (f"no node that has {what} also has {req.cpu_milli}m CPU and {req.memory_mib} MiB memory "
            f"allocatable for the pod")


def _order(moves: list[Move]) -> list[Move]:
    """Evict a pod only after the pods whose GPUs it is planned to land on (a cycle breaks by name)."""
    frees = {(m.from_node, g): m.pod for m in moves for g in m.from_gpus}
    after = {m.pod: {frees[m.to_node, g] for g in m.to_gpus if (m.to_node, g) in frees} - {m.pod}
             for m in moves}
    by_pod = {m.pod: m for m in moves}
    done: list[Move] = []
    left = set(by_pod)
    while left:
        ready = sorted(p for p in left if not (after[p] & left)) or [min(left)]
        done.append(by_pod[ready[0]])
        left.discard(ready[0])
    return done


def plan_defrag(snapshot: Snapshot, pod: PodRequest, options: DefragOptions = DefragOptions()
                ) -> DefragResult:
    """The cheapest ordered plan that lets `pod` (k whole GPUs) start (module docstring)."""
    k = pod.num_gpu
    if k < 1:
        raise ValueError(f"pod {pod.name} requests no GPU; defragmentation opens GPUs")
    req = PodRequest(pod.name, pod.cpu_milli, pod.memory_mib, k, MILLI, pod.gpu_models, pod.needs_domain)
    what = f"{k} GPUs in one NVLink domain" if req.needs_domain else f"{k} GPUs on one node"
    states = {n.name: _NodeState.of(snapshot, n) for n in snapshot.nodes}
    eligible = [s for s in states.values() if _static_fit(s.spec, req)]
    if not eligible:
        return DefragResult("no-plan", _no_block_message(snapshot, req, k), k)

    now = [(len(gpus), s.spec.name, gpus) for s in eligible for block in _blocks(s.spec, req.needs_domain)
           if (gpus := _fits_now(s, req, block))]
    if now:  # best fit among the blocks that already have room
        fits = min(now, key=lambda f: (sum(states[f[1]].gpu_used(g) == 0 for g in range(
            states[f[1]].spec.gpu_count)), f[1]))
        return DefragResult("fits-now", f"{what} are free on {fits[1]} already; nothing to move", k,
                            fits[1], fits[2], proven_optimal=True)

    weights = move_weights(snapshot)
    blocks = _candidate_blocks(states, req, k, weights)
    if not blocks:
        return DefragResult("no-plan", f"no plan opens {what}: on every node the pod may use, each block "
                            "of GPUs holds pods that cannot move (not owned by a controller that recreates "
                            f"them, and not annotated gpuplace.io/movable) or the node lacks CPU/memory", k)
    movable = [p for p in snapshot.bound() if p.key in weights]
    if len(movable) <= options.full_model_pods:
        return _joint(snapshot, states, req, blocks, movable, weights, options, what)
    return _by_block(snapshot, states, req, blocks, weights, options, what)


def _no_plan(base: DefragResult, what: str, reason: str) -> DefragResult:
    where = "" if base.scope == "exact" else f" (searched: {base.scope.removeprefix('pruned: ')})"
    return replace(base, status="no-plan", message=f"no plan opens {what}: {reason}{where}")


def _timed_out(base: DefragResult, options: DefragOptions) -> DefragResult:
    return replace(base, status="unknown", message=f"no plan found within the "
                   f"{options.solve.time_limit_s:g} s time limit; raise --time-limit")


def _joint(snapshot: Snapshot, states: dict[str, _NodeState], req: PodRequest, blocks: list[_Block],
           movers: list[SnapPod], weights: dict[str, int], options: DefragOptions, what: str) -> DefragResult:
    """Small clusters: one model over the cheapest blocks in which every movable pod may move (so a pod
    may move only to make room for another)."""
    chosen = blocks[: options.max_blocks]
    changing = {p.node for p in movers if p.node} | {b.node for b in chosen}
    fit = _Fit(snapshot)
    dests: dict[str, list[str]] = {}
    cut = False
    for p in movers:
        dests[p.key], pruned = fit.destinations(p, changing, options.max_destinations)
        cut |= pruned
    parts = [f"the {len(chosen)} cheapest of {len(blocks)} blocks"] if len(chosen) < len(blocks) else []
    if cut:
        parts.append(f"at most {options.max_destinations} destinations per moved pod")
    scope = "pruned: " + ", ".join(parts) if parts else "exact"

    model = _Model(states, req, chosen, movers, dests, weights)
    budget_names = model.add_budgets(snapshot)
    solver, out = solve(model.m, options.solve)
    base = DefragResult(out.status, "", req.num_gpu, lower_bound=blocks[0].lower_bound, scope=scope,
                        solve_s=out.wall_s, blocks_considered=len(chosen), blocks_total=len(blocks))
    if out.status == "infeasible":
        relaxed = _Model(states, req, chosen, movers, dests, weights) if budget_names else None
        return _no_plan(base, what, _why_infeasible(relaxed, budget_names, options))
    if not out.has_solution:
        return _timed_out(base, options)
    found = _extract(solver, model, what, base)
    proven = (out.status == "optimal" and scope == "exact") or found.cost == found.lower_bound
    return replace(found, proven_optimal=proven)


def _by_block(snapshot: Snapshot, states: dict[str, _NodeState], req: PodRequest, blocks: list[_Block],
              weights: dict[str, int], options: DefragOptions, what: str) -> DefragResult:
    """Large clusters: branch and bound over blocks, cheapest lower bound first, one small model per block
    in which the movable pods of that node move. A block whose lower bound reaches the best plan's cost is
    never solved (nor is any after it), so the answer is optimal within that scope once the loop ends."""
    fit = _Fit(snapshot)
    deadline = time.perf_counter() + options.solve.time_limit_s
    best: DefragResult | None = None
    blocked_by_budgets: list[tuple[_Model, list[str]]] = []
    solved = 0
    spent = 0.0
    dests_cut = complete = False
    for block in blocks:
        if best is not None and block.lower_bound >= best.cost:
            complete = True
            break
        left = deadline - time.perf_counter()
        if left <= 0:
            break
        movers = [p for p in snapshot.pods_on(block.node) if p.key in weights]
        if not movers:
            continue
        dests: dict[str, list[str]] = {}
        for p in movers:
            dests[p.key], pruned = fit.destinations(p, {block.node}, options.max_destinations)
            dests_cut |= pruned
        model = _Model(states, req, [block], movers, dests, weights)
        budget_names = model.add_budgets(snapshot)
        if best is not None:
            model.m.add(model.objective <= best.cost - 1)
        solver, out = solve(model.m, options.solve, left)
        solved, spent = solved + 1, spent + out.wall_s
        if out.has_solution:
            best = _extract(solver, model, what, DefragResult(out.status, "", req.num_gpu))
        elif out.status == "infeasible" and budget_names and best is None:
            relaxed = _Model(states, req, [block], movers, dests, weights)
            blocked_by_budgets.append((relaxed, budget_names))
        if out.status not in ("optimal", "infeasible"):
            break  # out of time inside a block: what was found so far is the answer
    else:
        complete = True
    parts = ["moves of pods on the target node only"]
    if dests_cut:
        parts.append(f"at most {options.max_destinations} destinations per moved pod")
    if not complete:
        parts.append(f"{solved} of {len(blocks)} blocks solved before the time limit")
    base = DefragResult("unknown", "", req.num_gpu, lower_bound=blocks[0].lower_bound,
                        scope="pruned: " + ", ".join(parts), solve_s=spent, blocks_considered=solved,
                        blocks_total=len(blocks))
    if best is None:
        if not complete:
            return _timed_out(base, options)
        if blocked_by_budgets:
            return _no_plan(base, what, _why_infeasible(*blocked_by_budgets[0], options))
        return _no_plan(base, what, _why_infeasible(None, [], options))
    status = "optimal" if complete else "feasible"
    return replace(best, status=status, lower_bound=base.lower_bound, scope=base.scope, solve_s=spent,
                   blocks_considered=solved, blocks_total=len(blocks),
                   proven_optimal=best.cost == base.lower_bound)


def _why_infeasible(relaxed: _Model | None, budget_names: list[str], options: DefragOptions) -> str:
    """Tell a budget-caused dead end from a capacity one by solving the model again without budgets."""
    if relaxed is not None:
        _, out = solve(relaxed.m, options.solve, options.solve.time_limit_s / 2)
        if out.has_solution:
            return "only plans that break PodDisruptionBudget(s) " + ", ".join(budget_names) + " exist"
    return "the pods that would have to move have nowhere else to go (CPU, memory, GPUs, model or NVLink)"


def _extract(solver: cp_model.CpSolver, model: _Model, what: str, base: DefragResult) -> DefragResult:
    """The plan in the solver's answer."""
    block = next(b for b, t in zip(model.blocks, model.t, strict=True) if solver.value(t))
    gpus = tuple(g for g in block.gpus if solver.value(model.r[block.node, g]))
    moves = []
    for p in model.movers:
        if not solver.value(model.moved[p.key]):
            continue
        name, _, zs = next(opt for opt in model.landing[p.key] if solver.value(opt[1]))
        to = tuple(sorted(g for g, z in zs.items() if solver.value(z)))
        assert p.node is not None
        moves.append(Move(p.key, p.node, p.gpus, name, to, model.weights[p.key]))
    cost = sum(m.weight for m in moves)
    ordered = _order(moves)
    msg = (f"move {len(ordered)} pod(s) (cost {cost}) to open {what} on {block.node} "
           f"(GPUs {','.join(map(str, gpus))})")
    return replace(base, message=msg, node=block.node, gpus=gpus, moves=tuple(ordered), cost=cost)


def after_plan(snapshot: Snapshot, result: DefragResult, pod: PodRequest) -> Snapshot:
    """The snapshot once the plan is carried out (moved pods on their new GPUs, the pending pod bound as
    `pending/<name>`), checked: no GPU given twice, CPU and memory within what each node had, NVLink pods
    inside one domain. Raises SnapshotError for a plan that does not hold (tests and the bench use it)."""
    if not result.found:
        raise SnapshotError("no plan to carry out")
    moves = {m.pod: m for m in result.moves}
    landing = [m.to_node for m in result.moves if m.to_node != m.from_node] + [result.node]
    if any(not snapshot.by_name[n].schedulable for n in landing if n):
        raise SnapshotError("the plan lands a pod on a cordoned node")
    pods = []
    for p in snapshot.pods:
        m = moves.get(p.key)
        pods.append(p if m is None else replace(p, node=m.to_node, gpus=m.to_gpus))
    req = PodRequest(pod.name, pod.cpu_milli, pod.memory_mib, pod.num_gpu, MILLI, pod.gpu_models,
                     pod.needs_domain)
    pods.append(SnapPod("pending", pod.name, req, result.node, result.gpus))
    after = Snapshot(snapshot.nodes, pods, snapshot.budgets)  # raises on a GPU given twice
    for spec in snapshot.nodes:
        before, now = _NodeState.of(snapshot, spec), _NodeState.of(after, spec)
        if now.cpu_used > before.cpu_cap or now.mem_used > before.mem_cap:
            raise SnapshotError(f"node {spec.name}: the plan overcommits CPU or memory")
        for p in now.pods:
            if p.request.needs_domain and len({g // spec.domain_size for g in p.gpus}) > 1:
                raise SnapshotError(f"pod {p.key} spans NVLink domains on {spec.name}")
            if p.request.num_gpu != len(p.gpus) or not _model_ok(spec, p.request):
                raise SnapshotError(f"pod {p.key} does not fit {spec.name}")
    return after


def fragmentation_finding(snapshot: Snapshot, pod: PodRequest, result: DefragResult,
                          namespace: str | None = None) -> Finding | None:
    """design.md's `fragmentation` finding: the pod needs k GPUs in one NVLink domain (or node) and k are
    free on the nodes it may use, but only in pieces. None when they are free together or not at all."""
    req = PodRequest(pod.name, pod.cpu_milli, pod.memory_mib, pod.num_gpu, MILLI, pod.gpu_models,
                     pod.needs_domain)
    free_total = largest = 0
    for spec in snapshot.nodes:
        if not _static_fit(spec, req):
            continue
        free = [u == 0 for u in snapshot.gpu_used(spec.name)]
        free_total += sum(free)
        largest = max([largest] + [sum(free[g] for g in b) for b in _blocks(spec, req.needs_domain)])
    k = req.num_gpu
    if result.status == "fits-now" or free_total < k:
        return None
    unit = "one NVLink domain" if req.needs_domain else "one node"
    fix = f" Plan: {result.message}." if result.found else ""
    detail = (f"needs {k} GPUs in {unit}; {free_total} are free on nodes it may use, at most {largest} "
              f"in {unit}.{fix}")
    return Finding(Code.FRAGMENTATION, ObjectRef("Pod", pod.name, namespace), detail,
                   figures={"gpus": k, "free_gpus": free_total, "largest_free_block": largest})
