"""Read the cluster for a scan: lists only (get/list verbs), never secrets, never exec.

Every list is paged (`limit`/`continue`) and read as raw JSON (the client's model classes are far slower
on 20,000 pods and not needed: placement reads the same dicts `kubectl get -o json` prints). What cannot
be read is recorded once in `Inventory.gaps` and the scan goes on:
- a kind whose API the cluster does not serve (404: KEDA, KServe, LWS, Knative not installed) is noted as
  absent, not an error;
- a 403 on an all-namespaces list falls back to one list per namespace; each namespace still refused is
  said once, with the kinds it refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from scan.inventory import KNATIVE_SERVICE, Inventory

PAGE = 500
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Kind:
    key: str  # Inventory key
    kind: str  # the object's kind
    api_version: str  # group/version ("v1" for core)
    plural: str
    namespaced: bool = True
    field_selector: str = ""


# What a scan reads. Events only for the kinds whose scale events count (thrashing).
KINDS: tuple[Kind, ...] = (
    Kind("Node", "Node", "v1", "nodes", namespaced=False),
    Kind("Pod", "Pod", "v1", "pods"),
    Kind("ReplicaSet", "ReplicaSet", "apps/v1", "replicasets"),
    Kind("Deployment", "Deployment", "apps/v1", "deployments"),
    Kind("StatefulSet", "StatefulSet", "apps/v1", "statefulsets"),
    Kind("Job", "Job", "batch/v1", "jobs"),
    Kind("CronJob", "CronJob", "batch/v1", "cronjobs"),
    Kind("HorizontalPodAutoscaler", "HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers"),
    Kind("ScaledObject", "ScaledObject", "keda.sh/v1alpha1", "scaledobjects"),
    Kind("LeaderWorkerSet", "LeaderWorkerSet", "leaderworkerset.x-k8s.io/v1", "leaderworkersets"),
    Kind("InferenceService", "InferenceService", "serving.kserve.io/v1beta1", "inferenceservices"),
    Kind(KNATIVE_SERVICE, "Service", "serving.knative.dev/v1", "services"),
    Kind("ResourceClaim", "ResourceClaim", "resource.k8s.io/v1", "resourceclaims"),
    Kind("ResourceClaimTemplate", "ResourceClaimTemplate", "resource.k8s.io/v1", "resourceclaimtemplates"),
    *(Kind("Event", "Event", "v1", "events", field_selector=f"involvedObject.kind={k}")
      for k in ("HorizontalPodAutoscaler", "Deployment", "ScaledObject")),
)


class ClusterUnreachable(Exception):
    """The API server cannot be reached at all (no scan is possible)."""


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


Getter = Callable[[str, list[tuple[str, str]]], dict[str, Any]]


class KubeApi:
    """GET (and, for --report only, apply and delete) API server paths as JSON through the official
    client's configuration and auth (kubeconfig, context, or the in-cluster service account)."""

    def __init__(self, kubeconfig: str | None, context: str | None, timeout_s: float = TIMEOUT_S) -> None:
        from kubernetes import client, config

        from common.kube import configure

        try:
            configure(kubeconfig, context)
        except (config.ConfigException, OSError, TypeError, ValueError) as exc:
            raise ClusterUnreachable(f"no usable Kubernetes credentials: {exc}") from None
        self._client = client
        self._api = client.ApiClient()
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, query: list[tuple[str, str]] | None = None,
                body: Any = None, content_type: str = "application/json") -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        method, url, headers, data, _ = self._api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body,
            auth_settings=["BearerToken"])
        try:
            resp = self._api.call_api(method, url, headers, data, _request_timeout=self.timeout_s)
            resp.read()
        except self._client.ApiException as exc:
            raise ClusterUnreachable(f"API server: {exc.reason}") from None
        except OSError as exc:
            raise ClusterUnreachable(f"API server: {exc}") from None
        if resp.status >= 400:
            raise ApiError(resp.status, _message(resp.data))
        doc = json.loads(resp.data or b"{}")
        if not isinstance(doc, dict):
            raise ApiError(500, f"unexpected {type(doc).__name__} from {path}")
        return doc

    def get(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        return self.request("GET", path, query)


def _message(body: bytes | None) -> str:
    try:
        message = json.loads(body or b"{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or (body or b"")[:200].decode(errors="replace").strip() or "no message")


def _path(k: Kind, namespace: str | None) -> str:
    base = f"/api/{k.api_version}" if k.api_version == "v1" else f"/apis/{k.api_version}"
    return f"{base}/namespaces/{namespace}/{k.plural}" if namespace and k.namespaced else f"{base}/{k.plural}"


def _pages(get: Getter, k: Kind, namespace: str | None) -> Iterator[list[dict[str, Any]]]:
    token = ""
    while True:
        query = [("limit", str(PAGE))]
        if token:
            query.append(("continue", token))
        if k.field_selector:
            query.append(("fieldSelector", k.field_selector))
        doc = get(_path(k, namespace), query)
        items = doc.get("items") or []
        for item in items:  # list items carry no kind; placement reads it
            item["kind"], item["apiVersion"] = k.kind, k.api_version
            # Server-side apply bookkeeping, often the larger part of an object: nothing reads it, and
            # dropping it page by page keeps a 20,000-pod scan's memory down.
            (item.get("metadata") or {}).pop("managedFields", None)
        yield items
        token = str((doc.get("metadata") or {}).get("continue") or "")
        if not token:
            return


def _list(get: Getter, k: Kind, namespace: str | None) -> list[dict[str, Any]]:
    return [item for page in _pages(get, k, namespace) for item in page]


def collect(get: Getter, namespace: str | None = None,
            progress: Callable[[str], None] | None = None) -> Inventory:
    """Everything a scan needs, from the cluster behind `get`. `namespace` limits namespaced kinds."""
    inv = Inventory(namespace=namespace)
    say = progress or (lambda _msg: None)
    denied: dict[str, list[str]] = {}
    namespaces: list[str] | None = None
    for k in KINDS:
        say(f"listing {k.plural}" + (f" ({k.field_selector})" if k.field_selector else ""))
        # Pods are listed cluster-wide even for one namespace: whether a node is dark, or its GPUs free,
        # depends on every pod on it. Discovery keeps to the namespace (Inventory.namespace).
        scope = None if k.key == "Pod" else namespace
        try:
            inv.add(k.key, _list(get, k, scope))
            continue
        except ApiError as exc:
            if exc.status == 404:
                if k.key not in inv.absent:
                    inv.absent.append(k.key)
                continue
            if k.key == "Pod" and namespace and exc.status == 403:
                inv.pods_complete = False  # only this namespace's pods: node occupancy unknown
                inv.add(k.key, _list_or_gap(get, k, namespace, inv))
                continue
            if exc.status != 403 or not k.namespaced or namespace:
                inv.gap(f"{k.plural}{' in ' + namespace if namespace else ''}: {exc}")
                if k.key == "Pod":
                    inv.pods_complete = False
                continue
        if namespaces is None:
            namespaces = _namespaces(get, inv)
        for ns in namespaces:
            try:
                inv.add(k.key, _list(get, k, ns))
            except ApiError as exc:
                denied.setdefault(ns, []).append(f"{k.plural} ({exc.status})")
                if k.key == "Pod":
                    inv.pods_complete = False
    for ns in sorted(denied):
        inv.gap(f"namespace {ns}: cannot list {', '.join(dict.fromkeys(denied[ns]))}")
    if any(g.startswith("nodes:") for g in inv.gaps):
        inv.gap("without nodes: no dark-capacity, fragmentation or spend figures")
    return inv


def _list_or_gap(get: Getter, k: Kind, namespace: str, inv: Inventory) -> list[dict[str, Any]]:
    try:
        return _list(get, k, namespace)
    except ApiError as exc:
        inv.gap(f"{k.plural} in {namespace}: {exc}")
        return []


def _namespaces(get: Getter, inv: Inventory) -> list[str]:
    try:
        items = _list(get, Kind("Namespace", "Namespace", "v1", "namespaces", namespaced=False), None)
    except ApiError as exc:
        inv.gap(f"namespaces: {exc}; only what the all-namespaces lists returned is scanned")
        return []
    return sorted(str((i.get("metadata") or {}).get("name")) for i in items)
