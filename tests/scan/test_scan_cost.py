"""Cost: spend per hour from every GPU node, waste per code per day and year, prices from the catalog
or a --prices file."""

from __future__ import annotations

from pathlib import Path

import pytest

from placement.checks import CheckContext
from placement.findings import Code, Finding, ObjectRef
from scan.cost import PriceError, check_waste_per_day, load_prices, waste_by_code
from scan.inventory import Inventory
from scan.scanner import scan
from tests.scan.objects import L4, NOW, node, pod

CTX = CheckContext.default()


def test_prices_file_overrides_the_catalog_by_any_spelling(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("NVIDIA-H100-80GB-HBM3: 1.5\nL4: 0.25\n")
    prices = load_prices(str(path), CTX.gpus)
    assert prices.per_hour("H100-SXM-80GB") == 1.5
    assert prices.per_hour("L4") == 0.25
    assert prices.per_hour("A100-SXM-80GB") == CTX.gpus.get("A100-SXM-80GB").price_per_hour


def test_a_negative_price_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("L4: -1\n")
    with pytest.raises(PriceError, match="L4"):
        load_prices(str(path), CTX.gpus)


def test_spend_counts_every_gpu_node_and_allocation_only_what_pods_hold(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("H100-SXM-80GB: 2.0\nL4: 0.5\n")
    objs = [node("h", gpus=8), node("l", product=L4, gpus=4), pod("p", node_name="h", gpus=2)]
    result = scan(Inventory.from_objects(objs, now=NOW), CTX, load_prices(str(path), CTX.gpus))
    assert result.cost.spend_per_hour == pytest.approx(8 * 2.0 + 4 * 0.5)
    assert result.cost.allocated_per_hour == pytest.approx(2 * 2.0)
    assert result.cost.gpus == 12 and result.cost.gpus_allocated == 2
    assert result.cost.waste_per_day["dark-capacity"] == pytest.approx(4 * 0.5 * 24)
    assert result.cost.as_dict()["waste_per_year"]["dark-capacity"] == round(4 * 0.5 * 24 * 365)


def test_unknown_gpu_is_unpriced_not_zero() -> None:
    objs = [node("x", product="NVIDIA-Mystery-9000", gpus=2)]
    result = scan(Inventory.from_objects(objs, now=NOW), CTX, load_prices(None, CTX.gpus))
    assert result.cost.unpriced_models == ("NVIDIA-Mystery-9000",)
    assert "dark-capacity" not in result.cost.waste_per_day


def _f(code: Code, waste: float) -> Finding:
    return Finding(code, ObjectRef("Pod", "p", "ns"), "x", figures={"waste_per_day": waste})


def test_waste_is_summed_per_code_but_pooled_fragmentation_counts_once() -> None:
    found = [_f(Code.DARK_CAPACITY, 10), _f(Code.DARK_CAPACITY, 5), _f(Code.FRAGMENTATION, 7),
             _f(Code.FRAGMENTATION, 7)]
    assert waste_by_code(found) == {"dark-capacity": 15, "fragmentation": 7}


def test_deploy_time_findings_carry_their_monthly_saving_as_daily_waste() -> None:
    f = Finding(Code.TIER_MISPLACEMENT, ObjectRef("Deployment", "d", "ns"), "x",
                figures={"monthly_cost": 730, "recommended_monthly_cost": 365})
    assert check_waste_per_day(f, hours_per_month=730) == pytest.approx(12.0)
