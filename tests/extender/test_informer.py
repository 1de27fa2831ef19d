"""List+watch against a scripted source: pages, events, 410 Gone -> relist, errors -> backoff, stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from extender.cache.cluster_cache import ClusterCache
from extender.cache.informer import GoneError, Informer, NodeHandler, PodHandler
from placement.checks.settings import CheckContext
from tests.extender.objects import node, pod

CTX = CheckContext.default()


class Stream:
    def __init__(self, events: list[dict[str, Any]], block: threading.Event | None = None) -> None:
        self.events = events
        self.block = block
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self.events
        if self.block is not None:  # a watch that stays open until closed
            self.block.wait(5)

    def close(self) -> None:
        self.closed = True
        if self.block is not None:
            self.block.set()


class ScriptedSource:
    """Serves lists and watches from a script; records what was asked. Once the script is used up, a
    watch blocks until stop() and `done` is set."""

    kind = "nodes"

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.list_calls: list[str | None] = []
        self.watch_calls: list[str] = []
        self.done = threading.Event()

    def list(self, *, limit: int, continue_token: str | None) -> dict[str, Any]:
        self.list_calls.append(continue_token)
        pages = self.lists[0]
        index = int(continue_token or 0)
        page = pages[index]
        if index + 1 == len(pages):
            self.lists.pop(0)
        return page

    def watch(self, *, resource_version: str, timeout_s: int) -> Stream:
        self.watch_calls.append(resource_version)
        if not self.watches:
            self.done.set()
            return Stream([], block=threading.Event())
        step = self.watches.pop(0)
        if isinstance(step, Exception):
            raise step
        return Stream(step)


def page(items: list[dict[str, Any]], rv: str, cont: str | None = None) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": rv, **({"continue": cont} if cont else {})}, "items": items}


def event(kind: str, obj: dict[str, Any], rv: str) -> dict[str, Any]:
    obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": rv}}
    return {"type": kind, "object": obj}


def run(source: ScriptedSource, handler: Any, **kw: Any) -> Informer:
    informer = Informer(source, handler, backoff_initial_s=0.001, backoff_max_s=0.002, **kw)
    informer.start()
    assert source.done.wait(5), "the informer did not get through the script"
    informer.stop()
    assert not informer.alive()
    return informer


def test_lists_every_page_then_watches_from_the_list_version() -> None:
    cache = ClusterCache(CTX.gpus)
    source = ScriptedSource([[page([node("a")], "", cont="1"), page([node("b")], "10")]], [])
    informer = run(source, NodeHandler(cache))
    assert source.list_calls == [None, "1"]
    assert source.watch_calls == ["10"]
    assert cache.nodes_synced and informer.synced.is_set()
    with cache.view() as view:
        assert view.table is not None and view.table.names == ["a", "b"]


def test_events_update_the_cache_and_the_watch_resumes_from_the_last_version() -> None:
    cache = ClusterCache(CTX.gpus)
    a = node("a")
    source = ScriptedSource([[page([a], "10")]], [
        [event("ADDED", node("b"), "11"),
         {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}],
        [event("DELETED", a, "16")],
    ])
    informer = run(source, NodeHandler(cache))
    assert source.watch_calls == ["10", "15", "16"]
    assert informer.events == 2
    with cache.view() as view:
        assert view.table is not None and view.table.names == ["b"]
    assert cache.counts().nodes == 1


def test_gone_as_an_event_relists() -> None:
    cache = ClusterCache(CTX.gpus)
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
    restarts: list[tuple[str, str]] = []
    source = ScriptedSource([[page([node("a")], "10")], [page([node("c")], "20")]], [[gone]])
    informer = run(source, NodeHandler(cache), on_restart=lambda k, r: restarts.append((k, r)))
    assert informer.lists == 2 and source.watch_calls == ["10", "20"]
    assert restarts == [("nodes", "gone")]
    with cache.view() as view:
        assert view.table is not None and view.table.names == ["c"]


def test_gone_as_a_status_relists() -> None:
    cache = ClusterCache(CTX.gpus)
    source = ScriptedSource([[page([], "10")], [page([], "30")]], [GoneError("410")])
    informer = run(source, NodeHandler(cache))
    assert informer.lists == 2 and source.watch_calls == ["10", "30"]


def test_connection_errors_back_off_and_resume_without_relisting() -> None:
    cache = ClusterCache(CTX.gpus)
    restarts: list[str] = []
    source = ScriptedSource([[page([], "10")]], [ConnectionResetError("reset"), OSError("refused"),
                                                  [event("ADDED", node("a"), "12")]])
    informer = run(source, NodeHandler(cache), on_restart=lambda k, r: restarts.append(r))
    assert informer.lists == 1
    assert source.watch_calls == ["10", "10", "10", "12"]
    assert restarts == ["error", "error"]


def test_a_bad_object_does_not_stop_the_informer() -> None:
    cache = ClusterCache(CTX.gpus)
    source = ScriptedSource([[page([], "1")]], [[{"type": "ADDED", "object": {"metadata": "nonsense"}},
                                                 event("ADDED", node("a"), "3")]])
    run(source, NodeHandler(cache))
    with cache.view() as view:
        assert view.table is not None and view.table.names == ["a"]


def test_pod_handler_reports_bound_pods_once() -> None:
    cache = ClusterCache(CTX.gpus)
    cache.replace_nodes([node("a")])
    seen: list[str] = []
    handler = PodHandler(cache, on_bound=lambda p: seen.append(p["metadata"]["name"]))
    running = pod("running", 1, node_name="a")
    handler.on_list([running], 0.0)
    handler.on_event("ADDED", pod("new", 1, node_name="a"))
    handler.on_event("MODIFIED", pod("new", 1, node_name="a"))
    handler.on_list([running], 1.0)  # a relist does not count the cluster again
    assert seen == ["running", "new"]


@pytest.mark.parametrize("kind", ["nodes", "pods"])
def test_stop_closes_an_open_watch(kind: str) -> None:
    cache = ClusterCache(CTX.gpus)
    source = ScriptedSource([[page([], "1")]], [])
    source.kind = kind
    handler = NodeHandler(cache) if kind == "nodes" else PodHandler(cache)
    informer = Informer(source, handler).start()
    assert source.done.wait(5)
    informer.stop(timeout=5)
    assert not informer.alive()
