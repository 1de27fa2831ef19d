"""The admission webhook on a real kube-apiserver, driven by kubectl, with the shipped webhook
configurations from manifests/ pointed at a locally running `gpuplace webhook`."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.local_gpuplace import LocalWebhook
from tests.harness import ControlPlane

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
KEDA_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {
        "group": "keda.sh",
        "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def webhook(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalWebhook]:
    if control_plane.external:
        pytest.skip("the API server of an external cluster cannot reach a webhook on this host's loopback")
    hook = LocalWebhook(control_plane, tmp_path_factory.mktemp("webhook"))
    hook.start()
    configs = hook.configurations()
    control_plane.apply(KEDA_CRD, *configs)
    control_plane.kubectl("wait", "--for=condition=Established", "crd/scaledobjects.keda.sh", "--timeout=30s")
    time.sleep(1)  # the apiserver picks up new webhook configurations asynchronously
    yield hook
    hook.stop()
    hook.remove_configurations()


def example(name: str, namespace: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]
    for d in docs:
        d["metadata"]["namespace"] = namespace
    return docs


def kubectl_apply(
    cp: ControlPlane, docs: list[dict[str, Any]], *flags: str
) -> subprocess.CompletedProcess[str]:
    text = yaml.safe_dump_all(docs)
    return cp.kubectl("apply", *flags, "-f", "-", input=text, check=False)


def test_oom_prone_deployment_is_denied_with_the_design_message(control_plane, webhook):
    ns = control_plane.create_namespace("wh")
    proc = kubectl_apply(control_plane, example("vllm-llama70b-on-l40s-oom.yaml", ns))
    assert proc.returncode != 0
    assert (
        'admission webhook "workloads.gpuplace.io" denied the request: gpuplace[oom-risk]: deploy/llama-70b '
        "container vllm needs 131.4 GiB/GPU for weights at tp=1; NVIDIA-L40S gives 40.1 GiB (44.6 x 0.90)."
        in proc.stderr
    )
    assert control_plane.kubectl("get", "deploy", "llama-70b", "-n", ns, check=False).returncode != 0


def test_misplaced_deployment_is_created_with_a_warning_and_a_mutated_template(control_plane, webhook):
    ns = control_plane.create_namespace("wh")
    proc = kubectl_apply(control_plane, example("vllm-llama8b-on-h100-misplaced.yaml", ns))
    assert proc.returncode == 0, proc.stderr
    assert "Warning: gpuplace[tier-misplacement]: deploy/llama-8b container vllm" in proc.stderr
    deploy = control_plane.kubectl_json("get", "deploy", "llama-8b", "-n", ns)
    annotations = deploy["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["gpuplace.io/gpu-memory-min"]) > 16000
    assert annotations["gpuplace.io/model-resolved"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert annotations["gpuplace.io/nvlink"] == "none" and annotations["gpuplace.io/inputs-hash"]
    # Editing labels of the running deployment is not re-judged: no warning the second time.
    relabel = control_plane.kubectl("label", "deploy", "llama-8b", "-n", ns, "team=search")
    assert "Warning" not in relabel.stderr


def test_keda_scaled_object_with_default_min_replicas_warns_cold_start(control_plane, webhook):
    ns = control_plane.create_namespace("wh")
    docs = example("keda-llama70b-cold-start.yaml", ns)
    assert kubectl_apply(control_plane, docs[:1]).returncode == 0
    proc = kubectl_apply(control_plane, docs[1:])
    assert proc.returncode == 0, proc.stderr
    assert (
        "Warning: gpuplace[cold-start]: scaledobject/llama-70b-fp8 scales deployment/llama-70b-fp8 to zero "
        "(KEDA default minReplicaCount 0)" in proc.stderr
    )
    assert "67.7 GiB of weights" in proc.stderr  # the target was read through the API


def test_server_dry_run_previews_findings_and_stores_nothing(control_plane, webhook):
    ns = control_plane.create_namespace("wh")
    denied = kubectl_apply(control_plane, example("vllm-llama70b-on-l40s-oom.yaml", ns), "--dry-run=server")
    assert denied.returncode != 0 and "gpuplace[oom-risk]" in denied.stderr
    warned = kubectl_apply(
        control_plane, example("vllm-llama8b-on-h100-misplaced.yaml", ns), "--dry-run=server"
    )
    assert warned.returncode == 0 and "Warning: gpuplace[tier-misplacement]" in warned.stderr
    assert "(server dry run)" in warned.stdout
    listed = control_plane.kubectl_json("get", "deploy", "-n", ns)
    assert listed["items"] == []


def test_namespace_labelled_warn_turns_the_denial_into_a_warning(control_plane, webhook):
    ns = control_plane.create_namespace("wh", labels={"gpuplace.io/mode": "warn"})
    proc = kubectl_apply(control_plane, example("vllm-llama70b-on-l40s-oom.yaml", ns))
    assert proc.returncode == 0, proc.stderr
    assert "Warning: gpuplace[oom-risk]: deploy/llama-70b" in proc.stderr


def test_pod_without_gpus_is_skipped_by_match_conditions(control_plane, webhook):
    ns = control_plane.create_namespace("wh")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "cpu-only", "namespace": ns},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "vllm/vllm-openai:v0.10.1",
                    "command": ["vllm", "serve", "meta-llama/Llama-3.1-405B-Instruct"],
                }
            ]
        },
    }
    before = _requests(webhook)
    proc = kubectl_apply(control_plane, [pod])
    assert proc.returncode == 0 and "Warning" not in proc.stderr
    assert _requests(webhook) == before  # the apiserver never called the webhook


def test_webhook_down_fails_open_within_the_timeout(control_plane, webhook):
    ns = control_plane.create_namespace("wh")
    webhook.stop()
    started = time.monotonic()
    proc = kubectl_apply(control_plane, example("vllm-llama70b-on-l40s-oom.yaml", ns))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 10  # failurePolicy Ignore: refused connections are skipped, timeoutSeconds is 3
    webhook.start()


def _requests(hook: LocalWebhook) -> float:
    ctx = ssl.create_default_context(cafile=str(hook.cp.ca_cert_path))
    with urllib.request.urlopen(f"https://127.0.0.1:{hook.port}/metrics", context=ctx, timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gpuplace_webhook_requests_total{")
    )


def test_certs_bootstrap_as_its_own_service_account_fills_the_secret_and_the_ca_bundles(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    """`gpuplace certs --secret` with only the RBAC of manifests/overlays/bootstrap (names adapted to this
    test): the Secret gets a CA and a serving certificate for the Service, every webhook of both
    configurations trusts it, a second run keeps it, and two runs racing on an empty Secret agree."""
    import base64

    from tests.webhook.test_certs import handshake
    from webhook.certs import Issued

    if control_plane.external:
        pytest.skip("creates cluster-scoped RBAC and webhook configurations")
    ns = control_plane.create_namespace("certs")
    config_name = f"gpuplace-certs-e2e-{ns}"
    rbac = _bootstrap_rbac(ns, config_name)
    hooks = _inert_configurations(config_name, ns)
    control_plane.apply(*rbac, *hooks)
    token = control_plane.kubectl("create", "token", "gpuplace-certs", "-n", ns, "--duration=10m").stdout
    kubeconfig = tmp_path / "certs.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "e2e",
                        "cluster": {
                            "server": control_plane.server,
                            "certificate-authority": str(control_plane.ca_cert_path),
                        },
                    }
                ],
                "users": [{"name": "certs", "user": {"token": token.strip()}}],
                "contexts": [{"name": "certs", "context": {"cluster": "e2e", "user": "certs"}}],
                "current-context": "certs",
            }
        )
    )
    argv = [
        sys.executable,
        "-m",
        "gpuplace",
        "certs",
        f"--kubeconfig={kubeconfig}",
        "--secret=gpuplace-webhook-tls",
        f"--namespace={ns}",
        "--service=gpuplace-webhook",
        f"--webhook-config={config_name}",
        "--wait=10",
    ]

    def secret() -> dict[str, Any]:
        return dict(control_plane.kubectl_json("get", "secret", "gpuplace-webhook-tls", "-n", ns))

    def bundles() -> set[str]:
        out = set()
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            obj = control_plane.kubectl_json("get", kind, config_name)
            out |= {h["clientConfig"].get("caBundle", "") for h in obj["webhooks"]}
        return out

    try:
        first = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        stored = secret()
        assert stored["type"] == "kubernetes.io/tls"
        data = {k: base64.b64decode(v) for k, v in stored["data"].items()}
        assert set(data) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
        assert bundles() == {stored["data"]["ca.crt"]}
        issued = Issued.from_data(data)
        assert issued is not None
        handshake(issued, base64.b64decode(bundles().pop()), tmp_path, host=f"gpuplace-webhook.{ns}.svc")

        again = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "kept" in again.stderr, again.stderr
        assert secret()["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]

        control_plane.kubectl("delete", "secret", "gpuplace-webhook-tls", "-n", ns)
        racers = [subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        assert [p.wait(timeout=60) for p in racers] == [0, 0], [p.stderr.read() for p in racers if p.stderr]
        for p in racers:
            if p.stderr:
                p.stderr.close()
        assert bundles() == {secret()["data"]["ca.crt"]}
    finally:
        control_plane.kubectl(
            "delete",
            "validatingwebhookconfiguration,mutatingwebhookconfiguration",
            config_name,
            "--ignore-not-found",
            check=False,
        )
        for kind in ("clusterrolebinding", "clusterrole"):
            control_plane.kubectl("delete", kind, config_name, "--ignore-not-found", check=False)


def _bootstrap_rbac(ns: str, config_name: str) -> list[dict[str, Any]]:
    """manifests/overlays/bootstrap/rbac.yaml moved to `ns`, cluster-scoped names made unique."""
    docs = [d for d in yaml.safe_load_all((REPO / "manifests/overlays/bootstrap/rbac.yaml").read_text()) if d]
    for d in docs:
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            d["metadata"]["name"] = config_name
        else:
            d["metadata"]["namespace"] = ns
        for rule in d.get("rules", []):
            if rule.get("resourceNames") == ["gpuplace"]:
                rule["resourceNames"] = [config_name]
        for subject in d.get("subjects", []):
            subject["namespace"] = ns
        if d["kind"] == "ClusterRoleBinding":
            d["roleRef"]["name"] = config_name
    return docs


def _inert_configurations(config_name: str, ns: str) -> list[dict[str, Any]]:
    """The shipped configurations under another name, selecting no namespace (they never fire)."""
    docs = list(yaml.safe_load_all((REPO / "manifests/base/webhooks.yaml").read_text()))
    for doc in docs:
        doc["metadata"]["name"] = config_name
        for hook in doc["webhooks"]:
            hook["clientConfig"] = {"url": f"https://127.0.0.1:1{hook['clientConfig']['service']['path']}"}
            hook["namespaceSelector"] = {"matchLabels": {"gpuplace-certs-e2e": ns}}
    return docs


@pytest.mark.parametrize("target", ["base", "overlays/bootstrap", "overlays/cert-manager"])
def test_every_shipped_manifest_passes_the_apiservers_strict_validation(
    control_plane: ControlPlane, target: str
) -> None:
    """`kubectl kustomize manifests/<target>` applied with --dry-run=server (strict field validation, CEL
    matchConditions compiled, RBAC and PDB shapes checked by the real kube-apiserver). cert-manager's own
    kinds are left out: its CRDs are not installed here."""
    rendered = control_plane.kubectl("kustomize", str(REPO / "manifests" / target)).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    docs = [d for d in docs if not d["apiVersion"].startswith("cert-manager.io/")]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} <= kinds
    for d in docs:  # the webhook fixture's live configurations are also called gpuplace: create, not patch
        if d["kind"].endswith("WebhookConfiguration"):
            d["metadata"]["name"] = "gpuplace-dry-run-" + target.replace("/", "-")
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    # Namespaced objects can only be dry-run into a namespace that exists.
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(namespace))
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
