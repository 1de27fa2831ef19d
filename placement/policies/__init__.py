"""Placement policies, one module each, behind one interface (`base.Policy`).

`make_policy(name, ctx)` builds one by name; `POLICY_NAMES` lists them in the order reports use.
"""

from __future__ import annotations

from collections.abc import Callable

from placement.policies.base import Policy, PolicyContext, extender_scores, pick_best
from placement.policies.best_fit import BestFit
from placement.policies.fgd import Fgd
from placement.policies.gpuplace import Gpuplace
from placement.policies.least_allocated import LeastAllocated
from placement.policies.most_allocated import MostAllocated
from placement.policies.random_policy import RandomPolicy

_FACTORIES: dict[str, Callable[[PolicyContext], Policy]] = {
    "least-allocated": LeastAllocated,
    "most-allocated": MostAllocated,
    "random": RandomPolicy,
    "best-fit": BestFit,
    "fgd": Fgd,
    "gpuplace": Gpuplace,
}
POLICY_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def make_policy(name: str, ctx: PolicyContext | None = None) -> Policy:
    """The policy called `name` (one of POLICY_NAMES)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICY_NAMES)}") from None
    return factory(ctx or PolicyContext())


__all__ = ["POLICY_NAMES", "Policy", "PolicyContext", "extender_scores", "make_policy", "pick_best"]
