"""charts/gpuplace: `helm lint` clean, and `helm template` renders the same objects as the kustomize
manifests for the same settings (kinds, names, webhook rules and match conditions, RBAC, pod specs,
config), so either install gives the same cluster state."""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from common.config import Config, load_config
from gpuplace.chartschema import render as render_schema
from tests.chart import CHART, NAMESPACE, REPO, _unavailable, by_key, helm, render
from tests.harness import find_bin_dir, missing_binaries

LABELS_IGNORED = {"app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "helm.sh/chart"}
# Helm runs the bootstrap Job as a post-install/upgrade hook (a Job's template is immutable).
HOOK_ANNOTATIONS = {"helm.sh/hook", "helm.sh/hook-delete-policy"}


def kustomize(*targets: str) -> list[dict[str, Any]]:
    bin_dir = find_bin_dir()
    if missing_binaries(bin_dir, ["kubectl"]):
        _unavailable(f"kubectl missing in {bin_dir}: run `bash hack/control-plane.sh install`")
    docs: list[dict[str, Any]] = []
    for target in targets:
        out = subprocess.run(
            [str(bin_dir / "kubectl"), "kustomize", str(REPO / "manifests" / target)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        docs.extend(d for d in yaml.safe_load_all(out) if d)
    # The chart installs into the release namespace (`helm install -n gpuplace-system --create-namespace`).
    return [d for d in docs if d["kind"] != "Namespace"]


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The object without what only says who rendered it: Helm's labels, the config checksum, hooks."""
    d = copy.deepcopy(doc)
    meta = d["metadata"]
    labels = {k: v for k, v in (meta.pop("labels", None) or {}).items() if k not in LABELS_IGNORED}
    annotations = {
        k: v for k, v in (meta.pop("annotations", None) or {}).items() if k not in HOOK_ANNOTATIONS
    }
    if annotations:
        meta["annotations"] = annotations
    for template in _pod_templates(d):
        tmeta = template.get("metadata") or {}
        tmeta.pop("annotations", None)  # checksum/config
        tmeta["labels"] = {
            k: v for k, v in (tmeta.get("labels") or {}).items() if k == "app.kubernetes.io/name"
        }
    if d["kind"] == "ConfigMap":
        d["data"] = {k: _config_value(k, v) for k, v in d["data"].items()}
    d["_labels"] = labels
    return d


def _pod_templates(d: dict[str, Any]) -> list[dict[str, Any]]:
    spec = d.get("spec") or {}
    if d["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]]
    return [spec["template"]] if "template" in spec else []


def _config_value(key: str, text: str) -> Any:
    """The gpuplace config as the webhook loads it (comments and spelled-out defaults do not count)."""
    data = yaml.safe_load(text)
    return Config.model_validate(data).model_dump() if key == "config.yaml" else data


def _assert_same(helm_docs: list[dict[str, Any]], kustomize_docs: list[dict[str, Any]]) -> None:
    chart, kust = by_key(helm_docs), by_key(kustomize_docs)
    assert sorted(chart) == sorted(kust)
    for key, want in kust.items():
        got, expected = _comparable(chart[key]), _comparable(want)
        # Every label the kustomize object has, the chart's has too (and Helm's own on top).
        assert expected.pop("_labels").items() <= got.pop("_labels").items(), key
        assert got == expected, key


@pytest.mark.parametrize(
    ("sets", "targets"),
    [
        ((), ("overlays/bootstrap",)),
        (("certs.mode=certManager",), ("overlays/cert-manager",)),
        (("scheduler.enabled=true",), ("overlays/bootstrap", "scheduler")),
    ],
    ids=["bootstrap", "cert-manager", "with-scheduler"],
)
def test_chart_renders_the_same_objects_as_the_kustomize_manifests(sets, targets):
    _assert_same(render(*sets), kustomize(*targets))


@pytest.mark.parametrize(
    "sets",
    [
        (),
        ("certs.mode=certManager",),
        ("certs.mode=none", "webhook.url=https://10.0.0.5:8443", "certs.caBundle=Zm9v"),
        ("scheduler.enabled=true", "scan.enabled=true", "dashboards.enabled=true"),
    ],
    ids=["bootstrap", "cert-manager", "none", "everything-on"],
)
def test_helm_lint_is_clean(sets):
    flags = [f for s in sets for f in ("--set", s)]
    out = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *flags).stdout
    assert "0 chart(s) failed" in out and "[WARNING]" not in out and "[ERROR]" not in out


def test_values_schema_is_generated_from_the_config_model():
    assert (CHART / "values.schema.json").read_text() == render_schema(), (
        "regenerate: python -m gpuplace.chartschema > charts/gpuplace/values.schema.json"
    )


def test_schema_refuses_a_config_field_the_webhook_would_refuse():
    proc = helm("template", "x", str(CHART), "--set", "config.webhook.mod=warn", check=False)
    assert proc.returncode != 0 and "additional properties 'mod' not allowed" in proc.stderr
    proc = helm("template", "x", str(CHART), "--set", "config.webhook.mode=strict", check=False)
    assert proc.returncode != 0 and "/config/webhook/mode" in proc.stderr


def test_none_mode_without_a_url_fails_with_what_to_set():
    proc = helm("template", "x", str(CHART), "--set", "certs.mode=none", check=False)
    assert proc.returncode != 0 and "certs.mode none needs webhook.url" in proc.stderr


def test_config_values_reach_the_webhook_config_and_load(tmp_path):
    docs = by_key(
        render(
            "config.webhook.mode=warn",
            "config.webhook.exempt_namespaces={research,sandbox}",
            "config.webhook.native_constraints=true",
            "config.severity.tier-misplacement=info",
            set_json=('config.catalog.prices={"H100-SXM-80GB": 3.9}',),
        )
    )
    path = tmp_path / "config.yaml"
    path.write_text(docs[("ConfigMap", NAMESPACE, "gpuplace-config")]["data"]["config.yaml"])
    cfg = load_config(str(path), environ={})
    assert cfg.webhook.mode == "warn" and cfg.webhook.exempt_namespaces == ["research", "sandbox"]
    assert cfg.webhook.native_constraints is True and cfg.webhook.cert_file == "/certs/tls.crt"
    assert cfg.severity == {"tier-misplacement": "info"} and cfg.catalog.prices == {"H100-SXM-80GB": 3.9}


def test_url_mode_points_every_webhook_at_the_url_with_the_ca_bundle():
    bundle = base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()
    docs = render("certs.mode=none", "webhook.url=https://127.0.0.1:9443/", f"certs.caBundle={bundle}")
    configs = [d for d in docs if d["kind"].endswith("WebhookConfiguration")]
    assert len(configs) == 2
    for doc in configs:
        path = "/mutate" if doc["kind"].startswith("Mutating") else "/validate"
        for hook in doc["webhooks"]:
            assert hook["clientConfig"] == {"url": f"https://127.0.0.1:9443{path}", "caBundle": bundle}
    assert not {d["kind"] for d in docs} & {"Job", "CronJob", "Certificate"}


def test_pod_placement_values_reach_the_webhook_deployment():
    docs = by_key(
        render(
            "webhook.replicas=3",
            "webhook.priorityClassName=system-cluster-critical",
            "webhook.nodeSelector.node-role\\.kubernetes\\.io/control-plane=",
            "webhook.tolerations[0].operator=Exists",
            "webhook.pdb.minAvailable=2",
            "extraLabels.team=platform",
        )
    )
    deploy = docs[("Deployment", NAMESPACE, "gpuplace-webhook")]
    spec = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["replicas"] == 3 and spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert docs[("PodDisruptionBudget", NAMESPACE, "gpuplace-webhook")]["spec"]["minAvailable"] == 2
    assert all(d["metadata"]["labels"]["team"] == "platform" for d in docs.values())
    # Selectors stay as in manifests/ (an upgrade must not orphan the pods).
    assert deploy["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "gpuplace-webhook"}}


def test_fullname_override_renames_every_object_and_reference():
    docs = render("fullnameOverride=gp", "scheduler.enabled=true")
    names = {d["metadata"]["name"] for d in docs}
    assert all(n == "gp" or n.startswith("gp-") for n in names), names
    # Left: the namespace, the chart's version label, and the scheduler pod's volume name (local to it).
    left = set(re.findall(r"gpuplace-[a-z0-9.-]+", json.dumps(docs)))
    assert left <= {"gpuplace-system", "gpuplace-0.1.0", "gpuplace-config"}, left


def test_scan_cronjob_runs_scan_report_when_enabled():
    assert not [d for d in render() if d["metadata"]["name"] == "gpuplace-scan"]
    docs = by_key(render("scan.enabled=true"))
    cron = docs[("CronJob", NAMESPACE, "gpuplace-scan")]
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["scan", "--report"]
    assert ("ClusterRoleBinding", "", "gpuplace-scan") in docs


def test_dashboard_configmap_holds_the_repo_dashboard_with_the_sidecar_label():
    docs = by_key(render("dashboards.enabled=true"))
    cm = docs[("ConfigMap", NAMESPACE, "gpuplace-dashboards")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["gpuplace.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "gpuplace.json").read_text())
