"""The CRDs that serve models on a real kube-apiserver: the shipped modelservers.gpuplace.io rule sends
them to /validate (denial, warnings, the not-judged note), and /mutate leaves them as applied."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.local_gpuplace import LocalWebhook
from tests.e2e.test_webhook_e2e import example, kubectl_apply
from tests.harness import ControlPlane
from tests.test_crds import serve_llm

pytestmark = pytest.mark.e2e

# (group, kind, plural, version): the CRDs of the examples, schema-less as the tests need them.
CRDS = [
    ("ray.io", "RayService", "rayservices", "v1"),
    ("kubeai.org", "Model", "models", "v1"),
    ("serving.kserve.io", "LLMInferenceService", "llminferenceservices", "v1alpha1"),
    ("nvidia.com", "DynamoGraphDeployment", "dynamographdeployments", "v1alpha1"),
    ("model.aibrix.ai", "ModelAdapter", "modeladapters", "v1alpha1"),
]


def crd(group: str, kind: str, plural: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
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
    control_plane.apply(*(crd(*c) for c in CRDS), *hook.configurations())
    for group, _, plural, _ in CRDS:
        control_plane.kubectl("wait", "--for=condition=Established", f"crd/{plural}.{group}", "--timeout=30s")
    time.sleep(1)  # the apiserver picks up new webhook configurations asynchronously
    yield hook
    hook.stop()
    hook.remove_configurations()


def test_a_ray_service_too_big_for_its_l4_workers_is_denied(control_plane, webhook):
    ns = control_plane.create_namespace("crd")
    obj = serve_llm("meta-llama/Llama-3.1-70B-Instruct")
    obj["metadata"]["namespace"] = ns
    proc = kubectl_apply(control_plane, [obj])
    assert proc.returncode != 0
    assert (
        'admission webhook "modelservers.gpuplace.io" denied the request: gpuplace[oom-risk]: rayservice/llm'
        in (proc.stderr)
    )
    assert control_plane.kubectl("get", "rayservice", "llm", "-n", ns, check=False).returncode != 0


def test_crd_examples_are_created_with_their_warnings_and_left_unpatched(control_plane, webhook):
    ns = control_plane.create_namespace("crd")
    expected = {
        "kubeai-llama8b-fp8-l4.yaml": "Warning: gpuplace[cold-start]: model/llama-3.1-8b-instruct-fp8-l4",
        "dynamo-vllm-disagg.yaml": "Warning: gpuplace[tier-misplacement]: dgd/vllm-disagg",
        "aibrix-modeladapter.yaml": "gpuplace[unknown-model]: modeladapter/qwen-code-lora not judged",
        "llmisvc-qwen7b.yaml": "",
        "rayservice-llama8b-serve-llm.yaml": "",
    }
    for name, warning in expected.items():
        docs = example(name, ns)
        proc = kubectl_apply(control_plane, docs)
        assert proc.returncode == 0, (name, proc.stderr)
        assert (warning in proc.stderr) if warning else ("gpuplace[" not in proc.stderr), (name, proc.stderr)
        stored = control_plane.kubectl_json(
            "get", docs[0]["kind"].lower(), docs[0]["metadata"]["name"], "-n", ns
        )
        assert stored["spec"] == yaml.safe_load(yaml.safe_dump(docs[0]["spec"])), name  # no patch
