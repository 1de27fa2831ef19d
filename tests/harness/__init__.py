"""Test harness: a real Kubernetes control plane (etcd, kube-apiserver, kube-scheduler) run as local
processes from binaries built by ``hack/control-plane.sh``. See ``tests/harness/README.md``."""

from .certs import CertificateAuthority, CertPair
from .controlplane import (
    BINARIES,
    EXTERNAL_KUBECONFIG_ENV,
    GPU_RESOURCE,
    INSTALL_HINT,
    BinariesMissingError,
    ControlPlane,
    ControlPlaneError,
    KubeControllerManager,
    KubectlError,
    KubeScheduler,
    SchedulerFactory,
    SecureComponent,
    find_bin_dir,
    gpu_pod,
    local_control_plane,
    missing_binaries,
    pinned_versions,
    render_scheduler_config,
    wait_until,
)

__all__ = [
    "BINARIES",
    "EXTERNAL_KUBECONFIG_ENV",
    "GPU_RESOURCE",
    "INSTALL_HINT",
    "BinariesMissingError",
    "CertPair",
    "CertificateAuthority",
    "ControlPlane",
    "ControlPlaneError",
    "KubeControllerManager",
    "KubeScheduler",
    "KubectlError",
    "SchedulerFactory",
    "SecureComponent",
    "find_bin_dir",
    "gpu_pod",
    "local_control_plane",
    "missing_binaries",
    "pinned_versions",
    "render_scheduler_config",
    "wait_until",
]
