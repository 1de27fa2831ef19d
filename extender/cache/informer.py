"""List+watch of Nodes and Pods with the official `kubernetes` client, feeding the ClusterCache.

One thread per resource. Each lists (in pages), hands the whole list to the cache, then watches from the
list's resourceVersion with bookmarks. The watch ends every `watch_timeout_s` (the server closes it) and
is resumed from the last resourceVersion seen. `410 Gone` (the version is too old, as an ERROR event or
an HTTP status) means relist. Any other failure waits with exponential backoff and jitter
(`backoff_initial_s` doubling up to `backoff_max_s`, reset once events flow again) and resumes.

Responses are read raw (`_preload_content=False`) and parsed with `json`: the client's model
deserialization costs about a millisecond per Pod, which a burst of binds cannot afford.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from extender.cache.cluster_cache import ClusterCache

log = logging.getLogger("gpuplace.extender.informer")

# kube-scheduler's own pod informer leaves out finished pods; the extender only needs bound ones.
POD_FIELD_SELECTOR = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"


class GoneError(Exception):
    """The resourceVersion is too old (HTTP 410): relist."""


class WatchStream(Protocol):
    def __iter__(self) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


class Source(Protocol):
    """Where a resource is listed and watched from (the API server, or a fake in tests)."""

    kind: str

    def list(self, *, limit: int, continue_token: str | None) -> dict[str, Any]: ...

    def watch(self, *, resource_version: str, timeout_s: int) -> WatchStream: ...


class Handler(Protocol):
    def on_list(self, items: list[dict[str, Any]], started_at: float) -> None: ...

    def on_event(self, kind: str, obj: dict[str, Any]) -> None: ...


# ---- the API server as a Source ------------------------------------------------------------------------
def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


class _RawWatch:
    """The lines of a streaming watch response, parsed one JSON event per line."""

    def __init__(self, response: Any) -> None:
        self.response = response

    def __iter__(self) -> Iterator[dict[str, Any]]:
        buffer = b""
        for chunk in self.response.stream(amt=None, decode_content=True):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line)
        if buffer.strip():
            yield json.loads(buffer)

    def close(self) -> None:
        """Unblock a reader in another thread (shutdown) and give the connection back."""
        for method in ("shutdown", "close", "release_conn"):
            fn = getattr(self.response, method, None)
            if fn is not None:
                with contextlib.suppress(Exception):  # races with the reader, or already closed: fine
                    fn()


class KubeSource:
    """A list/watch function of `kubernetes.client.CoreV1Api` (list_node, list_pod_for_all_namespaces)."""

    def __init__(self, kind: str, call: Callable[..., Any], field_selector: str | None = None,
                 request_timeout_s: float = 60.0) -> None:
        self.kind = kind
        self.call = call
        self.field_selector = field_selector
        self.request_timeout_s = request_timeout_s

    def _kwargs(self) -> dict[str, Any]:
        return {"field_selector": self.field_selector} if self.field_selector else {}

    def list(self, *, limit: int, continue_token: str | None) -> dict[str, Any]:
        kwargs = self._kwargs()
        if continue_token:
            kwargs["_continue"] = continue_token
        try:
            resp = self.call(limit=limit, _preload_content=False, _request_timeout=self.request_timeout_s,
                             **kwargs)
        except Exception as exc:
            if _status_of(exc) == 410:
                raise GoneError(f"{self.kind} list continue token expired") from exc
            raise
        try:
            data: dict[str, Any] = json.loads(resp.data)
        finally:
            resp.release_conn()
        return data

    def watch(self, *, resource_version: str, timeout_s: int) -> WatchStream:
        try:
            resp = self.call(watch=True, resource_version=resource_version, allow_watch_bookmarks=True,
                             timeout_seconds=timeout_s, _preload_content=False,
                             _request_timeout=(10.0, timeout_s + 30.0), **self._kwargs())
        except Exception as exc:
            if _status_of(exc) == 410:
                raise GoneError(f"{self.kind} watch from {resource_version}: too old") from exc
            raise
        return _RawWatch(resp)


# ---- the loop ---------------------------------------------------------------------------------------------
class Informer:
    """list, then watch, forever (until `stop()`), in a daemon thread."""

    def __init__(self, source: Source, handler: Handler, *, page_size: int = 500, watch_timeout_s: int = 300,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0,
                 on_restart: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.handler = handler
        self.page_size = page_size
        self.watch_timeout_s = watch_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.on_restart = on_restart
        self.clock = clock
        self.synced = threading.Event()
        self.resource_version: str | None = None
        self.lists = 0
        self.events = 0
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._thread: threading.Thread | None = None

    @property
    def kind(self) -> str:
        return self.source.kind

    def start(self) -> Informer:
        self._thread = threading.Thread(target=self.run, name=f"informer-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def _restart(self, reason: str, detail: str) -> None:
        if self.on_restart is not None:
            self.on_restart(self.kind, reason)
        log.info("%s watch restarts (%s): %s", self.kind, reason, detail)

    def list_all(self) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self.source.list(limit=self.page_size, continue_token=token)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    def run(self) -> None:
        backoff = self.backoff_initial_s
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    started = self.clock()
                    items, rv = self.list_all()
                    self._handle(functools.partial(self.handler.on_list, items, started))
                    self.resource_version = rv
                    self.lists += 1
                    self.synced.set()
                    log.info("%s: listed %d, watching from resourceVersion %s", self.kind, len(items), rv)
                self._watch_once()
                backoff = self.backoff_initial_s
            except GoneError as exc:
                self.resource_version = None
                self._restart("gone", str(exc))
            except Exception as exc:
                if self._stop.is_set():
                    break
                if _status_of(exc) == 410:
                    self.resource_version = None
                    self._restart("gone", str(exc))
                    continue
                delay = backoff * (0.5 + random.random())
                self._restart("error", f"{type(exc).__name__}: {str(exc)[:200]}; retrying in {delay:.1f}s")
                self._stop.wait(delay)
                backoff = min(backoff * 2, self.backoff_max_s)

    def _watch_once(self) -> None:
        assert self.resource_version is not None
        stream = self.source.watch(resource_version=self.resource_version, timeout_s=self.watch_timeout_s)
        self._stream = stream
        try:
            for event in stream:
                if self._stop.is_set():
                    return
                kind = str(event.get("type", "")) if isinstance(event, dict) else ""
                obj = event.get("object") if isinstance(event, dict) else None
                if not isinstance(obj, dict):
                    log.warning("%s: ignoring a watch event without an object: %.200r", self.kind, event)
                    continue
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise GoneError(str(obj.get("message", "resourceVersion too old")))
                    raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
                meta = obj.get("metadata")
                rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
                if kind != "BOOKMARK":
                    self._handle(functools.partial(self.handler.on_event, kind, obj))
                    self.events += 1
                if rv:
                    self.resource_version = str(rv)
        finally:
            self._stream = None
            stream.close()

    def _handle(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # a bad object must not stop the informer
            log.exception("%s: handling an update failed", self.kind)


# ---- handlers that feed the cache -----------------------------------------------------------------------
class NodeHandler:
    def __init__(self, cache: ClusterCache) -> None:
        self.cache = cache

    def on_list(self, items: list[dict[str, Any]], started_at: float) -> None:
        self.cache.replace_nodes(items)

    def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.cache.add_node_count(-1)
            self.cache.delete_node(str((obj.get("metadata") or {}).get("name", "")))
            return
        if kind == "ADDED":
            self.cache.add_node_count(1)
        self.cache.upsert_node(obj)


class PodHandler:
    """Feeds bound pods to the cache; `on_bound` sees each pod once when it gets bound (and, on the
    first list only, the pods already running), for the shapes recent pods ask for."""

    def __init__(self, cache: ClusterCache,
                 on_bound: Callable[[Mapping[str, Any]], None] | None = None) -> None:
        self.cache = cache
        self.on_bound = on_bound
        self._listed = False

    def on_list(self, items: list[dict[str, Any]], started_at: float) -> None:
        self.cache.replace_pods(items, started_at)
        if self.on_bound is not None and not self._listed:
            for obj in items:
                self.on_bound(obj)
        self._listed = True

    def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.cache.delete_pod(obj)
            return
        self.cache.upsert_pod(obj)
        if kind == "ADDED" and self.on_bound is not None:
            self.on_bound(obj)


class ObjectHandler:
    """Feeds one kind of object to the cache through its replace / upsert / delete methods (the DRA kinds:
    ResourceSlices are the GPUs of nodes without allocatable nvidia.com/gpu, ResourceClaims the GPUs pods
    hold through claims)."""

    def __init__(self, replace: Callable[[list[dict[str, Any]]], None],
                 upsert: Callable[[dict[str, Any]], None], delete: Callable[[dict[str, Any]], None]) -> None:
        self.replace, self.upsert, self.delete = replace, upsert, delete

    def on_list(self, items: list[dict[str, Any]], started_at: float) -> None:
        self.replace(items)

    def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        (self.delete if kind == "DELETED" else self.upsert)(obj)


def slice_handler(cache: ClusterCache) -> ObjectHandler:
    return ObjectHandler(cache.replace_slices, cache.upsert_slice, cache.delete_slice)


def claim_handler(cache: ClusterCache) -> ObjectHandler:
    return ObjectHandler(cache.replace_claims, cache.upsert_claim, cache.delete_claim)


def dra_sources(api_client_factory: Callable[[], Any]) -> tuple[KubeSource, KubeSource]:
    """(ResourceSlices, ResourceClaims) of resource.k8s.io/v1 (GA since Kubernetes 1.34)."""
    from kubernetes import client as k8s

    slices = KubeSource("resourceslices", k8s.ResourceV1Api(api_client_factory()).list_resource_slice)
    claims = KubeSource("resourceclaims",
                        k8s.ResourceV1Api(api_client_factory()).list_resource_claim_for_all_namespaces)
    return slices, claims


def kube_sources(api_client_factory: Callable[[], Any]) -> tuple[KubeSource, KubeSource]:
    """(Nodes, Pods) sources on their own API clients (one connection pool per thread)."""
    from kubernetes import client as k8s

    nodes = KubeSource("nodes", k8s.CoreV1Api(api_client_factory()).list_node)
    pods = KubeSource("pods", k8s.CoreV1Api(api_client_factory()).list_pod_for_all_namespaces,
                      field_selector=POD_FIELD_SELECTOR)
    return nodes, pods
