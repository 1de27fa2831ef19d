"""Fixtures for the e2e tests: a real control plane (see tests/harness/README.md).

* ``control_plane`` (session): a :class:`tests.harness.ControlPlane` — local etcd + kube-apiserver built
  by ``hack/control-plane.sh``, or the cluster named by ``$GPUPLACE_E2E_KUBECONFIG`` (e.g. kind).
* ``scheduler`` (function): a factory that starts kube-scheduler processes with a given
  KubeSchedulerConfiguration and stops them after the test.
* After every test that used ``control_plane``, what it made through the helpers (fake nodes,
  namespaces, pods in ``default`` locally) is removed.

Missing binaries make the tests skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.harness import (  # noqa: E402 - needs the repo root on sys.path
    EXTERNAL_KUBECONFIG_ENV,
    INSTALL_HINT,
    ControlPlane,
    KubeControllerManager,
    KubeScheduler,
    SchedulerFactory,
    find_bin_dir,
    gpu_pod,
    missing_binaries,
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where a missing control plane is a broken build, not an option."""
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: e2e tests must run)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is an e2e test, marked or not (``-m "not e2e"`` deselects it)."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    work_dir = tmp_path_factory.mktemp("control-plane")
    bin_dir = find_bin_dir()
    external = os.environ.get(EXTERNAL_KUBECONFIG_ENV)
    if external:
        cp = ControlPlane.connect(Path(external).expanduser(), work_dir, bin_dir=bin_dir)
    else:
        missing = missing_binaries(bin_dir)
        if missing:
            _unavailable(
                f"control-plane binaries missing in {bin_dir} ({', '.join(missing)}): {INSTALL_HINT}"
            )
        cp = ControlPlane.start_local(bin_dir, work_dir)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(autouse=True)
def _e2e_cleanup(request: pytest.FixtureRequest) -> Iterator[None]:
    """Remove fake nodes, namespaces and pods a test made, so tests don't see each other's objects."""
    cp: ControlPlane | None = None
    if "control_plane" in request.fixturenames:
        cp = request.getfixturevalue("control_plane")
    yield
    if cp is not None:
        cp.cleanup()


@pytest.fixture
def scheduler(control_plane: ControlPlane) -> Iterator[SchedulerFactory]:
    """``scheduler(config=None, *, name="kube-scheduler", timeout=120.0) -> KubeScheduler``.

    ``config`` is a KubeSchedulerConfiguration (YAML text or dict); the harness fills in
    ``clientConnection.kubeconfig`` and turns leader election off. Every scheduler started is stopped
    when the test ends. On an external cluster (kind) its own scheduler already runs as
    ``default-scheduler``: give yours another ``schedulerName`` and set it on the pods.
    """
    started: list[KubeScheduler] = []
    if control_plane.bin_dir is None or missing_binaries(control_plane.bin_dir, ["kube-scheduler"]):
        _unavailable(f"kube-scheduler binary missing: {INSTALL_HINT}")

    def start(
        config: str | Mapping[str, Any] | None = None,
        *,
        name: str = "kube-scheduler",
        timeout: float = 120.0,
    ) -> KubeScheduler:
        sched = control_plane.start_scheduler(config, name=name, timeout=timeout)
        started.append(sched)
        return sched

    yield start
    for sched in reversed(started):
        sched.stop()


@pytest.fixture
def controller_manager(control_plane: ControlPlane) -> Iterator[KubeControllerManager | None]:
    """Opt-in kube-controller-manager (all default controllers) for the test; ``None`` on an external
    cluster, which runs its own. With it, Deployments/Jobs create pods and namespaces get deleted."""
    if control_plane.external:
        yield None
        return
    if control_plane.bin_dir is None or missing_binaries(control_plane.bin_dir, ["kube-controller-manager"]):
        _unavailable(f"kube-controller-manager binary missing: {INSTALL_HINT}")
    kcm = control_plane.start_controller_manager()
    try:
        yield kcm
    finally:
        kcm.stop()


@pytest.fixture
def make_gpu_pod() -> Callable[..., dict[str, Any]]:
    """The :func:`gpu_pod` manifest builder, as a fixture (no import path games in test modules)."""
    return gpu_pod
