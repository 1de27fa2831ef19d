"""One way to reach the API server for every command: the kubeconfig given, else the in-cluster service
account, else $KUBECONFIG / ~/.kube/config. Raises the client's ConfigException or OSError."""

from __future__ import annotations


def configure(kubeconfig: str | None, context: str | None = None) -> None:
    """`context` picks a kubeconfig context (default: the current one); it implies a kubeconfig."""
    from kubernetes import config

    if kubeconfig or context:
        config.load_kube_config(config_file=kubeconfig, context=context)
        return
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
