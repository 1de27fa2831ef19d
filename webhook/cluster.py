"""What the webhook reads from the API server: a namespace's mode label, an autoscaler's target, and the
DRA ResourceClaimTemplates / ResourceClaims a pod names.

Every read is bounded by a timeout and cached for a short TTL; a failure is reported to the caller as a
note, never raised into the request (design.md: one cached API read with a short timeout at most).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("gpuplace.webhook.cluster")

# kind -> (group, version, plural) for targets an autoscaler may scale.
TARGETS: Mapping[str, tuple[str, str, str]] = {
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "LeaderWorkerSet": ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"),
    "InferenceService": ("serving.kserve.io", "v1beta1", "inferenceservices"),
}
# DRA objects a pod's spec.resourceClaims names (resource.k8s.io/v1, GA since Kubernetes 1.34).
CLAIM_OBJECTS: Mapping[str, tuple[str, str, str]] = {
    "ResourceClaimTemplate": ("resource.k8s.io", "v1", "resourceclaimtemplates"),
    "ResourceClaim": ("resource.k8s.io", "v1", "resourceclaims"),
}
# The pod a claim made from a template belongs to (the DRA memory-floor mutation reads its stamps).
POD = {"Pod": ("", "v1", "pods")}


@dataclass
class _Entry:
    value: Any
    expires: float


class TtlCache:
    def __init__(self, ttl_s: float, max_entries: int = 2048) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._data: dict[tuple[str, ...], _Entry] = {}

    def get(self, key: tuple[str, ...]) -> tuple[bool, Any]:
        entry = self._data.get(key)
        if entry is None or entry.expires < time.monotonic():
            return False, None
        return True, entry.value

    def put(self, key: tuple[str, ...], value: Any) -> None:
        if len(self._data) >= self.max_entries:
            self._data.clear()  # small and short-lived: dropping all is simpler than LRU and as safe
        self._data[key] = _Entry(value, time.monotonic() + self.ttl_s)


Fetch = Callable[[str, str, str, str, str], dict[str, Any]]  # group, version, plural, ns, name -> object


class ClusterReader:
    """Bounded, cached reads. `fetch` does the blocking GET (the official client in production)."""

    def __init__(
        self,
        fetch_object: Fetch,
        fetch_namespace: Callable[[str], dict[str, Any]],
        timeout_s: float,
        ttl_s: float,
    ) -> None:
        self._fetch_object, self._fetch_namespace = fetch_object, fetch_namespace
        self.timeout_s = timeout_s
        self._cache = TtlCache(ttl_s)

    async def namespace_labels(self, name: str) -> tuple[dict[str, str] | None, str]:
        hit, value = self._cache.get(("ns", name))
        if hit:
            return value, ""
        try:
            obj = await asyncio.wait_for(asyncio.to_thread(self._fetch_namespace, name), self.timeout_s)
        except Exception as exc:  # any API failure degrades to the default mode
            return None, _why(exc, self.timeout_s)
        labels = dict((obj.get("metadata") or {}).get("labels") or {})
        self._cache.put(("ns", name), labels)
        return labels, ""

    async def target(self, kind: str, namespace: str, name: str) -> tuple[dict[str, Any] | None, str]:
        if kind not in TARGETS:
            return None, f"target kind {kind} is not one gpuplace reads"
        return await self._object(TARGETS, kind, namespace, name, "target")

    async def claim(self, kind: str, namespace: str, name: str) -> tuple[dict[str, Any] | None, str]:
        """A ResourceClaimTemplate or ResourceClaim; on failure the workload's tier is unknown and says so."""
        if kind not in CLAIM_OBJECTS:
            return None, f"{kind} is not a DRA claim kind"
        return await self._object(CLAIM_OBJECTS, kind, namespace, name, f"{kind} {name}")

    async def pod(self, namespace: str, name: str) -> tuple[dict[str, Any] | None, str]:
        return await self._object(POD, "Pod", namespace, name, f"Pod {name}")

    async def _object(
        self, table: Mapping[str, tuple[str, str, str]], kind: str, namespace: str, name: str, what: str
    ) -> tuple[dict[str, Any] | None, str]:
        hit, value = self._cache.get(("obj", kind, namespace, name))
        if hit:
            return value, ""
        group, version, plural = table[kind]
        try:
            obj = await asyncio.wait_for(
                asyncio.to_thread(self._fetch_object, group, version, plural, namespace, name), self.timeout_s
            )
        except Exception as exc:  # not found, forbidden, timeout: the check runs on defaults and says so
            return None, f"{what} lookup failed: {_why(exc, self.timeout_s)}"
        obj.setdefault("kind", kind)
        self._cache.put(("obj", kind, namespace, name), obj)
        return obj, ""


def _why(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"timed out after {timeout_s:g}s"
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status:
        return f"HTTP {status} {reason or ''}".strip()
    return type(exc).__name__


def kubernetes_reader(kubeconfig: str | None, timeout_s: float, ttl_s: float) -> ClusterReader:
    """A reader on the official client: in-cluster config, else the given kubeconfig / $KUBECONFIG."""
    from kubernetes import client

    from common.kube import configure

    configure(kubeconfig)
    api = client.ApiClient()
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)

    def fetch_object(group: str, version: str, plural: str, ns: str, name: str) -> dict[str, Any]:
        if not group and plural == "pods":  # the core group: /api/v1, as plain JSON like the rest
            resp: Any = core.read_namespaced_pod(name, ns, _preload_content=False, _request_timeout=timeout_s)
            pod = json.loads(resp.data)
            if not isinstance(pod, dict):
                raise TypeError(f"unexpected {type(pod).__name__} from the API")
            return pod
        # The generic path /apis/{group}/{version}/namespaces/{ns}/{plural}/{name} serves apps/v1 too,
        # and returns plain JSON (the same shape the admission request carries).
        obj = custom.get_namespaced_custom_object(
            group, version, ns, plural, name, _request_timeout=timeout_s
        )
        if not isinstance(obj, dict):
            raise TypeError(f"unexpected {type(obj).__name__} from the API")
        return obj

    def fetch_namespace(name: str) -> dict[str, Any]:
        ns = core.read_namespace(name, _request_timeout=timeout_s)
        labels = ns.metadata.labels if ns.metadata else None
        return {"metadata": {"labels": labels or {}}}

    return ClusterReader(fetch_object, fetch_namespace, timeout_s, ttl_s)
