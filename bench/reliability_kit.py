"""What tests/reliability and bench/reliability_bench.py share: the real webhook as a process on loopback
(HTTPS, a throwaway certificate), the bad-input corpus, slow clients, and the rule an answer is judged by.

Everything here talks to 127.0.0.1 only and every loop is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "vllm-llama8b-on-h100-misplaced.yaml"
API = "admission.k8s.io/v1"
ONE_LINE_CHARS = 512  # a kubectl warning line; findings are cut at 256, skip notes are shorter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_pair() -> tuple[bytes, bytes, bytes]:
    """(CA PEM, certificate PEM, key PEM): a fresh CA and a serving certificate for localhost/127.0.0.1,
    from the product's own `gpuplace certs` code."""
    from webhook.certs import issue

    issued = issue("gpuplace-webhook", "gpuplace-system", extra_names=("localhost", "127.0.0.1"))
    return issued.ca_pem, issued.cert_pem, issued.key_pem


def install(cert_dir: Path, cert_pem: bytes, key_pem: bytes) -> None:
    """Lay the pair out as the kubelet does a Secret volume: a new versioned folder, then one atomic swap
    of the `..data` link that tls.crt and tls.key point through, so a reader never sees half a pair."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    version = cert_dir / f"..{time.time_ns()}"
    version.mkdir()
    (version / "tls.crt").write_bytes(cert_pem)
    (version / "tls.key").write_bytes(key_pem)
    link = cert_dir / "..data_tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(version.name)
    os.replace(link, cert_dir / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (cert_dir / name).is_symlink():
            (cert_dir / name).symlink_to(f"..data/{name}")


@dataclass
class Webhook:
    """`python -m gpuplace webhook` on 127.0.0.1, no API access, its log in a file."""

    work: Path
    config: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    ca_pem: bytes = b""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def cert_dir(self) -> Path:
        return self.work / "certs"

    @property
    def log_path(self) -> Path:
        return self.work / "webhook.log"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30) -> Webhook:
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.ca_pem, cert, key = new_pair()
        install(self.cert_dir, cert, key)
        cfg = self.work / "gpuplace.yaml"
        cfg.write_text(yaml.safe_dump({"webhook": {"mode": "warn", **self.config}}))
        log = self.log_path.open("ab")
        cmd = [sys.executable, "-m", "gpuplace", "webhook", "--no-api", "--config", str(cfg)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--cert-file", str(self.cert_dir / "tls.crt"), "--key-file", str(self.cert_dir / "tls.key")]
        self.proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.ready():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"webhook did not start: {self.log()[-2000:]}")

    def ready(self) -> bool:
        try:
            answer = raw_exchange(
                self.port, b"GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n", self.client_ssl(), 2
            )
        except OSError:
            return False
        return answer.startswith(b"HTTP/1.1 200")

    def client_ssl(self, ca_pem: bytes | None = None) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=(ca_pem or self.ca_pem).decode())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        """SIGTERM and wait: the server exits cleanly and the batched log is flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# --- AdmissionReviews -------------------------------------------------------------------------------


@functools.cache
def _example() -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return obj


def workload() -> dict[str, Any]:
    """A real Deployment from examples/ (an 8B model pinned to an H100: one warning), a fresh copy."""
    return copy.deepcopy(_example())


def review(obj: Any, operation: Any = "CREATE", old: Any = None, **request: Any) -> dict[str, Any]:
    kind = obj.get("kind", "Deployment") if isinstance(obj, dict) else "Deployment"
    group, _, version = (obj.get("apiVersion", "apps/v1") if isinstance(obj, dict) else "apps/v1").rpartition(
        "/"
    )
    meta = (obj.get("metadata") if isinstance(obj, dict) else None) or {}
    req: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "operation": operation,
        "namespace": meta.get("namespace", "default") if isinstance(meta, dict) else "default",
        "name": meta.get("name", "") if isinstance(meta, dict) else "",
        "object": obj,
        "oldObject": old,
        "dryRun": False,
        "userInfo": {"username": "reliability"},
        **request,
    }
    return {"apiVersion": API, "kind": "AdmissionReview", "request": req}


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def distinct_reviews(n: int, start: int = 0) -> Iterator[bytes]:
    """n reviews of the example under n names: n distinct objects, each a findings-cache miss."""
    base = workload()
    for k in range(start, start + n):
        obj = copy.deepcopy(base)
        obj["metadata"]["name"] = f"llama-8b-{k}"
        yield body(review(obj))


@dataclass(frozen=True)
class Probe:
    name: str
    body: bytes
    content_type: str | None = "application/json"


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    obj = workload()
    node: Any = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return obj


def _container(**changes: Any) -> dict[str, Any]:
    obj = workload()
    obj["spec"]["template"]["spec"]["containers"][0].update(changes)
    return obj


DEEP = '{"a":' * 1000 + "{}" + "}" * 1000
POD_SPEC = ("spec", "template", "spec")
META = ("metadata",)


def corpus() -> list[Probe]:
    """Malformed AdmissionReviews and malformed objects in well-formed reviews, as a user, a fuzzer or a
    broken controller might send them. Each is fired at /validate and at /mutate."""
    ok = review(workload())
    probes = [
        Probe("empty body", b""),
        Probe("not JSON", b"hello, webhook"),
        Probe("unbalanced quotes", b'{"apiVersion": "admission.k8s.io/v1, "kind": "AdmissionReview"}'),
        Probe("unbalanced braces", body(ok)[:-7]),
        Probe("invalid UTF-8", b'{"kind": "\xff\xfe"}'),
        Probe("JSON string", b'"AdmissionReview"'),
        Probe("JSON list", body([ok])),
        Probe("JSON null", b"null"),
        Probe("JSON number", b"1e400"),
        Probe("empty object", b"{}"),
        Probe("duplicate keys", body(ok)[:-1] + b', "request": {"uid": "dup"}}'),
        Probe("v1beta1 review", body({**ok, "apiVersion": "admission.k8s.io/v1beta1"})),
        Probe("request null", body({**ok, "request": None})),
        Probe("request a list", body({**ok, "request": [ok["request"]]})),
        Probe("uid a number", body(review(workload(), uid=7))),
        Probe("uid empty", body(review(workload(), uid=""))),
        Probe("kind a string", body(review(workload(), kind="Deployment"))),
        Probe("operation PATCH", body(review(workload(), operation="PATCH"))),
        Probe("operation null", body(review(workload(), operation=None))),
        Probe("object a list", body(review([workload()]))),
        Probe("object a string", body({**ok, "request": {**ok["request"], "object": "Deployment"}})),
        Probe("object null on CREATE", body({**ok, "request": {**ok["request"], "object": None}})),
        Probe("DELETE", body(review(None, "DELETE", old=workload()))),
        Probe(
            "DELETE with both null",
            body({**ok, "request": {**ok["request"], "operation": "DELETE", "object": None}}),
        ),
        Probe(
            "CONNECT pods/exec",
            body(review({"kind": "PodExecOptions", "apiVersion": "v1", "command": ["sh"]}, "CONNECT")),
        ),
        Probe(
            "UPDATE with only oldObject",
            body(
                {
                    **review(workload(), "UPDATE"),
                    "request": {
                        **review(workload(), "UPDATE")["request"],
                        "object": None,
                        "oldObject": workload(),
                    },
                }
            ),
        ),
        Probe("UPDATE old a string", body(review(workload(), "UPDATE", old="old"))),
        Probe("dryRun a string", body(review(workload(), dryRun="yes"))),
        Probe("namespace a number", body(review(workload(), namespace=5))),
        Probe("name a list", body(review(workload(), name=["a"]))),
        Probe("userInfo a string", body(review(workload(), userInfo="root"))),
        Probe(
            "unknown kind",
            body(
                review(
                    {
                        "apiVersion": "example.com/v1",
                        "kind": "Widget",
                        "metadata": {"name": "w"},
                        "spec": {"x": 1},
                    }
                )
            ),
        ),
        Probe("metadata a list", body(review(_with(META, [])))),
        Probe("metadata null", body(review(_with(META, None)))),
        Probe("name 1 MB", body(review(_with((*META, "name"), "n" * 2**20)))),
        Probe("labels a list", body(review(_with((*META, "labels"), ["a"])))),
        Probe(
            "annotations with non-string values",
            body(
                review(
                    _with((*META, "annotations"), {"gpuplace.io/model": {"x": 1}, "gpuplace.io/params": 7})
                )
            ),
        ),
        Probe(
            "gpuplace annotations out of range",
            body(
                review(
                    _with(
                        (*POD_SPEC[:-1], "metadata", "annotations"),
                        {
                            "gpuplace.io/params": "-70B",
                            "gpuplace.io/max-model-len": "1e400",
                            "gpuplace.io/max-num-seqs": "-1",
                            "gpuplace.io/dtype": "int3",
                            "gpuplace.io/tier": "H9000",
                        },
                    )
                )
            ),
        ),
        Probe("spec a string", body(review(_with(("spec",), "spec")))),
        Probe("template null", body(review(_with(("spec", "template"), None)))),
        Probe("pod spec a list", body(review(_with(POD_SPEC, [])))),
        Probe("containers a dict", body(review(_with((*POD_SPEC, "containers"), {"name": "x"})))),
        Probe("containers with nulls", body(review(_with((*POD_SPEC, "containers"), [None, 3, "c"])))),
        Probe("containers empty", body(review(_with((*POD_SPEC, "containers"), [])))),
        Probe("replicas huge", body(review(_with(("spec", "replicas"), 10**30)))),
        Probe("replicas negative", body(review(_with(("spec", "replicas"), -5)))),
        Probe("replicas a float", body(review(_with(("spec", "replicas"), 1e308)))),
        Probe("replicas a string", body(review(_with(("spec", "replicas"), "many")))),
        Probe("GPUs negative", body(review(_container(resources={"limits": {"nvidia.com/gpu": -1}})))),
        Probe("GPUs huge", body(review(_container(resources={"limits": {"nvidia.com/gpu": 10**18}})))),
        Probe(
            "GPUs a float string", body(review(_container(resources={"limits": {"nvidia.com/gpu": "1.5"}})))
        ),
        Probe(
            "GPUs a quantity string",
            body(review(_container(resources={"limits": {"nvidia.com/gpu": "1e400"}}))),
        ),
        Probe("resources a list", body(review(_container(resources=[])))),
        Probe(
            "args with huge numbers",
            body(
                review(
                    _container(
                        args=[
                            "--model=meta-llama/Llama-3.1-8B-Instruct",
                            "--max-model-len=" + "9" * 400,
                            "--tensor-parallel-size=99999999999999999999",
                            "--gpu-memory-utilization=1e400",
                        ]
                    )
                )
            ),
        ),
        Probe(
            "args with negative numbers",
            body(
                review(
                    _container(
                        args=[
                            "--model=meta-llama/Llama-3.1-8B-Instruct",
                            "--max-model-len=-1",
                            "--tensor-parallel-size=-4",
                            "--max-num-seqs=-8",
                            "--gpu-memory-utilization=-0.5",
                        ]
                    )
                )
            ),
        ),
        Probe(
            "args NaN and inf",
            body(
                review(
                    _container(
                        args=[
                            "--model=meta-llama/Llama-3.1-8B-Instruct",
                            "--max-model-len=nan",
                            "--gpu-memory-utilization=inf",
                        ]
                    )
                )
            ),
        ),
        Probe("args not strings", body(review(_container(args=[1, None, {"a": 1}, ["b"]])))),
        Probe("args a string", body(review(_container(args="--model x")))),
        Probe(
            "unbalanced quotes in a shell command",
            body(
                review(
                    _container(
                        command=[
                            "sh",
                            "-c",
                            "vllm serve 'meta-llama/Llama-3.1-8B-Instruct --max-model-len \"8192",
                        ],
                        args=None,
                    )
                )
            ),
        ),
        Probe(
            "expansion loop in env",
            body(
                review(
                    _container(
                        env=[{"name": "A", "value": "$(B)"}, {"name": "B", "value": "$(A)"}],
                        args=["--model=$(A)", "--max-model-len=$(B)$(B)$(B)"],
                    )
                )
            ),
        ),
        Probe(
            "100k args",
            body(review(_container(args=["--model=meta-llama/Llama-3.1-8B-Instruct"] + ["--x"] * 100_000))),
        ),
        Probe(
            "10k env entries",
            body(review(_container(env=[{"name": f"E{i}", "value": str(i)} for i in range(10_000)]))),
        ),
        Probe(
            "10k containers",
            body(
                review(
                    _with(
                        (*POD_SPEC, "containers"),
                        [
                            workload()["spec"]["template"]["spec"]["containers"][0] | {"name": f"c{i}"}
                            for i in range(10_000)
                        ],
                    )
                )
            ),
        ),
        Probe(
            "nodeSelector a list", body(review(_with((*POD_SPEC, "nodeSelector"), ["NVIDIA-H100-80GB-HBM3"])))
        ),
        Probe("affinity a list", body(review(_with((*POD_SPEC, "affinity"), [1])))),
        Probe("tolerations a dict", body(review(_with((*POD_SPEC, "tolerations"), {"key": "x"})))),
        Probe(
            "resourceClaims garbage",
            body(
                review(
                    _with(
                        (*POD_SPEC, "resourceClaims"), [{"name": 1, "resourceClaimTemplateName": ["x"]}, None]
                    )
                )
            ),
        ),
        Probe(
            "HPA with negative and string fields",
            body(
                review(
                    {
                        "apiVersion": "autoscaling/v2",
                        "kind": "HorizontalPodAutoscaler",
                        "metadata": {"name": "h", "namespace": "ns"},
                        "spec": {
                            "scaleTargetRef": {"kind": "Deployment", "name": "llama-8b"},
                            "minReplicas": -1,
                            "maxReplicas": "x",
                            "behavior": {"scaleDown": {"stabilizationWindowSeconds": -30}},
                        },
                    }
                )
            ),
        ),
        Probe(
            "HPA scaleTargetRef a string",
            body(
                review(
                    {
                        "apiVersion": "autoscaling/v2",
                        "kind": "HorizontalPodAutoscaler",
                        "metadata": {"name": "h"},
                        "spec": {"scaleTargetRef": "llama", "behavior": "fast"},
                    }
                )
            ),
        ),
        Probe(
            "KEDA cooldown not a number",
            body(
                review(
                    {
                        "apiVersion": "keda.sh/v1alpha1",
                        "kind": "ScaledObject",
                        "metadata": {"name": "so"},
                        "spec": {
                            "scaleTargetRef": {"name": "x"},
                            "cooldownPeriod": "abc",
                            "minReplicaCount": 10**30,
                        },
                    }
                )
            ),
        ),
        Probe(
            "Knative windows out of range",
            body(
                review(
                    {
                        "apiVersion": "serving.knative.dev/v1",
                        "kind": "Service",
                        "metadata": {
                            "name": "k",
                            "annotations": {
                                "autoscaling.knative.dev/window": "1e400s",
                                "autoscaling.knative.dev/min-scale": "-3",
                            },
                        },
                        "spec": {
                            "template": {
                                "metadata": {
                                    "annotations": {"autoscaling.knative.dev/scale-down-delay": "-5s"}
                                },
                                "spec": {"containers": "x"},
                            }
                        },
                    }
                )
            ),
        ),
        Probe(
            "ResourceClaim garbage",
            body(
                review(
                    {
                        "apiVersion": "resource.k8s.io/v1",
                        "kind": "ResourceClaim",
                        "metadata": {"name": "c", "namespace": "ns"},
                        "spec": {
                            "devices": {
                                "requests": [{"name": 5, "exactly": {"count": -2, "selectors": "x"}}, None]
                            }
                        },
                    }
                )
            ),
        ),
        Probe(
            "Pod with schedulerName a list",
            body(
                review(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": "p", "namespace": "ns"},
                        "spec": {
                            "schedulerName": ["a"],
                            "containers": workload()["spec"]["template"]["spec"]["containers"],
                        },
                    }
                )
            ),
        ),
        Probe(
            "nested 1,000 levels in the spec",
            body(review(_with((*POD_SPEC, "x-extra"), "DEEP"))).replace(b'"DEEP"', DEEP.encode()),
        ),
        Probe(
            "nested 1,000 levels in args",
            body(review(_container(args=["DEEP"]))).replace(b'"DEEP"', DEEP.encode()),
        ),
        Probe(
            "nested past the parser's limit",
            body(review(_with((*POD_SPEC, "x-extra"), "DEEP"))).replace(
                b'"DEEP"', ("[" * 5000 + "]" * 5000).encode()
            ),
        ),
        Probe(
            "3 MB body", body(review(_with((*META, "annotations"), {"example.com/blob": "x" * 3_000_000})))
        ),
        Probe("wrong Content-Type", body(ok), "text/plain"),
        Probe("no Content-Type", body(ok), None),
        Probe("form Content-Type", body(ok), "application/x-www-form-urlencoded"),
    ]
    return probes


def huge_probe(mib: int = 50) -> Probe:
    return Probe(
        f"{mib} MB body",
        body(review(_with((*META, "annotations"), {"example.com/blob": "x" * (mib * 2**20)}))),
    )


# Bytes that are not a review: (data, sent inside TLS). Each must be dropped at the door or answered 4xx.
RAW: dict[str, tuple[bytes, bool]] = {
    "plain HTTP on the TLS port": (
        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}",
        False,
    ),
    "TLS garbage": (bytes(range(256)) * 16, False),
    "a TLS ClientHello cut short": (bytes.fromhex("16030100a5010000a10303") + b"\x00" * 20, False),
    "not HTTP inside TLS": (b"\x00\x01GARBAGE\r\n\r\n", True),
    "a 100 KB header inside TLS": (
        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        True,
    ),
    "a body shorter than its Content-Length": (
        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{}",
        True,
    ),
    "a broken chunked body": (
        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nxx\r\n0\r\n\r\n",
        True,
    ),
}

# Inputs that stop halfway: the server may wait for the rest (until asyncio's TLS handshake timeout).
CUT_SHORT = {"a TLS ClientHello cut short", "a body shorter than its Content-Length"}


# (command, config text, what the one error line must name): each must exit 2 with that one line.
BAD_CONFIGS: dict[str, tuple[str, str, str]] = {
    "a field of the wrong type": (
        "webhook",
        "webhook:\n  timeout_budget_s: fast\n",
        "webhook.timeout_budget_s",
    ),
    "a value out of range": ("webhook", "webhook:\n  timeout_budget_s: 60\n", "webhook.timeout_budget_s"),
    "a misspelt section": ("webhook", "webhok:\n  mode: warn\n", "webhok"),
    "a misspelt field": ("webhook", "webhook:\n  mod: warn\n", "webhook.mod"),
    "an unknown mode": ("webhook", "webhook:\n  mode: strict\n", "webhook.mode"),
    "an unknown finding code": ("webhook", "severity:\n  oom-risky: info\n", "oom-risky"),
    "broken YAML": ("webhook", "webhook: [1,\n", "invalid YAML"),
    "a list, not a mapping": ("webhook", "- webhook\n", "bad.yaml"),
    "binary bytes": ("webhook", "\x00\x01\x02", "bad.yaml"),
    "extender: a field of the wrong type": (
        "extender",
        "extender:\n  bind_timeout_s: soon\n",
        "extender.bind_timeout_s",
    ),
    "extender: an unknown policy": ("extender", "extender:\n  policy: fastest\n", "extender.policy"),
    "extender: broken YAML": ("extender", "extender: {port: \n", "invalid YAML"),
}


# --- judging answers ----------------------------------------------------------------------------------


def verdict(status: int, text: str, sent_uid: str | None) -> str | None:
    """None when the answer is one the apiserver can act on: a 4xx with a reason, or an AdmissionReview
    response (allowed, or denied with a status message) whose warnings are one line each and that is not a
    caught internal error. Otherwise what is wrong with it."""
    if status >= 500:
        return f"HTTP {status}"
    if 400 <= status < 500:
        return None if text.strip() else f"HTTP {status} without a reason"
    if status != 200:
        return f"HTTP {status}"
    try:
        doc = json.loads(text)
        response = doc["response"]
    except (ValueError, KeyError, TypeError):
        return "200 that is not an AdmissionReview"
    if doc.get("apiVersion") != API or not isinstance(response.get("allowed"), bool):
        return "200 without apiVersion v1 and a boolean allowed"
    if sent_uid is not None and response.get("uid") != sent_uid:
        return "uid not echoed"
    for w in response.get("warnings") or []:
        if "\n" in w or len(w) > ONE_LINE_CHARS:
            return f"warning is not one line: {w[:80]!r}"
        if "internal error" in w:
            return f"internal error: {w}"
    if not response["allowed"] and not (response.get("status") or {}).get("message"):
        return "denied without a message"
    return None


def uid_of(data: bytes) -> str | None:
    try:
        uid = orjson.loads(data)["request"]["uid"]  # orjson: parses the 1,000-level probes
    except (ValueError, KeyError, TypeError):
        return None
    return uid if isinstance(uid, str) else None


def log_problems(log: str) -> list[str]:
    """Lines of a webhook log that must never appear: a stack trace, or a check that was skipped because
    gpuplace itself broke."""
    return [line for line in log.splitlines() if line.startswith("Traceback") or "internal error" in line]


# --- raw connections -----------------------------------------------------------------------------------


def raw_exchange(port: int, data: bytes, tls: ssl.SSLContext | None = None, timeout_s: float = 5) -> bytes:
    """Send bytes (over TLS when given a context) and read what comes back until the server closes or
    the timeout; b"" when it just closed. Raises TimeoutError when the server neither answers nor closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as raw:
        sock: socket.socket = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        with contextlib.suppress(OSError):
            sock.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise
            except OSError:  # reset, or a TLS alert: the server refused the connection
                return out
            if not chunk:
                return out
            out += chunk
            if b"\r\n\r\n" in out and b"Connection: close" not in out and _complete(out):
                return out
        raise TimeoutError("no answer and no close")


def _complete(response: bytes) -> bool:
    head, _, rest = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return False


async def slow_client(
    port: int, tls: ssl.SSLContext, request: bytes, pace_s: float, opened: Callable[[], None]
) -> bool:
    """One connection that sends the head of its request one byte at a time, `pace_s` apart, then the
    body; True when it got an answer at the end."""
    head, sep, rest = request.partition(b"\r\n\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls, server_hostname="localhost")
    opened()
    try:
        for i in range(len(head)):
            writer.write(head[i : i + 1])
            await writer.drain()
            await asyncio.sleep(pace_s)
        writer.write(sep + rest)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
        return line.startswith(b"HTTP/1.1 ")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def slow_request(body_bytes: bytes) -> bytes:
    head = (
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body_bytes)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body_bytes


@dataclass
class SlowLoad:
    slow_answered: int = 0
    normal_status: list[int] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    slow_open_while_normal: int = 0  # slow clients still sending their headers when the last review ended


async def normal_reviews(webhook: Webhook, bodies: list[bytes], out: SlowLoad) -> None:
    """Reviews one after another on a keep-alive connection, as the apiserver sends them."""
    import aiohttp

    connector = aiohttp.TCPConnector(ssl=webhook.client_ssl(), limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for data in bodies:
            started = time.perf_counter()
            async with session.post(
                f"https://localhost:{webhook.port}/validate",
                data=data,
                headers={"Content-Type": "application/json"},
            ) as resp:
                await resp.read()
                out.normal_status.append(resp.status)
            out.latencies_s.append(time.perf_counter() - started)


async def under_slow_clients(
    webhook: Webhook, bodies: list[bytes], slow: int = 300, pace_s: float = 0.05
) -> SlowLoad:
    """`slow` connections send their request heads a byte at a time while `bodies` are reviewed normally;
    each slow client is answered at the end too."""
    out = SlowLoad()
    opened = 0
    done = 0

    def one_open() -> None:
        nonlocal opened
        opened += 1

    async def slow_one() -> None:
        nonlocal done
        try:
            if await slow_client(
                webhook.port, webhook.client_ssl(), slow_request(bodies[0]), pace_s, one_open
            ):
                out.slow_answered += 1
        finally:
            done += 1

    tasks = [asyncio.create_task(slow_one()) for _ in range(slow)]
    for _ in range(600):  # every slow client connected (bounded: 30 s)
        if opened >= slow or all(t.done() for t in tasks):
            break
        await asyncio.sleep(0.05)
    await normal_reviews(webhook, bodies, out)
    out.slow_open_while_normal = slow - done
    await asyncio.gather(*tasks, return_exceptions=True)
    return out


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")


async def review_once(port: int, tls: ssl.SSLContext, data: bytes) -> tuple[int, bytes]:
    """One review on a new connection: (HTTP status, DER of the certificate the server presented);
    status 0 when the connection or the handshake failed."""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="localhost"
        )
    except (OSError, ssl.SSLError):
        return 0, b""
    try:
        cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True) or b""
        writer.write(slow_request(data))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
        return (int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else 0), cert
    except (OSError, ssl.SSLError, TimeoutError, ValueError):
        return 0, b""
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def der(cert_pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert_pem.decode())


@dataclass
class Rotation:
    tried: int = 0
    failed: int = 0
    to_new_cert_s: float = float("nan")  # files swapped -> first answer with the new certificate
    longest_gap_s: float = 0.0  # longest time between two answered reviews while it rotated
    served: list[bytes] = field(default_factory=list)  # certificate of each answered review, in order


async def rotate_under_load(
    webhook: Webhook, cert_pem: bytes, key_pem: bytes, trust: bytes, seconds: float, workers: int = 4
) -> Rotation:
    """Reviews on new connections from `workers` loops while the serving pair is swapped for (cert, key)
    a third of the way in; every connection trusts `trust` (the CAs of the old and the new pair)."""
    tls = webhook.client_ssl(trust)
    out = Rotation()
    body_bytes = next(distinct_reviews(1))
    started = time.perf_counter()
    swapped_at: float | None = None
    last_ok = started
    new = der(cert_pem)

    async def loop() -> None:
        nonlocal last_ok
        while time.perf_counter() - started < seconds:
            status, cert = await review_once(webhook.port, tls, body_bytes)
            now = time.perf_counter()
            out.tried += 1
            if status != 200:
                out.failed += 1
                continue
            out.longest_gap_s = max(out.longest_gap_s, now - last_ok)
            last_ok = now
            out.served.append(cert)
            if cert == new and swapped_at is not None and out.to_new_cert_s != out.to_new_cert_s:
                out.to_new_cert_s = now - swapped_at

    async def swap() -> None:
        nonlocal swapped_at
        await asyncio.sleep(seconds / 3)
        install(webhook.cert_dir, cert_pem, key_pem)
        swapped_at = time.perf_counter()

    await asyncio.gather(swap(), *(loop() for _ in range(workers)))
    return out


# --- the scheduler extender ------------------------------------------------------------------------------


def gpu_pod(name: str = "p", gpus: Any = "1") -> dict[str, Any]:
    """A GPU pod as kube-scheduler marshals it into ExtenderArgs (no TypeMeta, status present)."""
    resources = {
        "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": gpus},
        "limits": {"nvidia.com/gpu": gpus},
    }
    return {
        "metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4()), "resourceVersion": "1"},
        "spec": {
            "containers": [{"name": "main", "image": "vllm/vllm-openai:v0.8.5", "resources": resources}]
        },
        "status": {"phase": "Pending"},
    }


def extender_corpus() -> list[tuple[str, str, bytes]]:
    """(name, verb, body): ExtenderArgs and ExtenderBindingArgs that kube-scheduler would never send, and
    some it would at sizes past the usual."""
    p = gpu_pod()
    names = ["node-a", "node-b"]
    bad_args: list[tuple[str, Any]] = [
        ("empty body", b""),
        ("not JSON", b"{broken"),
        ("JSON list", [p]),
        ("JSON null", None),
        ("JSON string", "Pod"),
        ("missing Pod", {"NodeNames": names}),
        ("Pod null", {"Pod": None, "NodeNames": names}),
        ("Pod a string", {"Pod": "p", "NodeNames": names}),
        ("Pod without metadata", {"Pod": {"spec": p["spec"]}, "NodeNames": names}),
        ("Pod metadata a list", {"Pod": {**p, "metadata": []}, "NodeNames": names}),
        ("Pod spec a list", {"Pod": {**p, "spec": []}, "NodeNames": names}),
        ("containers a string", {"Pod": {**p, "spec": {"containers": "x"}}, "NodeNames": names}),
        ("GPU count a word", {"Pod": gpu_pod(gpus="many"), "NodeNames": names}),
        ("GPU count negative", {"Pod": gpu_pod(gpus="-3"), "NodeNames": names}),
        ("GPU count huge", {"Pod": gpu_pod(gpus=str(10**30)), "NodeNames": names}),
        ("NodeNames a string", {"Pod": p, "NodeNames": "node-a"}),
        ("NodeNames a dict", {"Pod": p, "NodeNames": {"node-a": True}}),
        ("NodeNames with numbers and nulls", {"Pod": p, "NodeNames": [1, None, "node-a"]}),
        ("neither NodeNames nor Nodes", {"Pod": p}),
        ("Nodes a list", {"Pod": p, "Nodes": [{"metadata": {"name": "node-a"}}]}),
        ("Nodes items with garbage", {"Pod": p, "Nodes": {"items": [None, 3, {"metadata": "x"}]}}),
        ("10k node names", {"Pod": p, "NodeNames": [f"node-{i}" for i in range(10_000)]}),
        ("10k duplicate node names", {"Pod": p, "NodeNames": ["node-a"] * 10_000}),
        ("node name 1 MB", {"Pod": p, "NodeNames": ["n" * 2**20]}),
    ]
    bad_bind: list[tuple[str, Any]] = [
        ("bind: empty object", {}),
        ("bind: names are numbers", {"PodName": 7, "PodNamespace": 8, "PodUID": 9, "Node": 10}),
        ("bind: empty node", {"PodName": "p", "PodNamespace": "default", "PodUID": "u", "Node": ""}),
        ("bind: unknown node", {"PodName": "p", "PodNamespace": "default", "PodUID": "u", "Node": "nowhere"}),
        ("bind: a list", [{"PodName": "p"}]),
    ]
    out = []
    for name, doc in bad_args:
        data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        out += [(name, "filter", data), (name, "prioritize", data)]
    out += [(name, "bind", json.dumps(doc).encode()) for name, doc in bad_bind]
    return out


def extender_verdict(verb: str, status: int, text: str) -> str | None:
    """None when kube-scheduler can act on the answer: a 4xx with a reason, or a 200 in the verb's shape
    (a filter or bind answer's refusal goes in its Error field)."""
    if status >= 500:
        return f"HTTP {status}: {text[:120]}"
    if 400 <= status < 500:
        return None if text.strip() else f"HTTP {status} without a reason"
    try:
        doc = json.loads(text)
    except ValueError:
        return "200 that is not JSON"
    if verb == "prioritize":
        return None if isinstance(doc, list) else "prioritize answer is not a HostPriorityList"
    if not isinstance(doc, dict) or not isinstance(doc.get("Error", ""), str):
        return f"{verb} answer without an Error field"
    if "internal error" in doc.get("Error", ""):
        return f"internal error: {doc['Error'][:120]}"
    return None


def gpu_node(name: str, gpus: int = 8, product: str = "NVIDIA-H100-80GB-HBM3") -> dict[str, Any]:
    """A Node with GPU Feature Discovery labels and allocatable nvidia.com/gpu."""
    alloc = {"cpu": "128", "memory": "2Ti", "pods": "110", "nvidia.com/gpu": str(gpus)}
    labels = {"kubernetes.io/hostname": name, "nvidia.com/gpu.present": "true"}
    labels |= {"nvidia.com/gpu.product": product, "nvidia.com/gpu.count": str(gpus)}
    return {
        "metadata": {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": "1", "labels": labels},
        "spec": {},
        "status": {
            "capacity": dict(alloc),
            "allocatable": alloc,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def synced_extender(nodes: list[dict[str, Any]]) -> Any:
    """The extender core over a cache already holding `nodes` and no pods, with no API binder."""
    from extender.cache.cluster_cache import ClusterCache
    from extender.core import Extender
    from placement.checks.settings import CheckContext
    from placement.scheduling import PolicyHolder

    ctx = CheckContext.default()
    cache = ClusterCache(ctx.gpus)
    cache.replace_nodes(nodes)
    cache.replace_pods([], 0.0)
    return Extender(cache, ctx, PolicyHolder())
