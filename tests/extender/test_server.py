"""The extender over HTTP, driven the way kube-scheduler drives it (filter, prioritize when more than one
node is left, bind on the highest score), with a fake API binder and no watch: every decision must show
in the next pod's answers by itself."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from extender.cache.cluster_cache import ClusterCache
from extender.core import BindError, Extender, Settings
from extender.server import build_app
from placement.checks.settings import CheckContext
from placement.scheduling import PolicyHolder
from placement.topology import MILLI, PodRequest
from tests.extender.objects import llama, node, pod

CTX = CheckContext.default()


class FakeBinder:
    def __init__(self) -> None:
        self.bound: dict[str, tuple[str, dict[str, str]]] = {}
        self.fail_next: str | None = None
        self.pods: dict[str, dict[str, Any]] = {}

    async def bind(self, namespace: str, name: str, uid: str, node: str,
                   annotations: Mapping[str, str]) -> None:
        if self.fail_next:
            reason, self.fail_next = self.fail_next, None
            raise BindError(reason)
        self.bound[f"{namespace}/{name}"] = (node, dict(annotations))

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.pods.get(f"{namespace}/{name}")

    async def close(self) -> None:
        return None


def make_extender(nodes: list[dict[str, Any]], synced: bool = True, shortlist: int = 1) -> Extender:
    cache = ClusterCache(CTX.gpus)
    if synced:
        cache.replace_nodes(nodes)
        cache.replace_pods([], 0.0)
    return Extender(cache, CTX, PolicyHolder(), binder=FakeBinder(), settings=Settings(shortlist=shortlist))


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    clients: list[TestClient] = []

    async def make(ext: Extender) -> TestClient:
        client = TestClient(TestServer(build_app(ext)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


async def post(client: TestClient, verb: str, body: Any, status: int = 200) -> Any:
    resp = await client.post(f"/{verb}", data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert resp.status == status, await resp.text()
    return await resp.json() if status == 200 else await resp.text()


async def schedule(client: TestClient, p: dict[str, Any], names: list[str]) -> str | None:
    """One scheduling cycle as kube-scheduler runs it with this extender; the node bound, or None."""
    args = {"Pod": p, "Nodes": None, "NodeNames": names}
    result = await post(client, "filter", args)
    assert result["Error"] == ""
    passed = result["NodeNames"]
    if not passed:
        return None
    if len(passed) > 1:
        scores = await post(client, "prioritize", {**args, "NodeNames": passed})
        best = max(scores, key=lambda h: h["Score"])["Host"]
    else:
        best = passed[0]
    meta = p["metadata"]
    bound = await post(client, "bind", {"PodName": meta["name"], "PodNamespace": meta["namespace"],
                                         "PodUID": meta["uid"], "Node": best})
    assert bound == {"Error": ""}
    return str(best)


NVLINK = {"gpuplace.io/nvlink": "required"}


@pytest.mark.parametrize("shortlist", [1, 2, 0])
async def test_burst_of_1_2_4_gpu_pods_packs_so_the_8_gpu_pod_still_fits(client_for: Any,
                                                                        shortlist: int) -> None:
    ext = make_extender([node("gpu-a"), node("gpu-b")], shortlist=shortlist)
    client = await client_for(ext)
    names = ["gpu-a", "gpu-b"]
    placed = {}
    for name, gpus in (("p4", 4), ("p2", 2), ("p1a", 1), ("p1b", 1), ("p8", 8)):
        placed[name] = await schedule(client, pod(name, gpus, annotations=NVLINK if gpus > 1 else {}), names)
    assert None not in placed.values()
    assert len({placed[n] for n in ("p4", "p2", "p1a", "p1b")}) == 1
    assert placed["p8"] != placed["p4"]
    binder = ext.binder
    assert isinstance(binder, FakeBinder)
    gpus_of = {k: v[1]["gpuplace.io/gpus"] for k, v in binder.bound.items()}
    assert gpus_of["default/p8"] == "0,1,2,3,4,5,6,7"
    taken = [g for k in ("p4", "p2", "p1a", "p1b") for g in gpus_of[f"default/{k}"].split(",")]
    assert sorted(taken, key=int) == [str(i) for i in range(8)]


async def test_nvlink_pods_on_pair_nodes_each_get_a_whole_pair(client_for: Any) -> None:
    ext = make_extender([node("nvl-a", "NVIDIA-H100-NVL", 4), node("nvl-b", "NVIDIA-H100-NVL", 4)])
    client = await client_for(ext)
    names = ["nvl-a", "nvl-b"]
    assert await schedule(client, pod("one", 1), names) is not None
    for i in range(3):
        assert await schedule(client, pod(f"two-{i}", 2, annotations=NVLINK), names) is not None
    binder = ext.binder
    assert isinstance(binder, FakeBinder)
    pairs = [binder.bound[f"default/two-{i}"][1]["gpuplace.io/gpus"] for i in range(3)]
    assert all(p in ("0,1", "2,3") for p in pairs)
    # The 1-GPU pod broke one pair; that pair's other GPU is all that is left.
    assert await schedule(client, pod("two-3", 2, annotations=NVLINK), names) is None


async def test_70b_pod_is_never_offered_a_node_whose_gpus_cannot_hold_it(client_for: Any) -> None:
    ext = make_extender([node("l4-a", "NVIDIA-L4", 4), node("h100-a")])
    client = await client_for(ext)
    big = llama("llama-70b", "meta-llama/Llama-3.1-70B-Instruct", 2, tp=2)
    result = await post(client, "filter", {"Pod": big, "Nodes": None, "NodeNames": ["l4-a", "h100-a"]})
    assert result["NodeNames"] == ["h100-a"]
    assert list(result["FailedAndUnresolvableNodes"]) == ["l4-a"]


async def test_small_model_goes_to_l4_and_h100_stays_whole(client_for: Any) -> None:
    ext = make_extender([node("h100-a"), node("l4-a", "NVIDIA-L4", 4), node("l4-b", "NVIDIA-L4", 4)])
    client = await client_for(ext)
    names = ["h100-a", "l4-a", "l4-b"]
    for i in range(6):
        where = await schedule(client, llama(f"llama-8b-{i}", "meta-llama/Llama-3.1-8B-Instruct"), names)
        assert where is not None and where.startswith("l4-")


async def test_failed_bind_is_rolled_back_and_reported_in_the_error_field(client_for: Any) -> None:
    ext = make_extender([node("gpu-a")])
    client = await client_for(ext)
    binder = ext.binder
    assert isinstance(binder, FakeBinder)
    p = pod("p8", 8)
    await post(client, "filter", {"Pod": p, "Nodes": None, "NodeNames": ["gpu-a"]})
    binder.fail_next = "409 Operation cannot be fulfilled on pods/binding"
    result = await post(client, "bind", {"PodName": "p8", "PodNamespace": "default",
                                         "PodUID": p["metadata"]["uid"], "Node": "gpu-a"})
    assert "409 Operation cannot be fulfilled" in result["Error"]
    assert await schedule(client, pod("again", 8), ["gpu-a"]) == "gpu-a"


async def test_bind_of_a_pod_never_filtered_reads_it_from_the_api(client_for: Any) -> None:
    ext = make_extender([node("gpu-a")])
    client = await client_for(ext)
    binder = ext.binder
    assert isinstance(binder, FakeBinder)
    p = pod("late", 2, namespace="ml")
    binder.pods["ml/late"] = p
    result = await post(client, "bind", {"PodName": "late", "PodNamespace": "ml",
                                         "PodUID": p["metadata"]["uid"], "Node": "gpu-a"})
    assert result == {"Error": ""}
    assert binder.bound["ml/late"] == ("gpu-a", {"gpuplace.io/gpus": "0,1"})
    missing = await post(client, "bind", {"PodName": "gone", "PodNamespace": "ml", "PodUID": "x",
                                          "Node": "gpu-a"})
    assert "not found" in missing["Error"]


async def test_nvlink_pod_bound_where_no_domain_is_left_is_refused(client_for: Any) -> None:
    ext = make_extender([node("nvl", "NVIDIA-H100-NVL", 4)])
    client = await client_for(ext)
    await schedule(client, pod("a", 1), ["nvl"])
    await schedule(client, pod("b", 1), ["nvl"])  # best fit: the same pair
    await schedule(client, pod("c", 1), ["nvl"])  # breaks the second pair
    p = pod("two", 2, annotations=NVLINK)
    binder = ext.binder
    assert isinstance(binder, FakeBinder)
    binder.pods["default/two"] = p  # e.g. an extender restarted between the scheduler's filter and bind
    result = await post(client, "bind", {"PodName": "two", "PodNamespace": "default",
                                         "PodUID": p["metadata"]["uid"], "Node": "nvl"})
    assert "no NVLink domain with 2 free GPUs" in result["Error"]


async def test_without_node_cache_the_filter_answers_with_node_objects(client_for: Any) -> None:
    nodes = [node("l4-a", "NVIDIA-L4", 4), node("h100-a")]
    client = await client_for(make_extender(nodes))
    big = llama("llama-70b", "meta-llama/Llama-3.1-70B-Instruct", 2, tp=2)
    result = await post(client, "filter", {"Pod": big, "Nodes": {"items": nodes}, "NodeNames": None})
    assert [n["metadata"]["name"] for n in result["Nodes"]["items"]] == ["h100-a"]
    scores = await post(client, "prioritize", {"Pod": big, "Nodes": {"items": nodes[1:]}, "NodeNames": None})
    assert scores == [{"Host": "h100-a", "Score": 10}]


async def test_not_ready_until_synced_and_the_scheduler_is_told_why(client_for: Any) -> None:
    client = await client_for(make_extender([], synced=False))
    ready = await client.get("/readyz")
    assert ready.status == 503 and "not synced" in await ready.text()
    assert (await client.get("/healthz")).status == 200
    result = await post(client, "filter", {"Pod": pod("p", 1), "NodeNames": ["a"]})
    assert "not ready" in result["Error"] and result["NodeNames"] == []
    await post(client, "prioritize", {"Pod": pod("p", 1), "NodeNames": ["a"]}, status=500)
    bound = await post(client, "bind", {"PodName": "p", "PodNamespace": "d", "PodUID": "u", "Node": "a"})
    assert "not ready" in bound["Error"]


@pytest.mark.parametrize("verb", ["filter", "prioritize", "bind"])
async def test_bad_bodies_get_400_with_the_reason(client_for: Any, verb: str) -> None:
    client = await client_for(make_extender([node("a")]))
    resp = await client.post(f"/{verb}", data=b"{broken")
    assert resp.status == 400
    assert "Invalid JSON" in await resp.text()
    resp = await client.post(f"/{verb}", data=b'{"Pod": 7, "PodName": 7}')
    assert resp.status == 400


async def test_unreadable_pod_fails_the_attempt_not_the_server(client_for: Any) -> None:
    client = await client_for(make_extender([node("a")]))
    result = await post(client, "filter", {"Pod": pod("p", 1, cpu="lots"), "NodeNames": ["a"]})
    assert "cpu" in result["Error"]
    assert (await client.get("/healthz")).status == 200


async def test_refusal_is_one_log_line_with_reasons_and_a_fragmentation_finding(
        client_for: Any, caplog: pytest.LogCaptureFixture) -> None:
    ext = make_extender([node("nvl-a", "NVIDIA-H100-NVL", 4), node("nvl-b", "NVIDIA-H100-NVL", 4),
                         node("l4", "NVIDIA-L4", 4)])
    client = await client_for(ext)
    for name, target in (("x0", "nvl-a"), ("x1", "nvl-b")):
        for i in (0, 2):  # one GPU in each pair of both nodes
            ext.cache.assume(f"{name}-{i}", f"default/{name}-{i}", target, _one_gpu(), (i,), None)
    caplog.set_level(logging.INFO, logger="gpuplace")
    p = pod("tp2", 2, annotations=NVLINK)
    assert await schedule(client, p, ["nvl-a", "nvl-b", "l4"]) is None
    lines = [r.getMessage() for r in caplog.records if "refused default/tp2" in r.getMessage()]
    assert len(lines) == 1
    assert "2 node(s) nvlink-fragmented" in lines[0] and "1 node(s) nvlink-topology" in lines[0]
    messages = [r.getMessage() for r in caplog.records]
    findings = [m for m in messages if m.startswith("gpuplace[fragmentation]")]
    assert findings and "pod/tp2 needs 2 GPUs in one NVLink domain; 4 are free" in findings[0]
    metrics = await (await client.get("/metrics")).text()
    assert 'gpuplace_findings_total{code="fragmentation",severity="info"} 1.0' in metrics
    assert 'gpuplace_extender_refused_pods_total{reason="nvlink-fragmented"} 1.0' in metrics


def _one_gpu() -> PodRequest:
    return PodRequest("q", 1000, 1024, 1, MILLI)


async def test_metrics_cover_requests_cluster_capacity_and_dark_nodes(client_for: Any) -> None:
    ext = make_extender([node("gpu-a"), node("gpu-b"), node("l4", "NVIDIA-L4", 4)])
    client = await client_for(ext)
    await schedule(client, pod("p", 2), ["gpu-a", "gpu-b"])
    ext.metrics.register_cluster(ext.cache, ext.policy.distribution)
    text = await (await client.get("/metrics")).text()
    for expected in (
        'gpuplace_extender_requests_total{outcome="ok",verb="filter"} 1.0',
        'gpuplace_extender_request_duration_seconds_bucket{le="0.005",verb="filter"}',
        'gpuplace_extender_binds_total{outcome="ok"} 1.0',
        'gpuplace_cluster_gpus{tier="H100-SXM-80GB"} 16.0',
        'gpuplace_cluster_free_gpus{tier="H100-SXM-80GB"} 14.0',
        'gpuplace_cluster_largest_free_block_gpus{tier="L4"} 1.0',
        'gpuplace_cluster_dark_nodes{tier="H100-SXM-80GB"} 1.0',
        'gpuplace_cluster_dark_gpus{tier="L4"} 4.0',
        "gpuplace_cluster_stranded_gpus",
        "gpuplace_cluster_fragmentation_ratio",
        "gpuplace_extender_cache_synced 1.0",
        'gpuplace_extender_decisions_total{tier="H100-SXM-80GB"} 1.0',
    ):
        assert expected in text, expected


async def test_shortlist_offers_the_best_nodes_and_prioritize_agrees_with_filter(client_for: Any) -> None:
    nodes = [node("whole-a"), node("whole-b"), node("broken")]
    ext = make_extender(nodes, shortlist=2)
    ext.cache.assume("x", "default/x", "broken", _one_gpu(), (0,), None)
    client = await client_for(ext)
    args = {"Pod": pod("p", 1), "Nodes": None, "NodeNames": ["whole-a", "whole-b", "broken"]}
    result = await post(client, "filter", args)
    assert result["NodeNames"][0] == "broken" and len(result["NodeNames"]) == 2
    assert not result["FailedNodes"] and not result["FailedAndUnresolvableNodes"]
    scores = await post(client, "prioritize", {**args, "NodeNames": result["NodeNames"]})
    assert scores[0] == {"Host": "broken", "Score": 10} and scores[1]["Score"] < 10


async def test_without_shortlist_every_fitting_node_is_offered_and_scored(client_for: Any) -> None:
    nodes = [node("whole-a"), node("whole-b"), node("broken")]
    ext = make_extender(nodes, shortlist=0)
    ext.cache.assume("x", "default/x", "broken", _one_gpu(), (0,), None)
    client = await client_for(ext)
    names = ["whole-a", "whole-b", "broken"]
    result = await post(client, "filter", {"Pod": pod("p", 1), "Nodes": None, "NodeNames": names})
    assert result["NodeNames"] == names
    scores = await post(client, "prioritize", {"Pod": pod("p", 1), "Nodes": None, "NodeNames": names})
    assert {h["Host"]: h["Score"] for h in scores}["broken"] == 10
    assert sorted(h["Score"] for h in scores).count(10) == 1
