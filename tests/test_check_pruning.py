"""The tier searches skip estimates they can prove would not fit (a tier with less memory in all than the
weights per GPU): the answers must be the ones a search estimating every tier gives."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from placement.checks import CheckContext, servings
from placement.checks.fit import _cheapest_other_tier, fit_findings
from placement.checks.tier import _same_interconnect, _same_precision, cheaper_tier, holds_with_margin
from placement.serving import Serving
from placement.workload import extract

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CTX = CheckContext.default()


def _unpinned(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    spec = out["spec"]["template"]["spec"] if "template" in out.get("spec", {}) else {}
    spec.pop("nodeSelector", None)
    spec.pop("affinity", None)
    return out


def _servings() -> list[Serving]:
    objs = [o for p in sorted(EXAMPLES.glob("*.yaml")) for o in yaml.safe_load_all(p.read_text()) if o]
    found = []
    for obj in objs + [_unpinned(o) for o in objs if o.get("kind") == "Deployment"]:
        workload = extract(obj, CTX.gpus)
        if workload is not None:
            found += [s for s in servings(workload, CTX) if s.arch is not None and s.precision is not None]
    return found


SERVINGS = _servings()


def test_the_examples_give_pinned_and_unpinned_servings_to_compare():
    assert sum(s.workload.tier.pinned for s in SERVINGS) >= 10
    assert sum(not s.workload.tier.pinned for s in SERVINGS) >= 10


@pytest.mark.parametrize("s", SERVINGS, ids=lambda s: f"{s.workload.ref.name}-{s.workload.tier.pinned}")
def test_fitting_tiers_are_those_every_estimate_says_fit(s: Serving) -> None:
    _, fitting = fit_findings(s, CTX)
    candidates = list(s.workload.tier.gpus) if s.workload.tier.pinned else list(CTX.recommendable)
    if s.container.mig_profile:
        pytest.skip("a MIG slice is its own tier")
    assert set(fitting) == {g.id for g in candidates if s.estimate(g).fits}


@pytest.mark.parametrize("s", SERVINGS, ids=lambda s: f"{s.workload.ref.name}-{s.workload.tier.pinned}")
def test_cheaper_and_other_tier_searches_match_estimating_every_tier(s: Serving) -> None:
    for gpu in CTX.recommendable:
        est = s.estimate(gpu)
        weights = s.precision.weights if s.precision else "bf16"
        every = [
            o
            for o in CTX.recommendable
            if o.price_per_hour < 0.9 * gpu.price_per_hour
            and o.memory_gib < gpu.memory_gib
            and _same_interconnect(s.engine.tp, gpu, o)
            and _same_precision(weights, o)
            and holds_with_margin(s, CTX, s.estimate(o), est)
        ]
        hit = cheaper_tier(s, CTX, gpu, est)
        assert (hit[0].id if hit else None) == (every[0].id if every else None)
        other = next(
            (g for g in CTX.recommendable if g.id != gpu.id and s.estimate(g, tp=est.setup.tp).fits), None
        )
        found = _cheapest_other_tier(s, CTX, gpu, est)
        assert (found.id if found else None) == (other.id if other else None)
