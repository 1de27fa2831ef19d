"""Dynamic Resource Allocation (resource.k8s.io/v1) on the harness's real kube-apiserver and kube-scheduler
(v1.36: DRA GA, DRAPrioritizedList GA, DRAExtendedResource beta and on by default, so no flags).

Fake GPU nodes have no allocatable nvidia.com/gpu; their GPUs are ResourceSlices with the NVIDIA DRA
driver's attribute names (tests/dra_objects.py), and the DeviceClass gpu.nvidia.com is the driver chart's
(with extendedResourceName nvidia.com/gpu). The webhook reads claim templates through the API; the real
scheduler allocates claims from the slices; the extender sees DRA nodes' GPUs from their slices.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.dra_objects import gpu_device_class, gpu_slice
from tests.e2e.local_gpuplace import LocalWebhook
from tests.e2e.test_extender_e2e import (
    SCHEDULER_NAME,
    ExtenderProcess,
    run_extender,
    shipped_scheduler_config,
)
from tests.e2e.test_webhook_e2e import example, kubectl_apply
from tests.harness import ControlPlane, KubeControllerManager, SchedulerFactory, gpu_pod, wait_until

pytestmark = pytest.mark.e2e

FLOOR_ENV = "GPUPLACE_WEBHOOK__DRA_MEMORY_FLOOR"
PRODUCT = 'device.attributes["gpu.nvidia.com"].productName'
H100 = "NVIDIA H100 80GB HBM3"
L40S = "NVIDIA L40S"


@pytest.fixture(scope="module")
def dra_cluster(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """The DeviceClass gpu.nvidia.com; slices are added per test and everything is removed at the end
    (other modules' tests must not meet a DeviceClass that backs nvidia.com/gpu)."""
    control_plane.apply(gpu_device_class(extended_resource="nvidia.com/gpu"))
    yield control_plane
    control_plane.kubectl(
        "delete", "resourceslices", "-l", "gpuplace.io/e2e=true", "--ignore-not-found", check=False
    )
    control_plane.kubectl("delete", "deviceclass", "gpu.nvidia.com", "--ignore-not-found", check=False)


def dra_node(cp: ControlPlane, name: str, product: str, gpus: int, memory: str) -> None:
    """A node without allocatable nvidia.com/gpu whose GPUs are published by the NVIDIA DRA driver."""
    cp.add_gpu_node(name, gpus=0)
    arch = "Hopper" if "H100" in product else "Ada Lovelace"
    resource_slice = gpu_slice(name, product, gpus=gpus, memory=memory, architecture=arch)
    resource_slice["metadata"]["labels"] = {"gpuplace.io/e2e": "true"}
    cp.apply(resource_slice)


@pytest.fixture(scope="module")
def webhook(dra_cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalWebhook]:
    if dra_cluster.external:
        pytest.skip("the API server of an external cluster cannot reach a webhook on this host's loopback")
    # The opt-in memory floor on (its test below); it touches only claims made for pods.
    hook = LocalWebhook(dra_cluster, tmp_path_factory.mktemp("webhook-dra"), env={FLOOR_ENV: "true"})
    hook.start()
    dra_cluster.apply(*hook.configurations())
    wait_until(lambda: _webhook_answers(dra_cluster), timeout=30, what="the webhook configurations to apply")
    yield hook
    hook.stop()
    hook.remove_configurations()


def _webhook_answers(cp: ControlPlane) -> bool:
    ns = "default"
    probe = template("probe-z9", {"name": "gpu", "exactly": _exactly(f'{PRODUCT} == "NVIDIA Z9000"')}, ns)
    proc = kubectl_apply(cp, [probe], "--dry-run=server")
    return "gpuplace[unknown-model]" in proc.stderr


def _exactly(expression: str, count: int = 1) -> dict[str, Any]:
    return {
        "deviceClassName": "gpu.nvidia.com",
        "count": count,
        "selectors": [{"cel": {"expression": expression}}],
    }


def template(name: str, request: dict[str, Any], ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"spec": {"devices": {"requests": [request]}}},
    }


def claim(name: str, request: dict[str, Any], ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"devices": {"requests": [request]}},
    }


def vllm_deployment(name: str, model: str, template_name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": template_name}],
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.10.1",
                            "command": ["vllm", "serve", model],
                            "args": ["--max-model-len", "8192"],
                            "resources": {"claims": [{"name": "gpu"}]},
                        }
                    ],
                },
            },
        },
    }


def test_dra_oom_is_denied_with_the_design_message_and_a_fitting_claim_is_allocated_and_bound(
    dra_cluster: ControlPlane,
    webhook: LocalWebhook,
    scheduler: SchedulerFactory,
) -> None:
    cp = dra_cluster
    dra_node(cp, "dra-h100", H100, gpus=2, memory="81559Mi")
    dra_node(cp, "dra-l40s", L40S, gpus=2, memory="46068Mi")
    ns = cp.create_namespace("dra")

    # The OOM example, the DRA way: the template is created, the Deployment denied with the same message
    # as the nvidia.com/gpu form (tests/e2e/test_webhook_e2e.py).
    proc = kubectl_apply(cp, example("dra-vllm-llama70b-on-l40s-oom.yaml", ns))
    assert proc.returncode != 0
    assert (
        'admission webhook "workloads.gpuplace.io" denied the request: '
        "gpuplace[oom-risk]: deploy/llama-70b-dra container vllm needs 131.4 GiB/GPU for weights at tp=1; "
        "NVIDIA-L40S gives 40.1 GiB (44.6 x 0.90)." in proc.stderr
    ), proc.stderr
    assert cp.kubectl("get", "resourceclaimtemplate", "one-l40s", "-n", ns, check=False).returncode == 0
    assert cp.kubectl("get", "deploy", "llama-70b-dra", "-n", ns, check=False).returncode != 0

    # A fitting one: an 8B model on a claim for one H100 is admitted; the real scheduler allocates a device
    # of that product from the slice and binds the pod.
    scheduler()
    h100_claim = claim("one-h100", {"name": "gpu", "exactly": _exactly(f'{PRODUCT} == "{H100}"')}, ns)
    assert kubectl_apply(cp, [h100_claim]).returncode == 0

    def serve_8b(p: dict[str, Any]) -> None:
        c = p["spec"]["containers"][0]
        c["image"], c["args"] = (
            "vllm/vllm-openai:v0.10.1",
            ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct"],
        )
        c["resources"] = {"claims": [{"name": "gpu"}]}
        p["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimName": "one-h100"}]

    pod = gpu_pod("llama-8b", 0, namespace=ns, extra=serve_8b)
    created = kubectl_apply(cp, [pod])
    assert created.returncode == 0, created.stderr
    assert "gpuplace[tier-misplacement]: pod/llama-8b container main" in created.stderr  # judged, not denied
    assert cp.wait_for_pod_scheduled("llama-8b", ns, timeout=60) == "dra-h100"
    allocated = cp.kubectl_json("get", "resourceclaim", "one-h100", "-n", ns)["status"]["allocation"]
    [result] = allocated["devices"]["results"]
    assert result["driver"] == "gpu.nvidia.com" and result["pool"] == "dra-h100"
    assert result["device"] in {"gpu-0", "gpu-1"}


def test_first_available_claims_are_judged_per_choice(
    dra_cluster: ControlPlane, webhook: LocalWebhook
) -> None:
    cp = dra_cluster
    ns = cp.create_namespace("dra-fa")
    request = {
        "name": "gpu",
        "firstAvailable": [
            {"name": "h100", **_exactly(f'{PRODUCT} == "{H100}"')},
            {"name": "l40s", **_exactly(f'{PRODUCT} == "{L40S}"', count=2)},
        ],
    }
    assert kubectl_apply(cp, [template("h100-else-2-l40s", request, ns)]).returncode == 0
    # Qwen2.5-32B bf16 at tp=1: one H100 holds it, two L40S at tp=1 do not: a warning for that choice.
    fits = kubectl_apply(
        cp, [vllm_deployment("qwen-32b", "Qwen/Qwen2.5-32B-Instruct", "h100-else-2-l40s", ns)]
    )
    assert fits.returncode == 0, fits.stderr
    assert "Warning: gpuplace[oom-risk]: deploy/qwen-32b container vllm" in fits.stderr
    assert "(firstAvailable gpu/l40s; another choice fits)" in fits.stderr
    # Llama-3.1-70B bf16 at tp=1 fits neither: denied, each choice named.
    denied = kubectl_apply(
        cp, [vllm_deployment("llama-70b", "meta-llama/Llama-3.1-70B-Instruct", "h100-else-2-l40s", ns)]
    )
    assert denied.returncode != 0 and "gpuplace[oom-risk]: deploy/llama-70b" in denied.stderr
    assert "(firstAvailable gpu/h100)" in denied.stderr


def test_bad_dra_input_gets_a_reason_never_a_denial_on_a_guess(
    dra_cluster: ControlPlane,
    webhook: LocalWebhook,
) -> None:
    cp = dra_cluster
    ns = cp.create_namespace("dra-bad")
    missing = kubectl_apply(
        cp, [vllm_deployment("no-template", "meta-llama/Llama-3.1-70B-Instruct", "not-there", ns)]
    )
    assert missing.returncode == 0, missing.stderr
    assert (
        "gpuplace[unknown-model]: deploy/no-template container vllm cannot size GPU memory: "
        "ResourceClaimTemplate not-there lookup failed" in missing.stderr
    )
    unread = template("odd", {"name": "gpu", "exactly": _exactly(f"{PRODUCT}.size() > 3")}, ns)
    assert kubectl_apply(cp, [unread]).returncode == 0
    odd = kubectl_apply(cp, [vllm_deployment("odd", "meta-llama/Llama-3.1-70B-Instruct", "odd", ns)])
    assert odd.returncode == 0 and "is not one gpuplace reads" in odd.stderr


@pytest.fixture(scope="module")
def extender(
    dra_cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExtenderProcess]:
    yield from run_extender(dra_cluster, tmp_path_factory)


def test_dra_backed_nvidia_gpu_goes_through_the_extender_on_the_slices_gpus(
    dra_cluster: ControlPlane,
    scheduler: SchedulerFactory,
    extender: ExtenderProcess,
) -> None:
    cp = dra_cluster
    dra_node(cp, "xr-l40s", L40S, gpus=4, memory="46068Mi")
    dra_node(cp, "xr-h100", H100, gpus=4, memory="81559Mi")
    extender.wait_until_it_sees(["xr-l40s", "xr-h100"])
    ns = cp.create_namespace("dra-xr")

    def serve_70b(p: dict[str, Any]) -> None:
        c = p["spec"]["containers"][0]
        c["image"] = "vllm/vllm-openai:v0.10.1"
        c["args"] = [
            "vllm",
            "serve",
            "meta-llama/Llama-3.1-70B-Instruct",
            "--max-model-len",
            "8192",
            "--tensor-parallel-size",
            "2",
        ]

    pod = gpu_pod(
        "llama-70b",
        2,
        namespace=ns,
        scheduler_name=SCHEDULER_NAME,
        annotations={"gpuplace.io/nvlink": "none"},
        extra=serve_70b,
    )
    # The extender's own verdict on the DRA nodes: the L40S node is refused with its usual reason.
    probe = {**pod, "metadata": {**pod["metadata"], "uid": ""}}
    verdict = extender.post("filter", {"Pod": probe, "Nodes": None, "NodeNames": ["xr-l40s", "xr-h100"]})
    assert verdict["NodeNames"] == ["xr-h100"], verdict
    assert "gpuplace: L40S GPUs hold" in verdict["FailedAndUnresolvableNodes"]["xr-l40s"]

    # Through the real scheduler: it calls the extender (the pod asks for nvidia.com/gpu), allocates the
    # DRA-backed extended resource from the slice, and the extender binds.
    scheduler(shipped_scheduler_config(extender.url), name="kube-scheduler-gpuplace")
    cp.create(pod)
    assert cp.wait_for_pod_scheduled("llama-70b", ns, timeout=60) == "xr-h100"
    assert extender.log_lines(f"bound {ns}/llama-70b ")
    status = cp.pod("llama-70b", ns).get("status", {}).get("extendedResourceClaimStatus") or {}
    assert status.get("resourceClaimName"), cp.pod("llama-70b", ns).get("status")


def floor_webhook(hook: LocalWebhook) -> dict[str, Any]:
    """The mutating webhook docs/dra.md says to add with webhook.dra_memory_floor."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "gpuplace-dra-floor"},
        "webhooks": [
            {
                "name": "claims.gpuplace.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Ignore",
                "timeoutSeconds": 3,
                "rules": [
                    {
                        "apiGroups": ["resource.k8s.io"],
                        "apiVersions": ["v1"],
                        "resources": ["resourceclaims"],
                        "operations": ["CREATE"],
                        "scope": "Namespaced",
                    }
                ],
                "clientConfig": {
                    "url": f"https://127.0.0.1:{hook.port}/mutate",
                    "caBundle": hook.cp.ca.bundle_b64,
                },
                "matchConditions": [
                    {
                        "name": "made-for-a-pod",
                        "expression": "has(object.metadata.annotations) && "
                        "'resource.kubernetes.io/pod-claim-name' in object.metadata.annotations",
                    }
                ],
            }
        ],
    }


def test_memory_floor_makes_the_allocator_itself_keep_the_model_off_small_gpus(
    dra_cluster: ControlPlane,
    webhook: LocalWebhook,
    scheduler: SchedulerFactory,
    controller_manager: KubeControllerManager | None,
) -> None:
    cp = dra_cluster
    cp.apply(floor_webhook(webhook))
    try:
        dra_node(cp, "floor-l40s", L40S, gpus=2, memory="46068Mi")
        dra_node(cp, "floor-h100", H100, gpus=2, memory="81559Mi")
        ns = cp.create_namespace("dra-floor")
        any_gpu = template("any-gpu", {"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}, ns)
        assert kubectl_apply(cp, [any_gpu]).returncode == 0
        # Qwen2.5-32B bf16 at tp=1 needs ~73 GiB of one GPU: no selector of the user's says so, the
        # stock scheduler has no extender; the floor on the pod's own claim is what keeps it off the L40S.
        scheduler()
        created = kubectl_apply(cp, [vllm_deployment("qwen-32b", "Qwen/Qwen2.5-32B-Instruct", "any-gpu", ns)])
        assert created.returncode == 0, created.stderr

        def claim_of_pod() -> dict[str, Any] | None:
            items = cp.kubectl_json("get", "resourceclaims", "-n", ns)["items"]
            return items[0] if items and items[0].get("status", {}).get("allocation") else None

        claim_obj = wait_until(claim_of_pod, timeout=90, what="the pod's claim to be allocated")
        [selector] = claim_obj["spec"]["devices"]["requests"][0]["exactly"]["selectors"]
        assert "memory.compareTo(quantity(" in selector["cel"]["expression"], selector
        [result] = claim_obj["status"]["allocation"]["devices"]["results"]
        assert result["pool"] == "floor-h100", result
    finally:
        cp.kubectl(
            "delete", "mutatingwebhookconfiguration", "gpuplace-dra-floor", "--ignore-not-found", check=False
        )
