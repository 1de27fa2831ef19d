"""gpuplace's own servers as local processes for e2e tests: the webhook (HTTPS, the harness CA) and the
scheduler extender, each run as `python -m gpuplace ...` against the harness API server."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.harness import ControlPlane

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalWebhook:
    def __init__(self, cp: ControlPlane, work: Path, env: Mapping[str, str] | None = None) -> None:
        """`env`: extra environment, e.g. GPUPLACE_WEBHOOK__NATIVE_CONSTRAINTS=true (config overrides)."""
        self.cp, self.work = cp, work
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.pair = cp.ca.issue_serving_cert("gpuplace-webhook-e2e")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.work / "webhook.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gpuplace",
                "webhook",
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--cert-file",
                str(self.pair.cert_path),
                "--key-file",
                str(self.pair.key_path),
                "--kubeconfig",
                str(self.cp.kubeconfig),
                "--namespace",
                "gpuplace-system",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=self.env,
        )
        ctx = ssl.create_default_context(cafile=str(self.cp.ca_cert_path))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/readyz", context=ctx, timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        raise RuntimeError(f"webhook did not start: {(self.work / 'webhook.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def remove_configurations(self) -> None:
        """Delete what `configurations()` registered (the `gpuplace` webhook configurations)."""
        self.cp.kubectl(
            "delete",
            "validatingwebhookconfiguration,mutatingwebhookconfiguration",
            "gpuplace",
            "--ignore-not-found",
            check=False,
        )

    def configurations(self) -> list[dict[str, Any]]:
        """manifests/base/webhooks.yaml with clientConfig pointed at this process."""
        docs = list(yaml.safe_load_all((REPO / "manifests/base/webhooks.yaml").read_text()))
        for doc in docs:
            for hook in doc["webhooks"]:
                path = hook["clientConfig"]["service"]["path"]
                hook["clientConfig"] = {
                    "url": f"https://127.0.0.1:{self.port}{path}",
                    "caBundle": self.cp.ca.bundle_b64,
                }
        return docs


class LocalExtender:
    """`gpuplace extender` on plain HTTP on loopback, watching the harness API server."""

    def __init__(self, cp: ControlPlane, work: Path) -> None:
        self.cp, self.work = cp, work
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.work / "extender.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gpuplace",
                "extender",
                "--address",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--kubeconfig",
                str(self.cp.kubeconfig),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        raise RuntimeError(f"extender did not start: {(self.work / 'extender.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def scheduler_config(self, scheduler_name: str = "gpuplace-scheduler") -> dict[str, Any]:
        """The shipped KubeSchedulerConfiguration's extender stanza, pointed at this process."""
        return {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "percentageOfNodesToScore": 100,
            "profiles": [{"schedulerName": scheduler_name}],
            "extenders": [
                {
                    "urlPrefix": self.url,
                    "filterVerb": "filter",
                    "prioritizeVerb": "prioritize",
                    "bindVerb": "bind",
                    "weight": 10,
                    "nodeCacheCapable": True,
                    "enableHTTPS": False,
                    "httpTimeout": "5s",
                    "ignorable": False,
                    "managedResources": [{"name": "nvidia.com/gpu", "ignoredByScheduler": False}],
                }
            ],
        }
