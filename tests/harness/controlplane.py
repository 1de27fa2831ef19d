"""A real Kubernetes control plane as local processes, for the e2e tests.

Like controller-runtime's envtest: etcd and kube-apiserver run on 127.0.0.1 (random free ports, data
and certificates in a temporary directory), and kube-scheduler can be started on top with any
KubeSchedulerConfiguration. The binaries are built from their Go modules by
``hack/control-plane.sh install`` and cached outside the repo.

No kubelet and no kube-controller-manager run, so:

* "placement" is the binding: a pod is placed once the scheduler has set ``spec.nodeName``; the pod's
  phase stays ``Pending`` forever because no kubelet runs it;
* Deployments, Jobs, ... never create pods: tests create Pods directly;
* no ServiceAccount controller creates the ``default`` ServiceAccount, so the harness creates it in
  ``default`` and in every namespace made with :meth:`ControlPlane.create_namespace` (the
  ServiceAccount admission plugin stays on, as in a real cluster);
* no namespace controller finalizes deleted namespaces (they stay ``Terminating``): use fresh names;
* no pod garbage collection and no kubelet to confirm graceful deletion: the harness force-deletes.

Fake GPU nodes are plain Node objects whose labels mimic GPU Feature Discovery and whose status
(capacity/allocatable including ``nvidia.com/gpu``, Ready condition) is written through the status
subresource; the ``node.kubernetes.io/not-ready`` taint that the ``TaintNodesByCondition``
admission plugin puts on every new Node is removed, so the real scheduler places pods on them.

Setting ``GPUPLACE_E2E_KUBECONFIG`` makes the fixtures use an existing cluster (e.g. kind) instead.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import copy
import ctypes
import datetime as dt
import functools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, Self, TypeVar

import yaml

from .certs import CertificateAuthority, CertPair, write_service_account_keys

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTROL_PLANE_SCRIPT = REPO_ROOT / "hack" / "control-plane.sh"
EXTERNAL_KUBECONFIG_ENV = "GPUPLACE_E2E_KUBECONFIG"
BINARIES: tuple[str, ...] = ("etcd", "kube-apiserver", "kube-scheduler", "kubectl")
INSTALL_HINT = "run `bash hack/control-plane.sh install` (or `make e2e-binaries`)"

# GPU Feature Discovery labels (https://github.com/NVIDIA/k8s-device-plugin, gpu-feature-discovery).
GPU_RESOURCE = "nvidia.com/gpu"
LABEL_GPU_PRESENT = "nvidia.com/gpu.present"
LABEL_GPU_PRODUCT = "nvidia.com/gpu.product"
LABEL_GPU_MEMORY = "nvidia.com/gpu.memory"
LABEL_GPU_COUNT = "nvidia.com/gpu.count"
LABEL_GPU_CLIQUE = "nvidia.com/gpu.clique"
FAKE_NODE_LABEL = "gpuplace.dev/e2e-fake-node"

T = TypeVar("T")


class ControlPlaneError(RuntimeError):
    """The control plane (or a component of it) failed to start or misbehaved."""


class BinariesMissingError(ControlPlaneError):
    """The control-plane binaries are not installed."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl invocation failed; ``str()`` includes its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


# --------------------------------------------------------------------------- binaries


def find_bin_dir() -> Path:
    """The directory ``hack/control-plane.sh install`` puts the binaries in (may not exist yet)."""
    out = subprocess.run(
        ["bash", str(CONTROL_PLANE_SCRIPT), "path"], capture_output=True, text=True, check=True, timeout=30
    )
    return Path(out.stdout.strip())


def missing_binaries(bin_dir: Path, names: Sequence[str] = BINARIES) -> list[str]:
    """Names of the binaries that are not installed (also all of them when the versions are stale)."""
    missing = [name for name in names if not os.access(bin_dir / name, os.X_OK)]
    if not missing:
        check = subprocess.run(
            ["bash", str(CONTROL_PLANE_SCRIPT), "check"], capture_output=True, text=True, timeout=30
        )
        if check.returncode != 0:
            return list(names)
    return missing


@functools.cache
def pinned_versions() -> dict[str, str]:
    """``{"kubernetes": "v1.x.y", "etcd": "v3.x.y"}`` as pinned in hack/control-plane.sh."""
    out = subprocess.run(
        ["bash", str(CONTROL_PLANE_SCRIPT), "versions"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return dict(line.split("=", 1) for line in out.stdout.split())


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _make_pdeathsig() -> Callable[[], None] | None:
    """On Linux, have children SIGKILLed when the test process dies without cleaning up."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def _set() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)

    return _set


_PDEATHSIG = _make_pdeathsig()
_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


def _kill_all_live() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        proc.stop(timeout=5)


atexit.register(_kill_all_live)


class ManagedProcess:
    """A child process in its own process group, logging to a file, killed (group-wide) on stop."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"$ {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            preexec_fn=_PDEATHSIG,  # only calls prctl(2)
        )
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        popen = self.popen
        if popen is None:
            return
        try:
            if popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGTERM)
                try:
                    popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(popen.pid, signal.SIGKILL)
                    popen.wait(timeout=timeout)
            # Whatever the leader left behind in its group goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(self)
            if self._log is not None:
                self._log.close()
                self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ControlPlaneError(
                f"{self.name} exited with code {self.popen.returncode}; "
                f"log {self.log_path}:\n{self.log_tail()}"
            )


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.25,
    what: str = "condition",
    process: ManagedProcess | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy (which is returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if process is not None:
            process.check_alive()
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # keep polling; reported on timeout
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            tail = f"\n{process.name} log tail:\n{process.log_tail()}" if process else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}{tail}")
        time.sleep(interval)


def _http_get(url: str, context: ssl.SSLContext | None = None, timeout: float = 3.0) -> tuple[int, str]:
    """GET without any proxy (these are all loopback URLs)."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode(errors="replace")


def write_kubeconfig(
    path: Path, *, server: str, ca_cert: Path, client: CertPair, user: str, cluster: str = "gpuplace-e2e"
) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority": str(ca_cert)}}],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(client.cert_path), "client-key": str(client.key_path)},
            }
        ],
        "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster, "user": user}}],
        "current-context": f"{user}@{cluster}",
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _now_rfc3339(micro: bool = False) -> str:
    now = dt.datetime.now(dt.UTC)
    if micro:
        return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- etcd + kube-apiserver


class Etcd:
    """A single-member etcd on loopback with its data in ``work_dir/etcd-data``."""

    def __init__(self, bin_dir: Path, work_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.work_dir = work_dir
        self.process: ManagedProcess | None = None
        self.client_url = ""

    def start(self, timeout: float = 60.0, attempts: int = 3) -> str:
        for attempt in range(1, attempts + 1):
            client_port, peer_port = free_port(), free_port()
            self.client_url = f"http://127.0.0.1:{client_port}"
            peer_url = f"http://127.0.0.1:{peer_port}"
            data_dir = self.work_dir / "etcd-data"
            shutil.rmtree(data_dir, ignore_errors=True)
            self.process = ManagedProcess(
                "etcd",
                [
                    str(self.bin_dir / "etcd"),
                    "--name=gpuplace-e2e",
                    f"--data-dir={data_dir}",
                    f"--listen-client-urls={self.client_url}",
                    f"--advertise-client-urls={self.client_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=gpuplace-e2e={peer_url}",
                    "--initial-cluster-state=new",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
                self.work_dir / "logs" / "etcd.log",
            ).start()
            try:
                wait_until(
                    lambda: _http_get(f"{self.client_url}/health")[0] == 200,
                    timeout=timeout,
                    what="etcd /health",
                    process=self.process,
                )
                return self.client_url
            except ControlPlaneError:
                self.process.stop()
                if attempt == attempts:  # e.g. a port taken between free_port() and bind
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class KubeAPIServer:
    """kube-apiserver on 127.0.0.1 with RBAC, fresh certificates and a service-account signing key."""

    def __init__(self, bin_dir: Path, work_dir: Path, etcd_url: str, ca: CertificateAuthority) -> None:
        self.bin_dir = bin_dir
        self.work_dir = work_dir
        self.etcd_url = etcd_url
        self.ca = ca
        self.process: ManagedProcess | None = None
        self.port = 0
        self.server = ""
        pki = ca.directory
        self.serving = ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            hosts=(
                "127.0.0.1",
                "localhost",
                "10.0.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server=True,
        )
        self.admin = ca.issue(
            "admin", common_name="gpuplace-e2e-admin", organizations=["system:masters"], client=True
        )
        self.scheduler_client = ca.issue("kube-scheduler", common_name="system:kube-scheduler", client=True)
        self.sa_keys = write_service_account_keys(pki)
        # Front-proxy (request-header) authentication, as kubeadm/kind set it up: components that
        # delegate authentication (kube-scheduler, aggregated API servers) expect its CA.
        self.front_proxy_ca = CertificateAuthority(
            pki / "front-proxy", common_name="gpuplace-e2e-front-proxy-ca"
        )
        self.front_proxy_client = self.front_proxy_ca.issue(
            "front-proxy-client", common_name="front-proxy-client", client=True
        )

    def start(self, timeout: float = 180.0, attempts: int = 3) -> str:
        for attempt in range(1, attempts + 1):
            self.port = free_port()
            self.server = f"https://127.0.0.1:{self.port}"
            self.process = ManagedProcess(
                "kube-apiserver",
                [
                    str(self.bin_dir / "kube-apiserver"),
                    f"--etcd-servers={self.etcd_url}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={self.port}",
                    f"--cert-dir={self.work_dir / 'apiserver-certs'}",
                    f"--tls-cert-file={self.serving.cert_path}",
                    f"--tls-private-key-file={self.serving.key_path}",
                    f"--client-ca-file={self.ca.cert_path}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={self.sa_keys.cert_path}",
                    f"--service-account-signing-key-file={self.sa_keys.key_path}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--authorization-mode=RBAC",
                    f"--requestheader-client-ca-file={self.front_proxy_ca.cert_path}",
                    "--requestheader-allowed-names=front-proxy-client",
                    "--requestheader-username-headers=X-Remote-User",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    f"--proxy-client-cert-file={self.front_proxy_client.cert_path}",
                    f"--proxy-client-key-file={self.front_proxy_client.key_path}",
                    "--allow-privileged=true",
                    # 127.0.0.1 is no valid endpoint for the `kubernetes` Service: don't try to write it.
                    "--endpoint-reconciler-type=none",
                    "--profiling=false",
                    "--v=1",
                ],
                self.work_dir / "logs" / "kube-apiserver.log",
            ).start()
            context = self.client_ssl_context()
            try:
                wait_until(
                    functools.partial(self._ready, context),
                    timeout=timeout,
                    interval=0.5,
                    what="kube-apiserver /readyz",
                    process=self.process,
                )
                return self.server
            except ControlPlaneError:
                self.process.stop()
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _ready(self, context: ssl.SSLContext) -> bool:
        return _http_get(f"{self.server}/readyz", context)[0] == 200

    def client_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert_path))
        context.load_cert_chain(str(self.admin.cert_path), str(self.admin.key_path))
        return context

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=15)


# --------------------------------------------------------------------------- kube-scheduler


DEFAULT_SCHEDULER_CONFIG: dict[str, Any] = {
    "apiVersion": "kubescheduler.config.k8s.io/v1",
    "kind": "KubeSchedulerConfiguration",
    "profiles": [{"schedulerName": "default-scheduler"}],
}


def render_scheduler_config(config: str | Mapping[str, Any] | None, kubeconfig: Path) -> dict[str, Any]:
    """The KubeSchedulerConfiguration to run: ``config`` (YAML text or a dict; ``None`` means the
    default profile) with ``clientConnection.kubeconfig`` filled in and leader election off."""
    if config is None:
        rendered: dict[str, Any] = copy.deepcopy(DEFAULT_SCHEDULER_CONFIG)
    elif isinstance(config, str):
        loaded = yaml.safe_load(config)
        if not isinstance(loaded, dict):
            raise ValueError("the scheduler config must be a YAML mapping")
        rendered = loaded
    else:
        rendered = copy.deepcopy(dict(config))
    rendered.setdefault("apiVersion", DEFAULT_SCHEDULER_CONFIG["apiVersion"])
    rendered.setdefault("kind", "KubeSchedulerConfiguration")
    rendered["clientConnection"] = {**(rendered.get("clientConnection") or {}), "kubeconfig": str(kubeconfig)}
    rendered["leaderElection"] = {**(rendered.get("leaderElection") or {}), "leaderElect": False}
    return rendered


class SecureComponent:
    """A control-plane component serving /healthz on 127.0.0.1 (kube-scheduler, kube-controller-manager)."""

    binary = ""

    def __init__(self, bin_dir: Path, work_dir: Path, kubeconfig: Path) -> None:
        self.bin_dir = bin_dir
        self.work_dir = work_dir
        self.kubeconfig = kubeconfig
        self.process: ManagedProcess | None = None
        self.port = 0

    @property
    def log_path(self) -> Path:
        return self.work_dir / f"{self.binary}.log"

    @property
    def healthz_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/healthz"

    def _args(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write config files before the first start attempt."""

    def start(self, timeout: float = 120.0, attempts: int = 3) -> Self:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        # The component serves /healthz with a self-signed certificate it generates itself.
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        for attempt in range(1, attempts + 1):
            self.port = free_port()
            self.process = ManagedProcess(
                self.binary,
                [
                    str(self.bin_dir / self.binary),
                    "--bind-address=127.0.0.1",
                    f"--secure-port={self.port}",
                    f"--cert-dir={self.work_dir / 'certs'}",
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    *self._args(),
                ],
                self.log_path,
            ).start()
            try:
                wait_until(
                    lambda: _http_get(self.healthz_url, insecure)[0] == 200,
                    timeout=timeout,
                    interval=0.25,
                    what=f"{self.binary} /healthz",
                    process=self.process,
                )
                return self
            except ControlPlaneError:
                self.process.stop()
                if attempt == attempts:  # e.g. the port was taken between free_port() and bind
                    raise
        raise AssertionError("unreachable")

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    def logs(self) -> str:
        """The component's log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class KubeScheduler(SecureComponent):
    """A kube-scheduler process with a KubeSchedulerConfiguration (see :func:`render_scheduler_config`).

    Its log (``logs()``, ``-v=2``) has a "Successfully bound pod to node" line per binding."""

    binary = "kube-scheduler"

    def __init__(
        self, bin_dir: Path, work_dir: Path, kubeconfig: Path, config: str | Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(bin_dir, work_dir, kubeconfig)
        self.config = render_scheduler_config(config, kubeconfig)
        self.config_path = work_dir / "scheduler-config.yaml"

    @property
    def scheduler_names(self) -> list[str]:
        profiles = self.config.get("profiles") or [{}]
        return [str(p.get("schedulerName", "default-scheduler")) for p in profiles]

    def _prepare(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def _args(self) -> list[str]:
        return [f"--config={self.config_path}", "--v=2"]


class KubeControllerManager(SecureComponent):
    """kube-controller-manager (opt-in): Deployments/ReplicaSets/Jobs create pods, namespaces get
    deleted, ServiceAccounts appear, the node lifecycle controller watches node heartbeats."""

    binary = "kube-controller-manager"

    def __init__(
        self,
        bin_dir: Path,
        work_dir: Path,
        kubeconfig: Path,
        *,
        root_ca: Path,
        service_account_key: Path,
        controllers: Sequence[str] = ("*",),
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(bin_dir, work_dir, kubeconfig)
        self.root_ca = root_ca
        self.service_account_key = service_account_key
        self.controllers = list(controllers)
        self.extra_args = list(extra_args)

    def _args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            f"--controllers={','.join(self.controllers)}",
            # All controllers share the (admin) client instead of per-controller ServiceAccount tokens.
            "--use-service-account-credentials=false",
            f"--service-account-private-key-file={self.service_account_key}",
            f"--root-ca-file={self.root_ca}",
            "--v=1",
            *self.extra_args,
        ]


# --------------------------------------------------------------------------- the control plane


class ControlPlane:
    """A running cluster: local etcd + kube-apiserver (:meth:`start_local`) or an existing one
    (:meth:`connect`), with kubectl helpers and fake GPU nodes."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        server: str,
        ca_cert_path: Path,
        work_dir: Path,
        bin_dir: Path | None,
        kubectl_path: Path,
        external: bool,
        ca: CertificateAuthority,
        scheduler_kubeconfig: Path | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.server = server
        self.ca_cert_path = ca_cert_path
        self.work_dir = work_dir
        self.bin_dir = bin_dir
        self.kubectl_path = kubectl_path
        self.external = external
        #: Issues serving certificates for servers the tests run (webhooks, extenders). For a local
        #: control plane this is the cluster CA; for an external cluster a CA of its own.
        self.ca = ca
        self.scheduler_kubeconfig = scheduler_kubeconfig or kubeconfig
        self._etcd: Etcd | None = None
        self._apiserver: KubeAPIServer | None = None
        self._components: list[SecureComponent] = []
        self._nodes: list[str] = []
        self._namespaces: list[str] = []
        self._heartbeat_stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._lock = threading.Lock()

    # ---- lifecycle

    @classmethod
    def start_local(cls, bin_dir: Path, work_dir: Path, timeout: float = 180.0) -> ControlPlane:
        """Start etcd + kube-apiserver from ``bin_dir``; raises :class:`BinariesMissingError` if absent."""
        missing = missing_binaries(bin_dir)
        if missing:
            raise BinariesMissingError(f"control-plane binaries missing in {bin_dir}: {', '.join(missing)}")
        work_dir.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority(work_dir / "pki")
        etcd = Etcd(bin_dir, work_dir)
        apiserver: KubeAPIServer | None = None
        try:
            etcd_url = etcd.start()
            apiserver = KubeAPIServer(bin_dir, work_dir, etcd_url, ca)
            server = apiserver.start(timeout=timeout)
            kubeconfig = write_kubeconfig(
                work_dir / "admin.kubeconfig",
                server=server,
                ca_cert=ca.cert_path,
                client=apiserver.admin,
                user="admin",
            )
            scheduler_kubeconfig = write_kubeconfig(
                work_dir / "scheduler.kubeconfig",
                server=server,
                ca_cert=ca.cert_path,
                client=apiserver.scheduler_client,
                user="system:kube-scheduler",
            )
            cp = cls(
                kubeconfig=kubeconfig,
                server=server,
                ca_cert_path=ca.cert_path,
                work_dir=work_dir,
                bin_dir=bin_dir,
                kubectl_path=bin_dir / "kubectl",
                external=False,
                ca=ca,
                scheduler_kubeconfig=scheduler_kubeconfig,
            )
            cp._etcd, cp._apiserver = etcd, apiserver
            # No ServiceAccount controller runs: give `default` its default ServiceAccount.
            cp.ensure_default_service_account("default")
            return cp
        except BaseException:
            if apiserver is not None:
                apiserver.stop()
            etcd.stop()
            raise

    @classmethod
    def connect(cls, kubeconfig: Path, work_dir: Path, bin_dir: Path | None = None) -> ControlPlane:
        """Use an existing cluster (e.g. kind). kubectl comes from ``bin_dir`` or ``PATH``."""
        work_dir.mkdir(parents=True, exist_ok=True)
        kubectl_path: Path | None = None
        if bin_dir is not None and os.access(bin_dir / "kubectl", os.X_OK):
            kubectl_path = bin_dir / "kubectl"
        elif found := shutil.which("kubectl"):
            kubectl_path = Path(found)
        if kubectl_path is None:
            raise BinariesMissingError(f"kubectl not found in {bin_dir} nor on PATH; {INSTALL_HINT}")
        server, ca_cert = _cluster_from_kubeconfig(kubeconfig, work_dir)
        ca = CertificateAuthority(work_dir / "pki")
        return cls(
            kubeconfig=kubeconfig,
            server=server,
            ca_cert_path=ca_cert or ca.cert_path,
            work_dir=work_dir,
            bin_dir=bin_dir,
            kubectl_path=kubectl_path,
            external=True,
            ca=ca,
        )

    def stop(self) -> None:
        """Stop schedulers, controller managers, heartbeats, kube-apiserver and etcd (idempotent)."""
        for component in reversed(self._components):
            component.stop()
        self._components.clear()
        self._stop_heartbeats()
        if self.external:
            with contextlib.suppress(Exception):
                self.cleanup()
        if self._apiserver is not None:
            self._apiserver.stop()
        if self._etcd is not None:
            self._etcd.stop()

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_paths(self) -> dict[str, Path]:
        logs: dict[str, Path] = {}
        for proc in (self._etcd, self._apiserver):
            if proc is not None and proc.process is not None:
                logs[proc.process.name] = proc.process.log_path
        return logs

    # ---- kubectl

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl --kubeconfig=<admin> *args``; if ``check``, failure raises :class:`KubectlError`."""
        argv = [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def kubectl_json(self, *args: str, timeout: float = 60.0) -> Any:
        """``kubectl *args -o json``, parsed."""
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    def apply(self, *objects: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
        """``kubectl apply --server-side`` the given objects (dicts)."""
        items = {"apiVersion": "v1", "kind": "List", "items": [dict(o) for o in objects]}
        return self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=gpuplace-e2e",
            "-f",
            "-",
            input=json.dumps(items),
        )

    def create(self, *objects: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
        """``kubectl create`` the given objects (dicts); admission errors surface as KubectlError."""
        items = {"apiVersion": "v1", "kind": "List", "items": [dict(o) for o in objects]}
        return self.kubectl("create", "-f", "-", input=json.dumps(items))

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for the admin kubeconfig (the python client)."""
        from kubernetes import config as k8s_config

        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    # ---- namespaces, service accounts

    def ensure_default_service_account(self, namespace: str) -> None:
        sa = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace},
        }
        self.apply(sa)

    def create_namespace(self, prefix: str = "e2e", labels: Mapping[str, str] | None = None) -> str:
        """Create a uniquely named namespace with its ``default`` ServiceAccount (deleted by cleanup)."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        ns: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        if labels:
            ns["metadata"]["labels"] = dict(labels)
        self.create(ns)
        with self._lock:
            self._namespaces.append(name)
        # Locally no ServiceAccount controller runs; on a real cluster it races with the first pod.
        self.ensure_default_service_account(name)
        return name

    # ---- fake GPU nodes

    def add_gpu_node(
        self,
        name: str,
        product: str = "NVIDIA-H100-80GB-HBM3",
        gpus: int = 8,
        memory_mib: int = 81559,
        clique: str | None = None,
        labels: Mapping[str, str] | None = None,
        *,
        cpu: str = "128",
        memory: str = "2Ti",
        pods: int = 110,
        taints: Sequence[Mapping[str, Any]] = (),
        extra_capacity: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Register a fake GPU node and return it (as JSON). ``gpus=0`` makes a CPU-only node.

        Labels follow GPU Feature Discovery (``nvidia.com/gpu.product``, ``.memory`` in MiB, ``.count``,
        optional ``.clique``); capacity/allocatable carry ``nvidia.com/gpu`` plus cpu/memory/pods; the
        Ready condition is True and only ``taints`` are left on the node.
        """
        node_labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            FAKE_NODE_LABEL: "true",
        }
        if gpus > 0:
            node_labels.update(
                {
                    LABEL_GPU_PRESENT: "true",
                    LABEL_GPU_PRODUCT: product,
                    LABEL_GPU_MEMORY: str(memory_mib),
                    LABEL_GPU_COUNT: str(gpus),
                }
            )
            if clique is not None:
                node_labels[LABEL_GPU_CLIQUE] = clique
        node_labels.update(labels or {})
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": node_labels}}
        self.create(node)
        with self._lock:
            self._nodes.append(name)
        # The TaintNodesByCondition admission plugin taints every new Node node.kubernetes.io/not-ready;
        # with no node lifecycle controller nothing would ever remove it.
        self.kubectl(
            "patch", "node", name, "--type=merge", "-p", json.dumps({"spec": {"taints": list(taints)}})
        )
        resources = {"cpu": cpu, "memory": memory, "pods": str(pods), **(extra_capacity or {})}
        if gpus > 0:
            resources[GPU_RESOURCE] = str(gpus)
        now = _now_rfc3339()
        status = {
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "fake node managed by the gpuplace e2e harness",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": pinned_versions().get("kubernetes", "v0.0.0"),
                    "containerRuntimeVersion": "fake://0",
                    "kernelVersion": "",
                    "osImage": "",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kubeProxyVersion": "",
                },
            }
        }
        self.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(status))
        if self._needs_heartbeats():
            self._start_heartbeats()
        result: dict[str, Any] = self.kubectl_json("get", "node", name)
        return result

    def delete_node(self, name: str) -> None:
        self.kubectl("delete", "node", name, "--ignore-not-found", "--wait=false")
        if self._heartbeat is not None or self.external:
            self.kubectl("-n", "kube-node-lease", "delete", "lease", name, "--ignore-not-found", check=False)
        with self._lock:
            if name in self._nodes:
                self._nodes.remove(name)

    def _needs_heartbeats(self) -> bool:
        return self.external or any(
            isinstance(c, KubeControllerManager) and c.running() for c in self._components
        )

    def _start_heartbeats(self) -> None:
        """On a real cluster the node lifecycle controller marks nodes without heartbeats NotReady
        (after ~40-50s); renew a Lease for each fake node to keep them Ready."""
        if self._heartbeat is not None and self._heartbeat.is_alive():
            return
        self._heartbeat_stop.clear()

        def beat() -> None:
            while not self._heartbeat_stop.is_set():
                with self._lock:
                    nodes = list(self._nodes)
                leases = [
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": n, "namespace": "kube-node-lease"},
                        "spec": {
                            "holderIdentity": n,
                            "leaseDurationSeconds": 40,
                            "renewTime": _now_rfc3339(True),
                        },
                    }
                    for n in nodes
                ]
                if leases:
                    with contextlib.suppress(Exception):
                        self.apply(*leases)
                self._heartbeat_stop.wait(10)

        self._heartbeat = threading.Thread(target=beat, name="fake-node-heartbeats", daemon=True)
        self._heartbeat.start()

    def _stop_heartbeats(self) -> None:
        self._heartbeat_stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=15)
            self._heartbeat = None

    # ---- pods

    def pod(self, name: str, namespace: str = "default") -> dict[str, Any]:
        result: dict[str, Any] = self.kubectl_json("-n", namespace, "get", "pod", name)
        return result

    def wait_for_pod_scheduled(self, name: str, namespace: str = "default", timeout: float = 60.0) -> str:
        """Wait until the pod is bound and return ``spec.nodeName``."""
        return wait_until(
            lambda: self.pod(name, namespace)["spec"].get("nodeName"),
            timeout=timeout,
            what=f"pod {namespace}/{name} to be bound to a node",
        )

    def wait_for_pod_unschedulable(self, name: str, namespace: str = "default", timeout: float = 60.0) -> str:
        """Wait until the scheduler reports ``PodScheduled=False`` and return that condition's message."""

        def unschedulable() -> str | None:
            pod = self.pod(name, namespace)
            for cond in pod.get("status", {}).get("conditions") or []:
                if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                    return str(cond.get("message") or cond.get("reason") or "Unschedulable")
            return None

        return wait_until(unschedulable, timeout=timeout, what=f"pod {namespace}/{name} to be unschedulable")

    def events_for(self, name: str, namespace: str = "default", kind: str = "Pod") -> list[dict[str, Any]]:
        """Events (core/v1) about one object, oldest first."""
        events = self.kubectl_json(
            "-n",
            namespace,
            "get",
            "events",
            f"--field-selector=involvedObject.name={name},involvedObject.kind={kind}",
        )["items"]
        return sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def force_delete_pods(self, namespace: str, *selector: str) -> None:
        """Delete pods at once (no kubelet will ever confirm a graceful deletion)."""
        args = list(selector) or ["--all"]
        self.kubectl(
            "-n",
            namespace,
            "delete",
            "pods",
            *args,
            "--grace-period=0",
            "--force",
            "--ignore-not-found",
            "--wait=false",
            check=False,
        )

    # ---- schedulers

    def start_scheduler(
        self,
        config: str | Mapping[str, Any] | None = None,
        *,
        name: str = "kube-scheduler",
        timeout: float = 120.0,
        kubeconfig: Path | None = None,
    ) -> KubeScheduler:
        """Start a kube-scheduler with ``config`` (a KubeSchedulerConfiguration as YAML or dict; ``None``
        = one ``default-scheduler`` profile). It authenticates as ``system:kube-scheduler`` on the local
        control plane (``kubeconfig`` overrides). Stop it with ``.stop()`` or use it as a context manager.
        """
        if self.bin_dir is None or missing_binaries(self.bin_dir, ["kube-scheduler"]):
            raise BinariesMissingError(f"kube-scheduler not installed; {INSTALL_HINT}")
        work = self.work_dir / "schedulers" / f"{name}-{uuid.uuid4().hex[:6]}"
        sched = KubeScheduler(self.bin_dir, work, kubeconfig or self.scheduler_kubeconfig, config)
        sched.start(timeout=timeout)
        self._components = [c for c in self._components if c.running()]
        self._components.append(sched)
        return sched

    def start_controller_manager(
        self,
        controllers: Sequence[str] = ("*",),
        *,
        extra_args: Sequence[str] = (),
        timeout: float = 120.0,
    ) -> KubeControllerManager:
        """Start kube-controller-manager on the local control plane (``--controllers`` = ``controllers``).

        While it runs, fake nodes get Lease heartbeats so its node lifecycle controller keeps them Ready.
        An external cluster has its own: this raises :class:`ControlPlaneError` there.
        """
        if self.external or self._apiserver is None:
            raise ControlPlaneError("an external cluster runs its own kube-controller-manager")
        if self.bin_dir is None or missing_binaries(self.bin_dir, ["kube-controller-manager"]):
            raise BinariesMissingError(f"kube-controller-manager not installed; {INSTALL_HINT}")
        kcm = KubeControllerManager(
            self.bin_dir,
            self.work_dir / "controller-managers" / uuid.uuid4().hex[:6],
            self.kubeconfig,
            root_ca=self.ca_cert_path,
            service_account_key=self._apiserver.sa_keys.key_path,
            controllers=controllers,
            extra_args=extra_args,
        )
        kcm.start(timeout=timeout)
        self._components = [c for c in self._components if c.running()]
        self._components.append(kcm)
        if self._nodes:
            self._start_heartbeats()
        return kcm

    # ---- cleanup between tests

    def cleanup(self) -> None:
        """Remove what tests made through this object: pods and namespaces from :meth:`create_namespace`,
        fake nodes from :meth:`add_gpu_node`; on the local control plane also every pod in ``default``."""
        with self._lock:
            namespaces, self._namespaces = list(self._namespaces), []
            nodes = list(self._nodes)
        if not self.external:
            self.force_delete_pods("default")
        for ns in namespaces:
            self.force_delete_pods(ns)
            # No namespace controller locally: the namespace stays Terminating, which is harmless.
            self.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)
        for node in nodes:
            self.delete_node(node)


class SchedulerFactory(Protocol):
    def __call__(
        self,
        config: str | Mapping[str, Any] | None = None,
        *,
        name: str = "kube-scheduler",
        timeout: float = 120.0,
    ) -> KubeScheduler: ...


def gpu_pod(
    name: str,
    gpus: int,
    *,
    namespace: str = "default",
    scheduler_name: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
    extra: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """A minimal Pod manifest asking for ``gpus`` ``nvidia.com/gpu`` (the image is never pulled)."""
    resources: dict[str, dict[str, str]] = {"requests": {"cpu": "100m", "memory": "64Mi"}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10", "resources": resources}],
            "terminationGracePeriodSeconds": 0,
        },
    }
    if scheduler_name:
        pod["spec"]["schedulerName"] = scheduler_name
    if node_selector:
        pod["spec"]["nodeSelector"] = dict(node_selector)
    if extra is not None:
        extra(pod)
    return pod


def _cluster_from_kubeconfig(kubeconfig: Path, work_dir: Path) -> tuple[str, Path | None]:
    """The current context's server URL and CA file (CA data is written to ``work_dir``)."""
    config = yaml.safe_load(kubeconfig.read_text()) or {}
    current = config.get("current-context")
    contexts = {c["name"]: c.get("context", {}) for c in config.get("contexts") or []}
    clusters = {c["name"]: c.get("cluster", {}) for c in config.get("clusters") or []}
    context = contexts.get(current) or (next(iter(contexts.values())) if contexts else {})
    cluster = clusters.get(context.get("cluster")) or (next(iter(clusters.values())) if clusters else {})
    server = str(cluster.get("server", ""))
    if cluster.get("certificate-authority"):
        ca = Path(cluster["certificate-authority"])
        return server, ca if ca.is_absolute() else (kubeconfig.parent / ca)
    if cluster.get("certificate-authority-data"):
        path = work_dir / "external-ca.crt"
        path.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        return server, path
    return server, None


@contextlib.contextmanager
def local_control_plane(work_dir: Path, bin_dir: Path | None = None) -> Iterator[ControlPlane]:
    """Context manager: a local control plane for the duration of the block."""
    cp = ControlPlane.start_local(bin_dir or find_bin_dir(), work_dir)
    try:
        yield cp
    finally:
        cp.stop()
