"""The extender's cluster cache: watched pods, its own binds before the watch shows them, rollbacks,
relists and lapsed records. Time is a fake clock; nothing sleeps."""

from __future__ import annotations

import numpy as np

from extender.cache.cluster_cache import ClusterCache, RecordState
from placement.checks.settings import CheckContext
from placement.scheduling import FreeSummary
from placement.topology import MILLI, PodRequest
from tests.extender.objects import node, pod

CTX = CheckContext.default()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(*nodes: dict, clock: Clock | None = None) -> ClusterCache:
    cache = ClusterCache(CTX.gpus, clock=clock or Clock(), nomination_ttl_s=30, assumed_ttl_s=300,
                         min_rebuild_interval_s=0)
    cache.replace_nodes(list(nodes))
    cache.replace_pods([], started_at=0.0)
    return cache


def free_gpus(cache: ClusterCache, name: str) -> list[int]:
    with cache.view() as view:
        assert view.table is not None and view.cluster is not None
        row = view.table.row[name]
        count = int(view.cluster.gpu_count[row])
        return [i for i in range(count) if view.cluster.gpu_free[row, i] == MILLI]


def req(gpus: int, cpu: int = 1000) -> PodRequest:
    return PodRequest("p", cpu, 1024, gpus, MILLI if gpus else 0)


def test_not_synced_until_nodes_and_pods_are_listed() -> None:
    cache = ClusterCache(CTX.gpus)
    assert not cache.synced
    cache.replace_nodes([node("a")])
    assert not cache.synced
    cache.replace_pods([], 0.0)
    assert cache.synced


def test_watched_pod_takes_the_gpus_its_annotation_names() -> None:
    cache = make(node("a"))
    cache.upsert_pod(pod("p", 2, node_name="a", annotations={"gpuplace.io/gpus": "4,5"}))
    assert free_gpus(cache, "a") == [0, 1, 2, 3, 6, 7]


def test_pods_bound_by_someone_else_take_the_lowest_free_gpus() -> None:
    cache = make(node("a"))
    cache.upsert_pod(pod("mine", 2, node_name="a", annotations={"gpuplace.io/gpus": "0,1"}))
    cache.upsert_pod(pod("theirs", 3, node_name="a"))
    assert free_gpus(cache, "a") == [5, 6, 7]


def test_cpu_and_memory_of_every_bound_pod_count() -> None:
    cache = make(node("a", cpu="16"))
    cache.upsert_pod(pod("daemon", 0, node_name="a", cpu="2"))
    cache.upsert_pod(pod("gpu", 1, node_name="a", cpu="4"))
    with cache.view() as view:
        assert view.cluster is not None
        assert int(view.cluster.cpu_free[0]) == 10_000


def test_a_bind_is_visible_at_once_and_the_watch_confirms_it_without_counting_twice() -> None:
    cache = make(node("a"))
    p = pod("p", 4, node_name=None)
    uid = p["metadata"]["uid"]
    cache.assume(uid, "default/p", "a", req(4), (0, 1, 2, 3), None)
    assert free_gpus(cache, "a") == [4, 5, 6, 7]
    bound = pod("p", 4, node_name="a", uid=uid, annotations={"gpuplace.io/gpus": "0,1,2,3"})
    cache.upsert_pod(bound)
    assert cache.record(uid).state is RecordState.WATCHED  # type: ignore[union-attr]
    assert free_gpus(cache, "a") == [4, 5, 6, 7]


def test_watch_without_the_annotation_keeps_the_gpus_the_extender_chose() -> None:
    cache = make(node("a"))
    p = pod("p", 2, node_name="a")
    uid = p["metadata"]["uid"]
    cache.assume(uid, "default/p", "a", req(2), (6, 7), None)
    cache.upsert_pod(p)
    assert free_gpus(cache, "a") == [0, 1, 2, 3, 4, 5]


def test_failed_bind_is_rolled_back() -> None:
    cache = make(node("a"))
    cache.assume("u1", "default/p", "a", req(8), tuple(range(8)), None)
    assert free_gpus(cache, "a") == []
    assert cache.forget("u1", RecordState.ASSUMED) is not None
    assert free_gpus(cache, "a") == list(range(8))


def test_rollback_never_drops_what_the_watch_confirmed() -> None:
    cache = make(node("a"))
    p = pod("p", 1, node_name="a", annotations={"gpuplace.io/gpus": "3"})
    uid = p["metadata"]["uid"]
    cache.assume(uid, "default/p", "a", req(1), (3,), None)
    cache.upsert_pod(p)
    assert cache.forget(uid, RecordState.ASSUMED) is None
    assert 3 not in free_gpus(cache, "a")


def test_a_nomination_lapses_after_its_ttl() -> None:
    clock = Clock()
    cache = make(node("a"), clock=clock)
    cache.nominate("u1", "default/p", "a", req(8), tuple(range(8)), None)
    assert free_gpus(cache, "a") == []
    clock.now += 31
    assert free_gpus(cache, "a") == list(range(8))
    assert cache.counts().expired == 1


def test_a_nomination_never_overrides_a_bound_pod() -> None:
    cache = make(node("a"), node("b"))
    p = pod("p", 2, node_name="a", annotations={"gpuplace.io/gpus": "0,1"})
    cache.upsert_pod(p)
    cache.nominate(p["metadata"]["uid"], "default/p", "b", req(2), (0, 1), None)
    assert free_gpus(cache, "b") == list(range(8))


def test_pending_update_of_a_pod_being_bound_keeps_its_record() -> None:
    """The watch may show the pod unbound (a status update) while /bind is in flight."""
    cache = make(node("a"))
    p = pod("p", 2)
    cache.assume(p["metadata"]["uid"], "default/p", "a", req(2), (0, 1), None)
    cache.upsert_pod(p)  # no nodeName yet
    assert free_gpus(cache, "a") == list(range(2, 8))


def test_finished_and_deleted_pods_free_their_gpus() -> None:
    cache = make(node("a"))
    done = pod("done", 4, node_name="a")
    gone = pod("gone", 4, node_name="a")
    cache.upsert_pod(done)
    cache.upsert_pod(gone)
    assert free_gpus(cache, "a") == []
    cache.upsert_pod({**done, "status": {"phase": "Succeeded"}})
    cache.delete_pod(gone)
    assert free_gpus(cache, "a") == list(range(8))


def test_relist_drops_vanished_pods_but_keeps_binds_newer_than_the_list() -> None:
    clock = Clock()
    cache = make(node("a"), clock=clock)
    cache.upsert_pod(pod("vanished", 2, node_name="a", annotations={"gpuplace.io/gpus": "0,1"}))
    cache.assume("old", "default/old", "a", req(2), (2, 3), None)
    list_started = clock.now + 1
    clock.now += 2
    cache.assume("new", "default/new", "a", req(2), (4, 5), None)
    cache.replace_pods([pod("listed", 1, node_name="a", annotations={"gpuplace.io/gpus": "7"})], list_started)
    assert free_gpus(cache, "a") == [0, 1, 2, 3, 6]


def test_node_changes_rebuild_the_cluster_and_keep_pod_accounting() -> None:
    cache = make(node("a"))
    cache.upsert_pod(pod("p", 2, node_name="b", annotations={"gpuplace.io/gpus": "0,1"}))
    cache.upsert_node(node("b", "NVIDIA-H100-NVL", 4))
    assert free_gpus(cache, "b") == [2, 3]
    with cache.view() as view:
        generation = view.generation
    cache.upsert_node(node("a"))  # unchanged: no rebuild
    with cache.view() as view:
        assert view.generation == generation
    cache.delete_node("a")
    with cache.view() as view:
        assert view.table is not None and view.table.names == ["b"] and view.generation == generation + 1


def test_node_that_loses_its_gpus_leaves_the_table() -> None:
    cache = make(node("a"), node("b"))
    cache.upsert_node(node("a", gpus=0))
    with cache.view() as view:
        assert view.table is not None and view.table.names == ["b"]


def test_unreadable_objects_are_skipped_and_counted() -> None:
    cache = make(node("a"))
    broken = node("b")
    broken["status"]["allocatable"]["nvidia.com/gpu"] = "eight"
    cache.upsert_node(broken)
    cache.upsert_pod(pod("p", 1, node_name="a", cpu="lots"))
    stats = cache.counts()
    assert stats.unreadable == {"node": 1, "pod": 1} and stats.gpu_nodes == 1


def test_group_placement_names_the_cliques_its_members_run_in() -> None:
    cache = make(node("g1", "NVIDIA-GB200", 4, clique="c1"), node("g2", "NVIDIA-GB200", 4, clique="c2"))
    member = pod("m0", 4, node_name="g2", annotations={"gpuplace.io/group": "lws/x"})
    cache.upsert_pod(member)
    with cache.view() as view:
        assert view.table is not None
        placed = view.group_placement("default/lws/x")
        assert placed.members == 1 and placed.cliques == frozenset({view.table.cliques.index("c2")})
        assert view.group_placement("default/lws/x", exclude_uid=member["metadata"]["uid"]).members == 0


def test_an_empty_cluster_has_no_table() -> None:
    cache = make()
    with cache.view() as view:
        assert view.cluster is None and view.table is None


def test_versions_go_up_only_on_rows_that_changed() -> None:
    cache = make(node("a"), node("b"))
    with cache.view() as view:
        assert view.cluster is not None
        before = view.cluster.version.copy()
    cache.upsert_pod(pod("p", 1, node_name="b"))
    with cache.view() as view:
        assert view.cluster is not None
        assert np.array_equal(view.cluster.version - before, [0, 1])


def test_free_summary_follows_every_change_of_the_rows() -> None:
    cache = make(node("a"), node("nvl", "NVIDIA-H100-NVL", 4), node("l4", "NVIDIA-L4", 4))
    cache.upsert_pod(pod("p", 2, node_name="a", annotations={"gpuplace.io/gpus": "3,4"}))
    cache.upsert_pod(pod("q", 1, node_name="nvl", annotations={"gpuplace.io/gpus": "2"}))
    cache.assume("r", "default/r", "l4", req(1), (0,), None)
    cache.nominate("s", "default/s", "nvl", req(1), (0,), None)
    with cache.view() as view:
        assert view.cluster is not None and view.free is not None
        expected = FreeSummary.of(view.cluster)
        assert view.free.whole.tolist() == expected.whole.tolist() == [6, 3, 2]
        assert view.free.block.tolist() == expected.block.tolist() == [6, 1, 1]


def test_nominated_then_bound_then_watched_keeps_the_row_untouched() -> None:
    cache = make(node("a"))
    p = pod("p", 2, node_name="a", annotations={"gpuplace.io/gpus": "2,3"})
    uid = p["metadata"]["uid"]
    cache.nominate(uid, "default/p", "a", req(2), (2, 3), None)
    with cache.view() as view:
        assert view.cluster is not None
        version = int(view.cluster.version[0])
    cache.assume(uid, "default/p", "a", req(2), (2, 3), None)
    cache.upsert_pod(p)
    with cache.view() as view:
        assert view.cluster is not None and int(view.cluster.version[0]) == version
    assert cache.record(uid).state is RecordState.WATCHED  # type: ignore[union-attr]
    assert free_gpus(cache, "a") == [0, 1, 4, 5, 6, 7]
    assert cache.counts().assumed == 0


def test_a_node_set_that_keeps_changing_is_rebuilt_at_most_once_per_interval() -> None:
    clock = Clock()
    cache = ClusterCache(CTX.gpus, clock=clock, min_rebuild_interval_s=1.0)
    cache.replace_nodes([node("a")])
    cache.replace_pods([], 0.0)
    with cache.view() as view:
        assert view.table is not None and view.table.names == ["a"]
    cache.upsert_node(node("b"))
    with cache.view() as view:
        assert view.table is not None and view.table.names == ["a"]  # "b" is unknown for now
    clock.now += 1.0
    with cache.view() as view:
        assert view.table is not None and view.table.names == ["a", "b"]


def test_gpu_pods_per_node_counts_only_gpu_pods_and_follows_deletions() -> None:
    cache = make(node("a"), node("b"))
    daemon = pod("daemon", 0, node_name="a")
    gpu = pod("gpu", 2, node_name="a")
    cache.upsert_pod(daemon)
    cache.upsert_pod(gpu)
    cache.assume("x", "default/x", "b", req(1), (0,), None)
    assert cache.gpu_pods_per_node() == {"a": 1, "b": 1}
    cache.delete_pod(gpu)
    cache.forget("x")
    assert cache.gpu_pods_per_node() == {}
