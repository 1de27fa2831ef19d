"""What every CP-SAT solve in the planner shares: a time limit, few workers, and an honest status."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ortools (and the pandas it pulls in) loads only when a plan is solved
    from ortools.sat.python import cp_model

DEFAULT_TIME_LIMIT_S = 10.0
DEFAULT_WORKERS = 2  # the planner runs beside other work; CP-SAT takes every core unless told


@dataclass(frozen=True)
class SolveOptions:
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    workers: int = DEFAULT_WORKERS
    seed: int = 0

    def __post_init__(self) -> None:
        if self.time_limit_s <= 0:
            raise ValueError(f"time limit must be positive, got {self.time_limit_s}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")


@dataclass(frozen=True)
class SolveOutcome:
    """`status` is one of optimal, feasible (best found when time ran out), infeasible, unknown (time ran
    out with nothing found), invalid (a bug in the model)."""

    status: str
    objective: float
    bound: float
    wall_s: float

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible")


_STATUS = {"OPTIMAL": "optimal", "FEASIBLE": "feasible", "INFEASIBLE": "infeasible", "UNKNOWN": "unknown",
           "MODEL_INVALID": "invalid"}


def solve(model: cp_model.CpModel, options: SolveOptions, time_limit_s: float | None = None,
          light_presolve: bool = False) -> tuple[cp_model.CpSolver, SolveOutcome]:
    """Solve under the time limit with a fixed seed. With two workers the search is not deterministic:
    among plans of equal cost, which one comes back may differ run to run.

    `light_presolve` turns probing off. Probing a model of a few 100,000 Booleans takes seconds; a solve
    that starts from a complete hint and only polishes it (batch's second phase) is better off without."""
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    if light_presolve:
        solver.parameters.cp_model_probing_level = 0
    solver.parameters.max_time_in_seconds = float(time_limit_s or options.time_limit_s)
    solver.parameters.num_workers = options.workers
    solver.parameters.random_seed = options.seed
    start = time.perf_counter()
    code = solver.solve(model)
    wall = time.perf_counter() - start
    status = _STATUS.get(solver.status_name(code), "unknown")
    has = status in ("optimal", "feasible")
    objective = solver.objective_value if has else 0.0
    bound = solver.best_objective_bound if has else 0.0
    return solver, SolveOutcome(status, objective, bound, wall)
