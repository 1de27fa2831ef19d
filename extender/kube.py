"""Talking to the API server: credentials through the official `kubernetes` client, and the binder.

The informers use the official client's API objects (in their own threads). Binds use an aiohttp
session with the same host, TLS material and bearer token (refreshed through the client's
`refresh_api_key_hook`, so in-cluster token rotation and exec credential plugins keep working), on an
event loop of their own in one thread: the request/response work of the binds in flight then never
queues in front of the next /filter on the server's loop, and there is no thread per bind.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import threading
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from extender.core import BindError

_T = TypeVar("_T")


class KubeConfigError(Exception):
    """No usable credentials; the message says what was tried."""


def load_configuration(kubeconfig: str | None = None, context: str | None = None,
                       pool_size: int = 32) -> tuple[Any, str]:
    """A `kubernetes.client.Configuration`, and where the credentials came from.

    Precedence: --kubeconfig, $KUBECONFIG, the in-cluster service account, ~/.kube/config."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    configuration = k8s.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if path:
            k8s_config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
            where = f"kubeconfig {path}"
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)
            where = "in-cluster service account"
        else:
            default = Path.home() / ".kube" / "config"
            k8s_config.load_kube_config(config_file=str(default), context=context,
                                        client_configuration=configuration)
            where = f"kubeconfig {default}"
    except (k8s_config.ConfigException, OSError, TypeError, ValueError) as exc:
        raise KubeConfigError(f"no usable Kubernetes credentials: {exc}") from exc
    configuration.connection_pool_maxsize = pool_size
    return configuration, where


def client_factory(configuration: Any) -> Callable[[], Any]:
    """A function making `kubernetes.client.ApiClient`s on this configuration (one per thread)."""
    from kubernetes import client as k8s

    def make() -> Any:
        return k8s.ApiClient(configuration)

    return make


def _ssl_context(configuration: Any) -> ssl.SSLContext:
    if configuration.verify_ssl:
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    return context


def _reason(status: int, body: bytes) -> str:
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{status} {message or body[:200].decode(errors='replace').strip()}"


class ApiBinder:
    """pods/binding through the API server (as kube-scheduler's DefaultBinder binds), with the pod's UID
    as a precondition and annotations the server copies onto the pod in the same write."""

    def __init__(self, configuration: Any, timeout_s: float = 4.0) -> None:
        self.configuration = configuration
        self.host = str(configuration.host).rstrip("/")
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _binder_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="gpuplace-binder", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    async def _on_binder_loop(self, coro: Coroutine[Any, Any, _T]) -> _T:
        future = asyncio.run_coroutine_threadsafe(coro, self._binder_loop())
        return await asyncio.wrap_future(future)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "gpuplace-extender"}
        token = self.configuration.get_api_key_with_prefix("authorization")
        if token:
            headers["Authorization"] = token
        elif self.configuration.username and self.configuration.password:
            headers["Authorization"] = self.configuration.get_basic_auth_token()
        return headers

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=_ssl_context(self.configuration), limit=64)
            self._session = aiohttp.ClientSession(connector=connector,
                                                  timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        kwargs: dict[str, Any] = {"headers": self._headers()}
        if body is not None:
            kwargs["data"] = json.dumps(body).encode()
        if self.configuration.proxy:
            kwargs["proxy"] = self.configuration.proxy
        if getattr(self.configuration, "tls_server_name", None):
            kwargs["server_hostname"] = self.configuration.tls_server_name
        try:
            async with self._client().request(method, self.host + path, **kwargs) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise BindError(f"{type(exc).__name__}: {exc}") from exc

    async def bind(self, namespace: str, name: str, uid: str, node: str,
                   annotations: Mapping[str, str]) -> None:
        await self._on_binder_loop(self._bind(namespace, name, uid, node, annotations))

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._on_binder_loop(self._get_pod(namespace, name))

    async def _bind(self, namespace: str, name: str, uid: str, node: str,
                    annotations: Mapping[str, str]) -> None:
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if uid:
            metadata["uid"] = uid
        if annotations:
            metadata["annotations"] = dict(annotations)
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": metadata,
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"
        status, data = await self._request("POST", path + "/binding", body)
        if status >= 300:
            raise BindError(_reason(status, data))

    async def _get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        status, data = await self._request(
            "GET", f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}")
        if status == 404:
            return None
        if status >= 300:
            raise BindError(_reason(status, data))
        pod: dict[str, Any] = json.loads(data)
        return pod

    async def close(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if self._session is not None:
            await self._on_binder_loop(self._session.close())
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop = None
