"""GPUs of DRA nodes (ResourceSlices of the NVIDIA driver) in the extender's cluster cache."""

from __future__ import annotations

from extender.cache.cluster_cache import ClusterCache
from placement.checks.settings import CheckContext
from placement.dra_inventory import node_with_dra_gpus, read_slice
from tests.dra_objects import gpu_slice
from tests.extender.objects import node, pod

CTX = CheckContext.default()


def cache_with(*nodes: dict) -> ClusterCache:
    cache = ClusterCache(CTX.gpus, min_rebuild_interval_s=0)
    cache.replace_nodes(list(nodes))
    cache.replace_pods([], started_at=0.0)
    return cache


def gpus_of(cache: ClusterCache) -> dict[str, tuple[str, int]]:
    with cache.view() as view:
        if view.table is None:
            return {}
        return {i.name: (i.model, i.gpu_count) for i in view.table.infos}


def test_slice_devices_carry_the_driver_attributes():
    found = read_slice(gpu_slice("n1", gpus=2))
    assert found is not None and found.node == "n1" and len(found.devices) == 2
    d = found.devices[0]
    assert (d.type, d.product, d.architecture) == ("gpu", "NVIDIA H100 80GB HBM3", "Hopper")
    assert d.pcie_root == "pci0000:00"
    assert d.memory_bytes == 81559 * 2**20
    other = gpu_slice("n1")
    other["spec"]["driver"] = "net.example.com"
    assert read_slice(other) is None


def test_a_dra_node_shows_its_gpus_whichever_arrives_first():
    cache = cache_with(node("dra", gpus=0))
    assert gpus_of(cache) == {}
    cache.replace_slices([gpu_slice("dra", "NVIDIA L40S", gpus=4, memory="46068Mi")])
    assert gpus_of(cache) == {"dra": ("L40S", 4)}
    # a slice that comes before its node applies when the node is listed
    cache.upsert_slice(gpu_slice("later", gpus=8))
    cache.upsert_node(node("later", gpus=0))
    assert gpus_of(cache)["later"] == ("H100-SXM-80GB", 8)
    cache.delete_slice(gpu_slice("dra", "NVIDIA L40S", gpus=4))
    assert "dra" not in gpus_of(cache)


def test_device_plugin_gpus_are_not_counted_twice():
    labelled = node("both", gpus=8)
    assert node_with_dra_gpus(labelled, [read_slice(gpu_slice("both"))]) is labelled  # type: ignore[list-item]


def test_pods_on_a_dra_node_use_its_gpus():
    cache = cache_with(node("dra", gpus=0))
    cache.replace_slices([gpu_slice("dra", gpus=2)])
    cache.replace_pods([pod("p", 1, node_name="dra", uid="u1", phase="Running")], started_at=0.0)
    with cache.view() as view:
        assert view.free is not None and view.table is not None and view.cluster is not None
        row = view.table.row["dra"]
        assert int(view.cluster.gpu_count[row]) == 2 and cache.gpu_pods_per_node() == {"dra": 1}


def allocated_claim(node: str, *devices: str, extended: bool = False) -> dict:
    meta: dict = {"name": "c1", "namespace": "ml", "uid": "claim-uid-1"}
    if extended:
        meta["annotations"] = {"resource.kubernetes.io/extended-resource-claim": "true"}
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": meta,
        "spec": {"devices": {"requests": []}},
        "status": {
            "allocation": {
                "devices": {
                    "results": [
                        {"request": "gpu", "driver": "gpu.nvidia.com", "pool": node, "device": d}
                        for d in devices
                    ]
                },
                "nodeSelector": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                    ]
                },
            }
        },
    }


def free_of(cache: ClusterCache, name: str) -> list[int]:
    with cache.view() as view:
        assert view.table is not None and view.cluster is not None
        row = view.table.row[name]
        return [i for i in range(int(view.cluster.gpu_count[row])) if view.cluster.gpu_free[row, i] == 1000]


def test_gpus_held_through_claims_are_taken_and_the_node_is_not_dark():
    cache = cache_with(node("dra", gpus=0))
    cache.replace_slices([gpu_slice("dra", gpus=4)])
    cache.replace_claims([allocated_claim("dra", "gpu-1", "gpu-2")])
    assert free_of(cache, "dra") == [0, 3] and cache.gpu_pods_per_node() == {"dra": 1}
    cache.delete_claim(allocated_claim("dra"))
    assert free_of(cache, "dra") == [0, 1, 2, 3]
    # the claim of a DRA-backed extended resource: its pod's nvidia.com/gpu limit counts, not the claim
    cache.upsert_claim(allocated_claim("dra", "gpu-0", extended=True))
    assert free_of(cache, "dra") == [0, 1, 2, 3]
