"""Talking to the API server with the official `kubernetes` client: configuration and the binder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from extender.core import BindError


class KubeConfigError(Exception):
    """No usable credentials; the message says what was tried."""


def client_factory(kubeconfig: str | None = None, context: str | None = None,
                   pool_size: int = 32) -> tuple[Callable[[], Any], str]:
    """A function making `kubernetes.client.ApiClient`s, and where the credentials came from.

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

    def make() -> Any:
        return k8s.ApiClient(configuration)

    return make, where


def _reason(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    status = getattr(exc, "status", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return f"{status} {message}"
    return f"{status or ''} {getattr(exc, 'reason', '') or exc}".strip()


class ApiBinder:
    """pods/binding through the API server (the way kube-scheduler's DefaultBinder binds), with the
    pod's UID as a precondition and annotations the server copies onto the pod."""

    def __init__(self, api_client: Any, timeout_s: float = 4.0) -> None:
        from kubernetes import client as k8s

        self.api: Any = k8s.CoreV1Api(api_client)
        self.timeout_s = timeout_s

    def bind(self, namespace: str, name: str, uid: str, node: str, annotations: Mapping[str, str]) -> None:
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if uid:
            metadata["uid"] = uid
        if annotations:
            metadata["annotations"] = dict(annotations)
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": metadata,
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            # _preload_content=False: the client cannot deserialize the Status the server answers with.
            resp = self.api.create_namespaced_pod_binding(name, namespace, body, _preload_content=False,
                                                          _request_timeout=self.timeout_s)
            resp.release_conn()
        except Exception as exc:
            raise BindError(_reason(exc)) from exc

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            resp = self.api.read_namespaced_pod(name, namespace, _preload_content=False,
                                                _request_timeout=self.timeout_s)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise BindError(_reason(exc)) from exc
        try:
            pod: dict[str, Any] = json.loads(resp.data)
        finally:
            resp.release_conn()
        return pod
