"""Placement policies, one module each, behind one interface (`base.Policy`).

`make_policy(name, ctx)` builds one by name; `POLICY_NAMES` lists them in the order reports use.

The extender uses exactly what the simulator uses::

    cluster = Cluster([GpuNode(...), ...])            # from Node objects and the pods bound to them
    policy = make_policy("gpuplace", PolicyContext(shapes=ShapeDistribution.from_pods(recent_pods),
                                                   nvlink=True))
    ok = cluster.feasible(pod)                        # /filter: one bool per node
    scores = extender_scores(policy, cluster, pod, np.flatnonzero(ok))  # /prioritize: 0..10 each
    gpus = policy.select_gpus(cluster, row, pod)      # /bind: the GPU indices on the chosen node
    cluster.place(row, pod, gpus)                     # keep the model current until the watch catches up

Keeping one `Cluster` and calling `place` lets the policy reuse per-node work between pods (it caches by
`Cluster.version`); a fresh `Cluster` per request is correct too, only slower.
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
