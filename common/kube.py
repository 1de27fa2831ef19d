"""One way to reach the API server for every command: the kubeconfig given, else the in-cluster service
account, else $KUBECONFIG / ~/.kube/config. Raises the client's ConfigException or OSError."""

from __future__ import annotations


def configure(kubeconfig: str | None) -> None:
    from kubernetes import config

    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig)
        return
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
