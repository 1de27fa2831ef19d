"""The Helm chart on the harness's real kube-apiserver: `helm install` (certs.mode none, webhook.url
pointing at a locally running `gpuplace webhook` with the harness CA as caBundle), the webhook's denial and
warning through the chart-installed configurations, `helm uninstall` leaving nothing behind; and native
constraints with the real kube-scheduler and no extender: a 70B pod lands only on nodes whose
nvidia.com/gpu.memory holds it, a pod's own affinity is kept (never widened), re-apply is idempotent."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import CHART, helm_binary
from tests.e2e.local_gpuplace import LocalWebhook
from tests.harness import ControlPlane, gpu_pod

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
NAME = "gpuplace-chart"  # fullnameOverride: not the `gpuplace` configurations test_webhook_e2e registers
GFD_MEMORY = "nvidia.com/gpu.memory"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
LLAMA_70B_TP2 = [
    "vllm",
    "serve",
    "meta-llama/Llama-3.1-70B-Instruct",
    "--tensor-parallel-size",
    "2",
    "--max-model-len",
    "8192",
]


class Helm:
    """helm against the harness kubeconfig, with its cache and config in a temporary directory."""

    def __init__(self, cp: ControlPlane, home: Path) -> None:
        self.cp = cp
        self.installed: list[tuple[str, str]] = []
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(helm_binary()), f"--kubeconfig={self.cp.kubeconfig}", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)}: {proc.stderr}")
        return proc

    def install(self, release: str, namespace: str, hook: LocalWebhook, *sets: str) -> list[dict[str, Any]]:
        """Install the chart with its webhooks pointed at `hook`; the objects the release made."""
        flags = [
            f
            for s in (
                f"fullnameOverride={NAME}",
                "certs.mode=none",
                f"webhook.url=https://127.0.0.1:{hook.port}",
                f"certs.caBundle={self.cp.ca.bundle_b64}",
                *sets,
            )
            for f in ("--set", s)
        ]
        self("install", release, str(CHART), "--namespace", namespace, *flags)
        self.installed.append((release, namespace))
        manifest = self("get", "manifest", release, "--namespace", namespace).stdout
        return [d for d in yaml.safe_load_all(manifest) if d]


@pytest.fixture(scope="module")
def webhook(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalWebhook]:
    if control_plane.external:
        pytest.skip("the API server of an external cluster cannot reach a webhook on this host's loopback")
    helm_binary()  # skips (fails in CI) before anything starts when helm is not built
    hook = LocalWebhook(
        control_plane,
        tmp_path_factory.mktemp("chart-webhook"),
        env={"GPUPLACE_WEBHOOK__NATIVE_CONSTRAINTS": "true"},
    )
    hook.start()
    yield hook
    hook.stop()


@pytest.fixture
def helm(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Helm]:
    h = Helm(control_plane, tmp_path)
    yield h
    for release, namespace in h.installed:  # what a failed test left (cluster-scoped names would clash)
        h("uninstall", release, "--namespace", namespace, "--ignore-not-found", check=False)


def _example(name: str, namespace: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]
    for d in docs:
        d["metadata"]["namespace"] = namespace
    return docs


def _apply(cp: ControlPlane, docs: list[dict[str, Any]], *flags: str) -> subprocess.CompletedProcess[str]:
    return cp.kubectl("apply", *flags, "-f", "-", input=yaml.safe_dump_all(docs), check=False)


def _until(what: str, probe: Any, timeout: float = 15.0) -> Any:
    """The apiserver picks up new webhook configurations asynchronously: retry `probe` until truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            assert value, f"timed out waiting for {what}"
            return value
        time.sleep(0.3)


def _gone(cp: ControlPlane, doc: dict[str, Any]) -> bool:
    args = ["get", doc["kind"], doc["metadata"]["name"], "--ignore-not-found", "-o", "name"]
    if doc["metadata"].get("namespace"):
        args += ["-n", doc["metadata"]["namespace"]]
    return cp.kubectl(*args).stdout.strip() == ""


def test_helm_installed_webhook_denies_and_warns_and_uninstall_leaves_nothing(control_plane, webhook, helm):
    release_ns = control_plane.create_namespace("gpuplace-chart")
    objects = helm.install("gpuplace", release_ns, webhook)
    kinds = {d["kind"] for d in objects}
    assert {
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "Deployment",
        "Service",
        "ConfigMap",
        "ClusterRole",
        "PodDisruptionBudget",
    } <= kinds
    ns = control_plane.create_namespace("chart-wh")

    def denied() -> subprocess.CompletedProcess[str] | None:
        proc = _apply(control_plane, _example("vllm-llama70b-on-l40s-oom.yaml", ns), "--dry-run=server")
        return proc if proc.returncode != 0 else None

    _until("the chart's validating webhook to deny", denied)
    proc = _apply(control_plane, _example("vllm-llama70b-on-l40s-oom.yaml", ns))
    assert proc.returncode != 0
    assert (
        'admission webhook "workloads.gpuplace.io" denied the request: gpuplace[oom-risk]: deploy/llama-70b '
        "container vllm needs 131.4 GiB/GPU for weights at tp=1; NVIDIA-L40S gives 40.1 GiB (44.6 x 0.90)."
        in proc.stderr
    )
    warned = _apply(control_plane, _example("vllm-llama8b-on-h100-misplaced.yaml", ns))
    assert warned.returncode == 0, warned.stderr
    assert "Warning: gpuplace[tier-misplacement]: deploy/llama-8b container vllm" in warned.stderr
    # The chart's mutating configuration stamped the template.
    deploy = control_plane.kubectl_json("get", "deploy", "llama-8b", "-n", ns)
    assert deploy["spec"]["template"]["metadata"]["annotations"]["gpuplace.io/model-resolved"] == (
        "meta-llama/Llama-3.1-8B-Instruct"
    )

    helm("uninstall", "gpuplace", "--namespace", release_ns)
    left = [f"{d['kind']}/{d['metadata']['name']}" for d in objects if not _gone(control_plane, d)]
    assert left == []
    # With the configurations gone, the OOM-prone Deployment is no longer judged.
    _until("the apiserver to drop the configurations", lambda: denied() is None)


@pytest.fixture
def native_cluster(control_plane, webhook, helm) -> str:
    """The chart installed (native constraints are the webhook's config: on in this module's process),
    two L40S nodes (46068 MiB per GPU) and two H100 nodes (81559 MiB); the namespace for the pods."""
    release_ns = control_plane.create_namespace("gpuplace-native")
    helm.install("gpuplace-native", release_ns, webhook, "config.webhook.native_constraints=true")
    for i in range(2):
        control_plane.add_gpu_node(f"l40s-{i}", product="NVIDIA-L40S", gpus=8, memory_mib=46068)
        control_plane.add_gpu_node(f"h100-{i}", gpus=4, memory_mib=81559)
    ns = control_plane.create_namespace("native")
    probe = gpu_pod("probe", 2, namespace=ns, extra=_serving(LLAMA_70B_TP2))
    _until("the chart's mutating webhook", lambda: _has_floor(control_plane, probe))
    return ns


def _serving(command: list[str]) -> Any:
    def set_command(pod: dict[str, Any]) -> None:
        pod["spec"]["containers"][0]["command"] = command

    return set_command


def _has_floor(cp: ControlPlane, pod: dict[str, Any]) -> bool:
    out = cp.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod))
    return GFD_MEMORY in out.stdout


def _terms(cp: ControlPlane, name: str, ns: str) -> list[dict[str, Any]]:
    pod = cp.kubectl_json("get", "pod", name, "-n", ns)
    return pod["spec"]["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]


def test_native_constraints_keep_a_70b_pod_on_gpus_that_hold_it_with_the_stock_scheduler(
    control_plane, native_cluster, scheduler
):
    ns = native_cluster
    scheduler()  # kube-scheduler's default profile: no extender
    # The L40S nodes have twice the free GPUs: the default scoring would spread pods onto them.
    pods = [gpu_pod(f"llama-70b-{i}", 2, namespace=ns, extra=_serving(LLAMA_70B_TP2)) for i in range(5)]
    control_plane.create(*pods[:4])
    placed = {
        p["metadata"]["name"]: control_plane.wait_for_pod_scheduled(p["metadata"]["name"], ns)
        for p in pods[:4]
    }
    assert sorted(set(placed.values())) == ["h100-0", "h100-1"], placed
    # The fifth finds the H100 GPUs taken and waits, rather than landing on a free L40S.
    control_plane.create(pods[4])
    reason = control_plane.wait_for_pod_unschedulable("llama-70b-4", ns)
    assert "node affinity" in reason, reason
    floor = control_plane.pod("llama-70b-0", ns)["metadata"]["annotations"]["gpuplace.io/gpu-memory-min"]
    assert 46068 < int(floor) < 81559
    gfd = [
        t for t in _terms(control_plane, "llama-70b-0", ns) if t["matchExpressions"][0]["key"] == GFD_MEMORY
    ]
    assert gfd == [
        {"matchExpressions": [{"key": GFD_MEMORY, "operator": "Gt", "values": [str(int(floor) - 1)]}]}
    ]


def test_a_pods_own_affinity_is_kept_and_never_widened(control_plane, native_cluster, scheduler):
    ns = native_cluster
    scheduler()

    def on_hosts(*hosts: str) -> Any:
        def extra(pod: dict[str, Any]) -> None:
            _serving(LLAMA_70B_TP2)(pod)
            expr = {"key": "kubernetes.io/hostname", "operator": "In", "values": list(hosts)}
            pod["spec"]["affinity"] = {
                "nodeAffinity": {REQUIRED: {"nodeSelectorTerms": [{"matchExpressions": [expr]}]}}
            }

        return extra

    # Pinned by the user to h100-1 or an L40S node: it lands on h100-1, the only one of those that holds it.
    control_plane.create(gpu_pod("mine", 2, namespace=ns, extra=on_hosts("h100-1", "l40s-0")))
    assert control_plane.wait_for_pod_scheduled("mine", ns) == "h100-1"
    terms = _terms(control_plane, "mine", ns)
    assert all(
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["h100-1", "l40s-0"]}
        in t["matchExpressions"]
        for t in terms
    ), terms
    # Pinned by the user to L40S nodes only: gpuplace's floor does not widen that, so it waits.
    control_plane.create(gpu_pod("too-small", 2, namespace=ns, extra=on_hosts("l40s-0", "l40s-1")))
    assert "node affinity" in control_plane.wait_for_pod_unschedulable("too-small", ns)


@pytest.mark.parametrize("flags", [(), ("--server-side",)], ids=["client-side-apply", "server-side-apply"])
def test_re_applying_a_constrained_deployment_changes_nothing(control_plane, native_cluster, flags):
    ns = native_cluster
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llama-70b", "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "llama-70b"}},
            "template": {
                "metadata": {"labels": {"app": "llama-70b"}},
                "spec": {
                    "affinity": {
                        "nodeAffinity": {
                            REQUIRED: {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {
                                                "key": "topology.kubernetes.io/zone",
                                                "operator": "In",
                                                "values": ["a", "b"],
                                            }
                                        ]
                                    }
                                ]
                            }
                        }
                    },
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.10.1",
                            "command": LLAMA_70B_TP2,
                            "resources": {"limits": {"nvidia.com/gpu": "2"}},
                        }
                    ],
                },
            },
        },
    }
    first = None
    for _ in range(3):
        proc = _apply(control_plane, [deploy], *flags)
        assert proc.returncode == 0, proc.stderr
        live = control_plane.kubectl_json("get", "deploy", "llama-70b", "-n", ns)
        first = first or live["spec"]["template"]
        assert live["spec"]["template"] == first
    assert live["metadata"]["generation"] == 1  # no re-apply changed the template (no rollout)
    terms = live["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]
    assert len(terms) == 2 and all(
        t["matchExpressions"][0]["key"] == "topology.kubernetes.io/zone" for t in terms
    )


@pytest.mark.parametrize(
    "sets",
    [
        ("scheduler.enabled=true", "scan.enabled=true", "dashboards.enabled=true"),
        ("certs.mode=none", "webhook.url=https://127.0.0.1:9443", "certs.caBundle=Zm9v"),
    ],
    ids=["bootstrap-everything-on", "url"],
)
def test_every_rendered_object_passes_the_apiservers_strict_validation(control_plane, sets):
    """`helm template` (every optional part on) applied with --dry-run=server --validate=strict: field
    names, CEL matchConditions, CronJob schedules and RBAC checked by the real kube-apiserver."""
    ns = control_plane.create_namespace("chart-dry-run")
    flags = [f for s in (f"fullnameOverride={NAME}-dry", *sets) for f in ("--set", s)]
    argv = [str(helm_binary()), "template", "gpuplace", str(CHART), "--namespace", ns, *flags]
    rendered = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "Deployment"} <= {
        d["kind"] for d in docs
    }
    proc = control_plane.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        input=yaml.safe_dump_all(docs),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(server dry run)") == len(docs)
