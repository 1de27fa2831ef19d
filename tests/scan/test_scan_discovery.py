"""GPU pods are found by nvidia.com/gpu, MIG resources and DRA claims, and grouped to the workload
that owns them, once each."""

from __future__ import annotations

from datetime import timedelta

from scan.discovery import discover, gpu_pod
from scan.inventory import Inventory
from tests.scan.objects import NOW, deployment, owner, pod, replicaset


def inv(*objs: dict) -> Inventory:
    return Inventory.from_objects(objs, now=NOW)


def test_pods_of_a_deployment_are_one_workload_with_its_replicas_and_age() -> None:
    found = discover(inv(
        deployment("llama", replicas=2, age=timedelta(days=2)), replicaset("llama-abc", "llama"),
        pod("llama-abc-1", owned_by=("ReplicaSet", "llama-abc")),
        pod("llama-abc-2", owned_by=("ReplicaSet", "llama-abc"), node_name="n2"),
    ))
    summary = [(w.ref.short, len(w.pods), w.desired_replicas, w.gpus) for w in found]
    assert summary == [("deploy/llama", 2, 2, 2)]
    assert found[0].created == NOW - timedelta(days=2)
    assert ("ReplicaSet", "llama-abc") in found[0].chain


def test_pods_without_gpus_are_not_workloads() -> None:
    cpu = pod("web", gpus=0)
    cpu["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    assert discover(inv(cpu)) == []


def test_mig_and_dra_pods_hold_gpus() -> None:
    mig = pod("mig", resource="nvidia.com/mig-1g.10gb")
    dra = pod("dra", gpus=0)
    dra["spec"]["containers"][0]["resources"] = {"claims": [{"name": "gpu"}]}
    dra["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]
    assert gpu_pod(mig) is not None and gpu_pod(mig).mig == {"1g.10gb": 1}  # type: ignore[union-attr]
    assert gpu_pod(dra) is not None and gpu_pod(dra).dra  # type: ignore[union-attr]


def test_job_of_a_cronjob_groups_to_the_cronjob() -> None:
    job = {"kind": "Job", "apiVersion": "batch/v1",
           "metadata": {"name": "nightly-1", "namespace": "ml",
                        "ownerReferences": owner("CronJob", "nightly")},
           "spec": {}}
    cron = {"kind": "CronJob", "apiVersion": "batch/v1", "metadata": {"name": "nightly", "namespace": "ml"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}
    found = discover(inv(cron, job, pod("nightly-1-x", owned_by=("Job", "nightly-1"))))
    assert [w.ref.short for w in found] == ["cronjob/nightly"]


def test_controller_labels_group_kserve_pods_to_their_inference_service() -> None:
    isvc = {"kind": "InferenceService", "apiVersion": "serving.kserve.io/v1beta1",
            "metadata": {"name": "chat", "namespace": "ml"}, "spec": {}}
    p = pod("chat-predictor-1", owned_by=("ReplicaSet", "chat-predictor-rs"),
            labels={"serving.kserve.io/inferenceservice": "chat"})
    assert [w.ref.short for w in discover(inv(isvc, p))] == ["isvc/chat"]


def test_an_owner_that_could_not_be_read_is_named_and_its_pod_is_checked() -> None:
    p = pod("llama-abc-1", owned_by=("ReplicaSet", "llama-abc"))
    (w,) = discover(inv(p))
    assert (w.ref.kind, w.name, w.obj) == ("ReplicaSet", "llama-abc", None)
    assert w.checked_object == p


def test_a_bare_pod_is_its_own_workload() -> None:
    (w,) = discover(inv(pod("debug")))
    assert w.ref.short == "pod/debug" and w.checked_object is w.pods[0].obj
