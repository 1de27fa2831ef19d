"""The GPU catalog: every spelling a cluster uses names the right GPU, no spelling names two, user
overrides merge field by field, and bad data fails with a message naming the entry and the field."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from placement.catalog import (
    EKS_GPU_NAME_LABEL,
    GFD_PRODUCT_LABEL,
    GKE_ACCELERATOR_LABEL,
    INSTANCE_TYPE_LABEL,
    KARPENTER_GPU_NAME_LABEL,
    LABEL_MEMO_SIZE,
    TIER_LABEL,
    TIER_LABEL_KEYS,
    CatalogError,
    GpuCatalog,
    default_gpu_catalog,
    load_gpu_catalog,
    normalize,
)

RAW: list[dict[str, Any]] = yaml.safe_load(
    resources.files("placement").joinpath("data", "gpus.yaml").read_text(encoding="utf-8")
)["gpus"]


def _spellings(entry: dict[str, Any]) -> list[str]:
    labels = entry.get("labels", {})
    return [entry["id"], entry["name"], *labels.get("gfd_product", []), *labels.get("gke_accelerator", []),
            *labels.get("instance_gpu_name", []), *entry.get("aliases", []), *entry.get("instance_types", {})]


SPELLINGS = [(s, e["id"]) for e in RAW for s in _spellings(e)]
INSTANCE_TYPES = [(t, n, e["id"]) for e in RAW for t, n in e.get("instance_types", {}).items()]
LABELS = [
    (key, value, e["id"])
    for e in RAW
    for field, keys in (("gfd_product", [GFD_PRODUCT_LABEL]), ("gke_accelerator", [GKE_ACCELERATOR_LABEL]),
                        ("instance_gpu_name", [KARPENTER_GPU_NAME_LABEL, EKS_GPU_NAME_LABEL]))
    for value in e.get("labels", {}).get(field, [])
    for key in keys
]


@pytest.fixture(scope="module")
def catalog() -> GpuCatalog:
    return default_gpu_catalog()


# --------------------------------------------------------------------------------------------- coverage


def test_bundled_catalog_has_every_gpu_the_product_needs(catalog: GpuCatalog) -> None:
    required = {
        "H200-141GB", "H100-SXM-80GB", "H100-PCIe-80GB", "H100-NVL-94GB", "A100-SXM-80GB", "A100-SXM-40GB",
        "A100-PCIe-80GB", "A100-PCIe-40GB", "L40S", "L40", "L4", "A10G", "A10", "T4", "V100-SXM2-16GB",
        "V100-SXM2-32GB", "B200", "GB200", "RTX-6000-Ada", "RTX-3090", "RTX-4090", "P100-PCIe-16GB",
    }
    assert required <= set(catalog.ids())


@pytest.mark.parametrize(("gpu_id", "usable"), [
    ("H100-SXM-80GB", 79.2), ("A100-SXM-80GB", 79.15), ("A100-SXM-40GB", 39.39), ("RTX-3090", 23.58),
    ("L40S", 44.6), ("L4", 22.03), ("T4", 14.58), ("A10G", 22.0),
])
def test_usable_memory_is_what_cuda_reports(catalog: GpuCatalog, gpu_id: str, usable: float) -> None:
    assert catalog.get(gpu_id).usable_gib == usable


def test_every_entry_is_internally_consistent(catalog: GpuCatalog) -> None:
    for gpu in catalog.all():
        assert gpu.usable_gib < gpu.memory_gib, gpu.id
        assert gpu.usable_gib <= gpu.gfd_memory_mib / 1024, gpu.id
        assert gpu.sources and all(s.startswith("https://") for s in gpu.sources), gpu.id
        assert gpu.nvlink_domain_gpus == {"none": 1, "pairs": 2}.get(gpu.nvlink, gpu.nvlink_domain_gpus)
        for count in gpu.instance_types.values():
            assert count >= 1
        for mig in gpu.mig_profiles:
            assert mig.memory_gib <= gpu.memory_gib and 1 <= mig.slices <= 7, (gpu.id, mig)


@pytest.mark.parametrize(("gpu_id", "layout", "domain"), [
    ("H100-SXM-80GB", "switch", 8), ("H200-141GB", "switch", 8), ("A100-SXM-80GB", "switch", 8),
    ("H100-NVL-94GB", "pairs", 2), ("A100-PCIe-80GB", "pairs", 2), ("L40S", "none", 1), ("L4", "none", 1),
    ("T4", "none", 1), ("A10G", "none", 1), ("GB200", "switch", 72),
])
def test_nvlink_layout_matches_the_board(catalog: GpuCatalog, gpu_id: str, layout: str, domain: int) -> None:
    gpu = catalog.get(gpu_id)
    assert (gpu.nvlink, gpu.nvlink_domain_gpus) == (layout, domain)


def test_pre_ampere_gpus_do_not_support_bf16(catalog: GpuCatalog) -> None:
    assert not catalog.get("T4").supports_bf16
    assert not catalog.get("V100-SXM2-16GB").supports_bf16
    assert catalog.get("A10G").supports_bf16 and catalog.get("H100-SXM-80GB").supports_bf16


# ----------------------------------------------------------------------------------- spellings resolve


@pytest.mark.parametrize(("spelling", "gpu_id"), SPELLINGS)
def test_every_spelling_in_the_data_file_resolves_to_its_gpu(catalog: GpuCatalog, spelling: str,
                                                             gpu_id: str) -> None:
    gpu = catalog.resolve(spelling)
    assert gpu is not None and gpu.id == gpu_id
    assert catalog.resolve(spelling.upper()).id == gpu_id  # type: ignore[union-attr]
    assert catalog.resolve(spelling.replace("-", " ")).id == gpu_id  # type: ignore[union-attr]


@pytest.mark.parametrize(("key", "value", "gpu_id"), LABELS)
def test_every_label_value_resolves_under_its_label_key(catalog: GpuCatalog, key: str, value: str,
                                                        gpu_id: str) -> None:
    gpu = catalog.from_node_label(key, value)
    assert gpu is not None and gpu.id == gpu_id


@pytest.mark.parametrize(("instance_type", "count", "gpu_id"), INSTANCE_TYPES)
def test_every_instance_type_maps_to_its_gpu_and_count(catalog: GpuCatalog, instance_type: str, count: int,
                                                       gpu_id: str) -> None:
    hit = catalog.instance_type(instance_type)
    assert hit is not None and (hit[0].id, hit[1]) == (gpu_id, count)
    assert catalog.from_node_label(INSTANCE_TYPE_LABEL, instance_type).id == gpu_id  # type: ignore[union-attr]


def test_no_spelling_names_two_gpus() -> None:
    owners: dict[str, set[str]] = {}
    for spelling, gpu_id in SPELLINGS:
        owners.setdefault(normalize(spelling), set()).add(gpu_id)
        owners.setdefault("compact:" + normalize(spelling).replace("-", ""), set()).add(gpu_id)
    clashes = {k: v for k, v in owners.items() if len(v) > 1}
    assert clashes == {}


@pytest.mark.parametrize(("key", "value", "gpu_id"), [
    (GFD_PRODUCT_LABEL, "NVIDIA-H100-80GB-HBM3", "H100-SXM-80GB"),
    (GFD_PRODUCT_LABEL, "NVIDIA-A100-SXM4-80GB", "A100-SXM-80GB"),
    (GFD_PRODUCT_LABEL, "Tesla-T4", "T4"),
    (GFD_PRODUCT_LABEL, "NVIDIA-L4", "L4"),
    (GFD_PRODUCT_LABEL, "NVIDIA-A10G", "A10G"),
    (GFD_PRODUCT_LABEL, "NVIDIA-L40S", "L40S"),
    (GFD_PRODUCT_LABEL, "NVIDIA-H100-PCIe", "H100-PCIe-80GB"),
    (GFD_PRODUCT_LABEL, "NVIDIA-H100-NVL", "H100-NVL-94GB"),
    (GFD_PRODUCT_LABEL, "NVIDIA-H200", "H200-141GB"),
    (GFD_PRODUCT_LABEL, "NVIDIA-GeForce-RTX-3090", "RTX-3090"),
    (GFD_PRODUCT_LABEL, "Tesla-V100-SXM2-16GB", "V100-SXM2-16GB"),
    (GFD_PRODUCT_LABEL, "Tesla-P100-PCIE-16GB", "P100-PCIe-16GB"),
    (GFD_PRODUCT_LABEL, "A100-SXM4-40GB", "A100-SXM-40GB"),  # pre-R470 drivers: no NVIDIA- prefix
    (GFD_PRODUCT_LABEL, "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", "A100-SXM-80GB"),  # MIG single strategy
    (GFD_PRODUCT_LABEL, "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb", "H100-SXM-80GB"),
    (GFD_PRODUCT_LABEL, "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb+me", "A100-SXM-40GB"),
    (GFD_PRODUCT_LABEL, "Tesla-T4-SHARED", "T4"),  # time-slicing with renameByDefault
    (GKE_ACCELERATOR_LABEL, "nvidia-h100-80gb", "H100-SXM-80GB"),
    (GKE_ACCELERATOR_LABEL, "nvidia-h100-mega-80gb", "H100-SXM-80GB"),
    (GKE_ACCELERATOR_LABEL, "nvidia-tesla-a100", "A100-SXM-40GB"),
    (GKE_ACCELERATOR_LABEL, "nvidia-a100-80gb", "A100-SXM-80GB"),
    (GKE_ACCELERATOR_LABEL, "nvidia-l4", "L4"),
    (GKE_ACCELERATOR_LABEL, "nvidia-tesla-t4", "T4"),
    (GKE_ACCELERATOR_LABEL, "nvidia-h200-141gb", "H200-141GB"),
    (KARPENTER_GPU_NAME_LABEL, "h100", "H100-SXM-80GB"),
    (KARPENTER_GPU_NAME_LABEL, "a10g", "A10G"),
    (KARPENTER_GPU_NAME_LABEL, "l40s", "L40S"),
    (KARPENTER_GPU_NAME_LABEL, "a100", "A100-SXM-40GB"),
    (EKS_GPU_NAME_LABEL, "t4", "T4"),
    (EKS_GPU_NAME_LABEL, "l4", "L4"),
    (INSTANCE_TYPE_LABEL, "p5.48xlarge", "H100-SXM-80GB"),
    (INSTANCE_TYPE_LABEL, "p4d.24xlarge", "A100-SXM-40GB"),
    (INSTANCE_TYPE_LABEL, "p4de.24xlarge", "A100-SXM-80GB"),
    (INSTANCE_TYPE_LABEL, "g6e.12xlarge", "L40S"),
    (INSTANCE_TYPE_LABEL, "a3-megagpu-8g", "H100-SXM-80GB"),
    (INSTANCE_TYPE_LABEL, "a3-ultragpu-8g", "H200-141GB"),
    (INSTANCE_TYPE_LABEL, "a2-ultragpu-8g", "A100-SXM-80GB"),
    (INSTANCE_TYPE_LABEL, "g2-standard-48", "L4"),
    (INSTANCE_TYPE_LABEL, "Standard_ND96isr_H100_v5", "H100-SXM-80GB"),
    (INSTANCE_TYPE_LABEL, "standard_nd96isr_h100_v5", "H100-SXM-80GB"),
    (INSTANCE_TYPE_LABEL, "Standard_NC40ads_H100_v5", "H100-NVL-94GB"),
    (TIER_LABEL, "H100-SXM-80GB", "H100-SXM-80GB"),
    (TIER_LABEL, "h100", "H100-SXM-80GB"),
    (TIER_LABEL, "NVIDIA-L40S", "L40S"),
])
def test_node_labels_name_the_right_gpu(catalog: GpuCatalog, key: str, value: str, gpu_id: str) -> None:
    gpu = catalog.from_node_label(key, value)
    assert gpu is not None and gpu.id == gpu_id


@pytest.mark.parametrize(("text", "gpu_id"), [
    ("H100", "H100-SXM-80GB"), ("h100-80gb", "H100-SXM-80GB"), ("H100 SXM", "H100-SXM-80GB"),
    ("A100-80GB", "A100-SXM-80GB"), ("A100", "A100-SXM-40GB"), ("a100_40gb", "A100-SXM-40GB"),
    ("L40S", "L40S"), ("l40", "L40"), ("nvidia-tesla-t4", "T4"), ("Tesla T4", "T4"), ("NVIDIA A10G", "A10G"),
    ("NVIDIA A100-SXM4-80GB", "A100-SXM-80GB"), ("NVIDIA H100 80GB HBM3", "H100-SXM-80GB"),
    ("RTX3090", "RTX-3090"), ("NVIDIA GeForce RTX 4090", "RTX-4090"), ("V100", "V100-SXM2-16GB"),
    ("V100-32GB", "V100-SXM2-32GB"), ("H200", "H200-141GB"), ("B200", "B200"), ("P100", "P100-PCIe-16GB"),
    ("NVIDIA RTX 6000 Ada Generation", "RTX-6000-Ada"), ("g5.xlarge", "A10G"),
])
def test_free_text_names_resolve(catalog: GpuCatalog, text: str, gpu_id: str) -> None:
    gpu = catalog.resolve(text)
    assert gpu is not None and gpu.id == gpu_id


@pytest.mark.parametrize("value", ["", "  ", "TPU-v5e", "nvidia-h100-mega", "p5.24xlarge", "A200"])
def test_unknown_values_resolve_to_nothing(catalog: GpuCatalog, value: str) -> None:
    assert catalog.resolve(value) is None


def test_an_unknown_label_key_names_no_gpu(catalog: GpuCatalog) -> None:
    assert catalog.from_node_label("kubernetes.io/hostname", "H100") is None


def test_instance_type_label_does_not_accept_gpu_names(catalog: GpuCatalog) -> None:
    assert catalog.from_node_label(INSTANCE_TYPE_LABEL, "H100") is None


def test_tier_label_keys_are_in_design_precedence_order() -> None:
    assert TIER_LABEL_KEYS == (GFD_PRODUCT_LABEL, GKE_ACCELERATOR_LABEL, KARPENTER_GPU_NAME_LABEL,
                               EKS_GPU_NAME_LABEL, INSTANCE_TYPE_LABEL, TIER_LABEL)


# -------------------------------------------------------------------------------------------------- API


def test_all_lists_cheapest_first(catalog: GpuCatalog) -> None:
    prices = [g.price_per_hour for g in catalog.all()]
    assert prices == sorted(prices)
    assert len(catalog.all()) == len(RAW)


def test_get_unknown_id_raises_key_error_naming_it(catalog: GpuCatalog) -> None:
    with pytest.raises(KeyError, match="H300"):
        catalog.get("H300")


def test_monthly_cost_is_price_times_gpus_times_hours(catalog: GpuCatalog) -> None:
    gpu = catalog.get("L4")
    assert gpu.monthly_cost() == pytest.approx(gpu.price_per_hour * 730)
    assert gpu.monthly_cost(gpus=4, hours=100) == pytest.approx(gpu.price_per_hour * 400)


def test_gpu_specs_are_hashable_and_frozen(catalog: GpuCatalog) -> None:
    gpu = catalog.get("H100-SXM-80GB")
    assert {gpu: 1}[gpu] == 1
    with pytest.raises(AttributeError):
        gpu.price_per_hour = 1.0  # type: ignore[misc]
    assert dict(gpu.instance_types)["p5.48xlarge"] == 8


def test_default_catalog_is_loaded_once() -> None:
    assert default_gpu_catalog() is default_gpu_catalog()
    assert load_gpu_catalog() is default_gpu_catalog()


# -------------------------------------------------------------------------------------------------- MIG


def test_mig_resource_takes_the_profile_of_the_given_gpu(catalog: GpuCatalog) -> None:
    a100_40 = catalog.get("A100-SXM-40GB")
    hit = catalog.mig_resource("nvidia.com/mig-1g.10gb", a100_40)
    assert hit is not None and hit[0] is a100_40 and hit[1].max_instances == 4


def test_mig_resource_without_gpu_prefers_the_gpu_the_profile_is_made_for(catalog: GpuCatalog) -> None:
    hit = catalog.mig_resource("nvidia.com/mig-1g.10gb")
    assert hit is not None and hit[0] is not None
    assert hit[0].memory_gib == 80 and hit[1].max_instances == 7


@pytest.mark.parametrize(("resource", "memory"), [
    ("nvidia.com/mig-1g.5gb", 5), ("mig-3g.40gb", 40), ("1g.12gb", 12), ("nvidia.com/mig-7g.141gb", 141),
    ("nvidia.com/mig-1g.23gb", 23), ("nvidia.com/mig-7g.186gb", 186),
])
def test_mig_resources_resolve_to_their_memory(catalog: GpuCatalog, resource: str, memory: float) -> None:
    hit = catalog.mig_resource(resource)
    assert hit is not None and hit[1].memory_gib == memory


def test_mig_resource_on_a_gpu_without_it_falls_back_to_the_catalog(catalog: GpuCatalog) -> None:
    hit = catalog.mig_resource("nvidia.com/mig-1g.5gb", catalog.get("L4"))
    assert hit is not None and hit[0] is not None and hit[0].memory_gib == 40


def test_unknown_mig_resource_is_none(catalog: GpuCatalog) -> None:
    assert catalog.mig_resource("nvidia.com/mig-9g.1gb") is None


def test_every_mig_profile_is_reachable_as_a_resource(catalog: GpuCatalog) -> None:
    for gpu in catalog.all():
        for mig in gpu.mig_profiles:
            assert catalog.mig_resource(mig.resource, gpu) == (gpu, mig)


# -------------------------------------------------------------------------------------------- overrides


def test_override_of_one_field_keeps_the_rest(catalog: GpuCatalog) -> None:
    updated = catalog.with_overrides({"gpus": [{"id": "H100-SXM-80GB", "price_per_hour": 2.2}]})
    old, new = catalog.get("H100-SXM-80GB"), updated.get("H100-SXM-80GB")
    assert new.price_per_hour == 2.2
    assert (new.usable_gib, new.gfd_products, dict(new.instance_types)) == \
        (old.usable_gib, old.gfd_products, dict(old.instance_types))
    assert catalog.get("H100-SXM-80GB").price_per_hour == old.price_per_hour  # the original is untouched


def test_override_labels_merge_key_by_key(catalog: GpuCatalog) -> None:
    updated = catalog.with_overrides({"gpus": [{"id": "L4", "labels": {"gke_accelerator": ["my-l4-pool"]}}]})
    gpu = updated.get("L4")
    assert gpu.gke_accelerators == ("my-l4-pool",) and gpu.gfd_products == ("NVIDIA-L4",)
    assert updated.from_node_label(GKE_ACCELERATOR_LABEL, "my-l4-pool") is gpu


def test_override_adds_a_new_gpu(catalog: GpuCatalog) -> None:
    new = {
        "id": "MI300X", "name": "AMD Instinct MI300X", "memory_gib": 192, "usable_gib": 191.5,
        "gfd_memory_mib": 196592, "bandwidth_gbs": 5300, "bf16_tflops": 1307, "fp8": True,
        "nvlink": "switch", "nvlink_domain_gpus": 8, "price_per_hour": 2.5, "generation": "cdna3",
        "labels": {"gfd_product": ["AMD-Instinct-MI300X"]}, "instance_types": {"my-mi300-node": 8},
        "sources": ["https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html"],
    }
    updated = catalog.with_overrides({"gpus": [new]})
    assert len(updated) == len(catalog) + 1
    assert updated.resolve("AMD-Instinct-MI300X").id == "MI300X"  # type: ignore[union-attr]
    assert updated.instance_type("my-mi300-node")[1] == 8  # type: ignore[index]


@pytest.mark.parametrize(("entry", "field"), [
    ({"id": "H100-SXM-80GB", "price_per_hour": "cheap"}, "price_per_hour"),
    ({"id": "H100-SXM-80GB", "nvlink": "mesh"}, "nvlink"),
    ({"id": "H100-SXM-80GB", "usable_gib": 90}, "usable_gib"),
    ({"id": "H100-SXM-80GB", "prices": 1.0}, "prices"),
    ({"id": "H100-SXM-80GB", "mig_profiles": [{"name": "1g.10gb", "memory_gib": 10, "slices": 1}]},
     "max_instances"),
    ({"id": "H100-SXM-80GB", "instance_types": {"p5.48xlarge": 0}}, "instance_types"),
    ({"id": "NEW-GPU", "name": "new"}, "memory_gib"),
])
def test_bad_override_names_entry_and_field(catalog: GpuCatalog, entry: dict[str, Any], field: str) -> None:
    with pytest.raises(CatalogError) as err:
        catalog.with_overrides({"gpus": [entry]})
    assert entry["id"] in str(err.value) and field in str(err.value)


def test_override_that_steals_a_spelling_is_refused(catalog: GpuCatalog) -> None:
    with pytest.raises(CatalogError, match="'H100'"):
        catalog.with_overrides({"gpus": [{"id": "L4", "aliases": ["H100"]}]})


def test_override_without_id_is_refused(catalog: GpuCatalog) -> None:
    with pytest.raises(CatalogError, match="'id'"):
        catalog.with_overrides({"gpus": [{"price_per_hour": 1.0}]})


def test_override_file_with_unknown_top_level_key_is_refused(catalog: GpuCatalog) -> None:
    with pytest.raises(CatalogError, match="gpu"):
        catalog.with_overrides({"gpu": []})


def test_load_with_a_path_applies_the_overrides_in_that_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("gpus:\n  - id: A10G\n    price_per_hour: 1.006\n")
    catalog = load_gpu_catalog(path)
    assert catalog.get("A10G").price_per_hour == 1.006
    assert default_gpu_catalog().get("A10G").price_per_hour != 1.006


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("gpus:\n  - id: A10G\n    bandwidth_gbs: -1\n")
    with pytest.raises(CatalogError, match=r"bad\.yaml.*A10G.*bandwidth_gbs"):
        load_gpu_catalog(path)
    path.write_text("gpus: [unclosed\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_gpu_catalog(path)
    with pytest.raises(CatalogError, match="cannot read"):
        load_gpu_catalog(tmp_path / "missing.yaml")


def test_node_label_memo_answers_as_the_first_lookup_and_stays_bounded() -> None:
    catalog = GpuCatalog(default_gpu_catalog().all())  # its own instance and memo
    gpu = catalog.from_node_label(TIER_LABEL, "NVIDIA-L40S")
    assert gpu is not None and gpu.id == "L40S"
    assert catalog.from_node_label(TIER_LABEL, "NVIDIA-L40S") is gpu
    assert catalog.from_node_label(TIER_LABEL, "no-such-gpu") is None
    assert catalog.from_node_label("not/a-tier-label", "NVIDIA-L40S") is None  # the key still matters
    info = catalog._label_memo.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (1, 3, LABEL_MEMO_SIZE)
