"""AdmissionReview requests shaped as kube-apiserver sends them."""

from __future__ import annotations

import uuid
from typing import Any

GROUP_VERSION = {
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "Job": ("batch", "v1", "jobs"),
    "Pod": ("", "v1", "pods"),
    "HorizontalPodAutoscaler": ("autoscaling", "v2", "horizontalpodautoscalers"),
    "ScaledObject": ("keda.sh", "v1alpha1", "scaledobjects"),
    "InferenceService": ("serving.kserve.io", "v1beta1", "inferenceservices"),
    "ResourceClaimTemplate": ("resource.k8s.io", "v1", "resourceclaimtemplates"),
    "ResourceClaim": ("resource.k8s.io", "v1", "resourceclaims"),
    "LeaderWorkerSet": ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"),
    "RayService": ("ray.io", "v1", "rayservices"),
    "Model": ("kubeai.org", "v1", "models"),
    "LLMInferenceService": ("serving.kserve.io", "v1alpha1", "llminferenceservices"),
    "DynamoGraphDeployment": ("nvidia.com", "v1alpha1", "dynamographdeployments"),
    "ModelAdapter": ("model.aibrix.ai", "v1alpha1", "modeladapters"),
}


def review(
    obj: dict[str, Any],
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    namespace: str | None = None,
) -> dict[str, Any]:
    kind = obj["kind"]
    group, version, resource = GROUP_VERSION[kind]
    ns = namespace or obj["metadata"].get("namespace", "default")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": obj["metadata"].get("name", ""),
            "namespace": ns,
            "operation": operation,
            "userInfo": {
                "username": "kubernetes-admin",
                "groups": ["system:masters", "system:authenticated"],
            },
            "object": obj,
            "oldObject": old,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl"},
        },
    }
