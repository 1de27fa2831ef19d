"""The CRDs that serve models (Ray, KubeAI, KServe LLMInferenceService, AIBrix, Dynamo), with manifests
written from each project's documented form: what gpuplace reads from them, what it says when it cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from placement.checks import CheckContext, check_objects, servings
from placement.coverage import NO_MODEL, NOT_JUDGED_LEVEL, Coverage
from placement.findings import Code, Finding, Severity
from placement.workload import Workload, extract

CTX = CheckContext.default()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
L4, H100, A10G = "NVIDIA-L4", "NVIDIA-H100-80GB-HBM3", "NVIDIA-A10G"


def read(text: str) -> dict[str, Any]:
    obj = yaml.safe_load(text)
    assert isinstance(obj, dict)
    return obj


def workload(obj: dict[str, Any]) -> Workload:
    found = extract(obj, CTX.gpus)
    assert found is not None
    return found


def findings(obj: dict[str, Any]) -> list[Finding]:
    result = check_objects([obj], CTX)
    assert result.errors == []
    return [f for _, f in result.findings]


def coverage(obj: dict[str, Any]) -> list[Coverage]:
    return [c for _, c in check_objects([obj], CTX).coverage]


def codes(obj: dict[str, Any]) -> set[str]:
    return {f.code.value for f in findings(obj)}


# --- Ray (ray.io/v1) --------------------------------------------------------------------------------------

SERVE_LLM = """
apiVersion: ray.io/v1
kind: RayService
metadata: {name: llm, namespace: ns}
spec:
  serveConfigV2: |
    applications:
    - name: llms
      import_path: ray.serve.llm:build_openai_app
      route_prefix: /
      args:
        llm_configs:
        - model_loading_config:
            model_id: llama
            model_source: MODEL
          engine_kwargs:
            tensor_parallel_size: TP
            max_model_len: 8192
          ACCELERATOR
          deployment_config:
            autoscaling_config:
              min_replicas: 2
              max_replicas: 4
  rayClusterConfig:
    headGroupSpec:
      rayStartParams: {num-gpus: "0"}
      template:
        spec:
          containers:
          - name: ray-head
            image: rayproject/ray-llm:2.52.0-py311-cu128
    workerGroupSpecs:
    - groupName: gpu
      replicas: 1
      minReplicas: 1
      maxReplicas: 4
      template:
        spec:
          nodeSelector: {nvidia.com/gpu.product: NVIDIA-L4}
          containers:
          - name: llm
            image: rayproject/ray-llm:2.52.0-py311-cu128
            resources: {limits: {nvidia.com/gpu: "2"}}
"""


def serve_llm(model: str = "meta-llama/Llama-3.1-8B-Instruct", tp: int = 2, accelerator: str = "") -> dict:
    text = SERVE_LLM.replace("MODEL", model).replace("TP", str(tp))
    return read(text.replace("ACCELERATOR", f"accelerator_type: {accelerator}" if accelerator else ""))


def test_ray_serve_llm_config_gives_model_parallelism_replicas_and_the_worker_groups_tier():
    [s] = servings(workload(serve_llm()), CTX)
    assert s.model_name == "meta-llama/Llama-3.1-8B-Instruct" and s.resolved is not None
    assert s.engine.engine == "vllm" and s.engine.tp == 2 and s.explicit_max_model_len == 8192
    assert s.gpus_per_replica == 2 and s.workload.replicas == 2  # autoscaling_config.min_replicas
    assert [g.id for g in s.workload.tier.gpus] == ["L4"]


def test_ray_accelerator_type_pins_the_tier_over_the_worker_group():
    [s] = servings(workload(serve_llm(accelerator="H100")), CTX)
    assert s.workload.tier.source == "accelerator_type H100"
    assert s.workload.tier.gpus[0].id.startswith("H100")


def test_ray_serve_llm_model_too_big_for_the_pinned_l4s_is_denied():
    found = findings(serve_llm("meta-llama/Llama-3.1-70B-Instruct"))
    assert any(f.code is Code.OOM_RISK and f.effective_severity is Severity.ERROR for f in found)


def test_ray_replica_larger_than_the_cluster_can_ever_hold_is_config_invalid():
    # tp=16: a replica needs 16 GPUs, the worker group holds at most 4 pods x 2 GPUs.
    [f] = [f for f in findings(serve_llm(tp=16)) if f.code is Code.CONFIG_INVALID][:1]
    assert "at most 8" in f.message


KUBERAY_VLLM_SAMPLE = """
apiVersion: ray.io/v1
kind: RayService
metadata: {name: llama-3-8b, namespace: ns}
spec:
  serveConfigV2: |
    applications:
    - name: llm
      route_prefix: /
      import_path: ray-operator.config.samples.vllm.serve:model
      deployments:
      - name: VLLMDeployment
        num_replicas: 1
      runtime_env:
        working_dir: "https://github.com/ray-project/kuberay/archive/master.zip"
        pip: ["vllm==0.5.4"]
        env_vars:
          MODEL_ID: "meta-llama/Meta-Llama-3-8B-Instruct"
          TENSOR_PARALLELISM: "2"
  rayClusterConfig:
    headGroupSpec:
      template:
        spec:
          containers:
          - {name: ray-head, image: rayproject/ray-ml:2.33.0.914af0-py311}
    workerGroupSpecs:
    - replicas: 1
      minReplicas: 0
      maxReplicas: 4
      groupName: gpu-group
      template:
        spec:
          containers:
          - name: llm
            image: rayproject/ray-ml:2.33.0.914af0-py311
            resources: {limits: {nvidia.com/gpu: "2"}}
"""


def test_kuberays_vllm_sample_reads_model_and_tp_from_the_runtime_env():
    [s] = servings(workload(read(KUBERAY_VLLM_SAMPLE)), CTX)
    assert s.model_name == "meta-llama/Meta-Llama-3-8B-Instruct" and s.engine.tp == 2
    assert s.gpus_per_replica == 2 and coverage(read(KUBERAY_VLLM_SAMPLE))[0].level == "full"


def test_a_custom_ray_serve_app_is_not_judged_and_says_why():
    custom = KUBERAY_VLLM_SAMPLE.replace('pip: ["vllm==0.5.4"]', "pip: []").replace("VLLMDeployment", "App")
    obj = read(custom.replace("ray-operator.config.samples.vllm.serve:model", "app.main:build"))
    [f] = findings(obj)
    assert f.code is Code.UNKNOWN_MODEL and "not judged" in f.message and "custom code" in f.message
    assert coverage(obj) == [Coverage(NOT_JUDGED_LEVEL, "custom-serve-app")]


def test_a_serve_config_that_is_not_yaml_is_not_judged():
    obj = serve_llm()
    obj["spec"]["serveConfigV2"] = "applications: [unclosed"
    assert coverage(obj) == [Coverage(NOT_JUDGED_LEVEL, "unreadable-spec")]


def test_a_ray_cluster_whose_head_serves_vllm_over_ray_spans_the_workers_gpus():
    obj = read("""
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: vllm, namespace: ns}
spec:
  headGroupSpec:
    template:
      spec:
        nodeSelector: {nvidia.com/gpu.product: NVIDIA-L4}
        containers:
        - name: head
          image: vllm/vllm-openai:v0.10.1
          command: [sh, -c]
          args:
          - >-
            ray start --head && vllm serve Qwen/Qwen2.5-7B-Instruct --tensor-parallel-size 2
            --distributed-executor-backend ray --max-model-len 8192
          resources: {limits: {nvidia.com/gpu: "1"}}
  workerGroupSpecs:
  - groupName: gpu
    replicas: 1
    template:
      spec:
        containers:
        - name: worker
          image: vllm/vllm-openai:v0.10.1
          resources: {limits: {nvidia.com/gpu: "1"}}
""")
    [s] = servings(workload(obj), CTX)  # the worker group runs `ray start`, not an engine
    assert s.container.name == "head" and s.engine.tp == 2 and s.gpus_per_replica == 2
    assert Code.CONFIG_INVALID.value not in codes(obj)


def test_a_ray_cluster_without_an_engine_is_judged_without_a_model():
    obj = read("""
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: train, namespace: ns}
spec:
  headGroupSpec:
    template: {spec: {containers: [{name: head, image: rayproject/ray:2.40.0}]}}
  workerGroupSpecs:
  - groupName: gpu
    replicas: 2
    template:
      spec:
        containers:
        - {name: w, image: rayproject/ray:2.40.0-gpu, resources: {limits: {nvidia.com/gpu: "8"}}}
""")
    assert codes(obj) == {Code.UNKNOWN_MODEL.value}
    assert coverage(obj) == [Coverage(NO_MODEL)]


def test_a_ray_service_on_cpu_workers_is_not_a_gpu_workload():
    obj = serve_llm()
    [group] = obj["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    del group["template"]["spec"]["containers"][0]["resources"]
    assert extract(obj, CTX.gpus) is None and findings(obj) == [] and coverage(obj) == []


# --- KubeAI (kubeai.org/v1) ------------------------------------------------------------------------------

KUBEAI_L4 = """
apiVersion: kubeai.org/v1
kind: Model
metadata: {name: llama-3.1-8b-instruct-fp8-l4, namespace: kubeai}
spec:
  features: [TextGeneration]
  url: hf://neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8
  engine: VLLM
  args:
    - --max-model-len=16384
    - --max-num-batched-token=16384
    - --gpu-memory-utilization=0.9
  minReplicas: 0
  maxReplicas: 3
  resourceProfile: nvidia-gpu-l4:1
"""


def test_kubeai_model_reads_url_engine_args_and_the_profiles_gpu():
    [s] = servings(workload(read(KUBEAI_L4)), CTX)
    assert s.model_name == "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8" and s.resolved is not None
    assert s.engine.engine == "vllm" and s.explicit_max_model_len == 16384 and s.engine.mem_fraction == 0.9
    assert s.gpus_per_replica == 1 and [g.id for g in s.workload.tier.gpus] == ["L4"]


def test_kubeai_scale_from_zero_warns_cold_start_and_its_30s_delay_thrashes():
    found = {f.code: f.message for f in findings(read(KUBEAI_L4))}
    assert "minReplicas" in found[Code.COLD_START]
    assert "KubeAI default 30s" in found[Code.SCALE_THRASHING]
    obj = read(KUBEAI_L4)
    obj["spec"].update(minReplicas=1, scaleDownDelaySeconds=600)
    assert not {Code.COLD_START.value, Code.SCALE_THRASHING.value} & codes(obj)


def test_kubeai_left_out_min_replicas_is_its_scale_from_zero_default():
    obj = read(KUBEAI_L4)
    del obj["spec"]["minReplicas"]
    assert "KubeAI default minReplicas 0" in {f.code: f.message for f in findings(obj)}[Code.COLD_START]


def test_kubeai_70b_on_one_l4_is_denied():
    big = "meta-llama/Llama-3.1-70B-Instruct"
    obj = read(KUBEAI_L4.replace("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", big))
    assert any(f.code is Code.OOM_RISK and f.effective_severity is Severity.ERROR for f in findings(obj))


@pytest.mark.parametrize("profile", ["cpu:1", "google-tpu-v5e-2x2:4", "amd-gpu-mi300x:1"])
def test_kubeai_profiles_without_nvidia_gpus_are_not_gpu_workloads(profile):
    obj = read(KUBEAI_L4.replace("nvidia-gpu-l4:1", profile))
    assert extract(obj, CTX.gpus) is None


def test_kubeai_ollama_is_judged_without_a_model():
    text = KUBEAI_L4.replace("engine: VLLM", "engine: OLlama")
    obj = read(text.replace("hf://neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", "ollama://qwen2:0.5b"))
    assert Code.UNKNOWN_MODEL.value in codes(obj) and coverage(obj) == [Coverage(NO_MODEL)]


def test_kubeai_custom_profile_name_that_names_no_gpu_pins_no_tier():
    [s] = servings(workload(read(KUBEAI_L4.replace("nvidia-gpu-l4:1", "my-gpus:2"))), CTX)
    assert s.gpus_per_replica == 2 and not s.workload.tier.pinned


def test_a_model_of_another_api_group_is_not_kubeais():
    obj = read(KUBEAI_L4)
    obj["apiVersion"] = "example.com/v1"
    assert extract(obj, CTX.gpus) is None


# --- KServe LLMInferenceService (serving.kserve.io/v1alpha1) ----------------------------------------------

LLMISVC = """
apiVersion: serving.kserve.io/v1alpha1
kind: LLMInferenceService
metadata: {name: qwen2-7b-instruct, namespace: ns}
spec:
  model:
    uri: hf://Qwen/Qwen2.5-7B-Instruct
    name: Qwen/Qwen2.5-7B-Instruct
  replicas: 3
  router: {route: {}}
  template:
    nodeSelector: {nvidia.com/gpu.product: NVIDIA-A10G}
    containers:
      - name: main
        env:
          - {name: VLLM_ADDITIONAL_ARGS, value: "--max-model-len 8192"}
        resources:
          limits: {cpu: '4', memory: 32Gi, nvidia.com/gpu: "1"}
"""


def test_llmisvc_reads_model_uri_replicas_and_vllm_additional_args():
    [s] = servings(workload(read(LLMISVC)), CTX)
    assert s.model_name == "Qwen/Qwen2.5-7B-Instruct" and s.resolved is not None
    assert s.workload.replicas == 3 and s.gpus_per_replica == 1 and s.explicit_max_model_len == 8192
    assert [g.id for g in s.workload.tier.gpus] == ["A10G"]


def test_llmisvc_multi_node_data_parallel_spans_leader_and_worker_pods():
    obj = read(LLMISVC)
    spec = obj["spec"]
    spec["parallelism"] = {"data": 16, "dataLocal": 8, "expert": True, "tensor": 1}
    spec["template"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "8"
    spec["worker"] = {"containers": [{"name": "main", "resources": {"limits": {"nvidia.com/gpu": "8"}}}]}
    [s] = servings(workload(obj), CTX)
    assert s.workload.group_size == 2 and s.gpus_per_replica == 16 and s.engine.dp == 16
    assert Code.OVERPROVISIONED.value not in codes(obj)  # dp 16 uses every GPU of the two pods


def test_llmisvc_prefill_is_a_component_of_its_own():
    obj = read(LLMISVC)
    obj["spec"]["prefill"] = {"replicas": 2, "template": obj["spec"]["template"]}
    judged = servings(workload(obj), CTX)
    assert [s.workload.replicas for s in judged] == [3, 2]
    assert [s.container.name for s in judged] == ["main", "prefill/main"]


def test_llmisvc_whose_gpus_come_from_a_base_config_is_not_judged():
    obj = read(LLMISVC)
    obj["spec"]["template"] = {"containers": [{"name": "main"}]}
    obj["spec"]["baseRefs"] = [{"name": "kserve-config-llm-template"}]
    [f] = findings(obj)
    assert "kserve-config-llm-template" in f.message
    assert coverage(obj) == [Coverage(NOT_JUDGED_LEVEL, "config-ref")]


def test_llmisvc_70b_on_one_a10g_is_denied():
    obj = read(LLMISVC.replace("Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.1-70B-Instruct"))
    assert any(f.code is Code.OOM_RISK and f.effective_severity is Severity.ERROR for f in findings(obj))


# --- NVIDIA Dynamo (nvidia.com) ---------------------------------------------------------------------------

DYNAMO_V1ALPHA1 = """
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata: {name: vllm-disagg, namespace: ns}
spec:
  services:
    Frontend:
      componentType: frontend
      replicas: 1
      extraPodSpec:
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.4.0
          command: [python3, -m, dynamo.frontend]
    VllmDecodeWorker:
      componentType: worker
      replicas: 2
      resources: {limits: {gpu: "1"}}
      extraPodSpec:
        nodeSelector: {nvidia.com/gpu.product: NVIDIA-L4}
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.4.0
          command: [/bin/sh, -c]
          args: ["python3 -m dynamo.vllm --model Qwen/Qwen3-0.6B --max-model-len 8192 2>&1 | tee /tmp/log"]
    VllmPrefillWorker:
      componentType: worker
      replicas: 1
      resources: {limits: {gpu: "1"}}
      extraPodSpec:
        nodeSelector: {nvidia.com/gpu.product: NVIDIA-L4}
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.4.0
          command: [python3, -m, dynamo.vllm]
          args: [--model, Qwen/Qwen3-0.6B, --is-prefill-worker, --max-model-len, "8192"]
"""


def test_dynamo_v1alpha1_reads_each_gpu_service_as_a_vllm_component():
    judged = servings(workload(read(DYNAMO_V1ALPHA1)), CTX)
    assert [s.container.name for s in judged] == ["VllmDecodeWorker", "VllmPrefillWorker"]
    assert all(s.model_name == "Qwen/Qwen3-0.6B" and s.resolved is not None for s in judged)
    assert [s.workload.replicas for s in judged] == [2, 1] and all(s.gpus_per_replica == 1 for s in judged)
    assert all(s.explicit_max_model_len == 8192 for s in judged)


DYNAMO_V1BETA1 = """
apiVersion: nvidia.com/v1beta1
kind: DynamoGraphDeployment
metadata: {name: sglang-agg, namespace: ns}
spec:
  components:
  - name: Frontend
    type: frontend
    replicas: 1
    podTemplate:
      spec:
        containers: [{name: main, image: "nvcr.io/nvidia/ai-dynamo/sglang-runtime:my-tag"}]
  - name: worker
    type: worker
    replicas: 1
    podTemplate:
      spec:
        containers:
        - name: main
          image: nvcr.io/nvidia/ai-dynamo/sglang-runtime:my-tag
          command: [python3, -m, dynamo.sglang]
          args: [--model-path, Qwen/Qwen3-0.6B, --tp, "2"]
          resources: {limits: {nvidia.com/gpu: "1"}}
"""


def test_dynamo_v1beta1_components_read_the_engine_flags():
    [s] = servings(workload(read(DYNAMO_V1BETA1)), CTX)
    assert s.engine.engine == "sglang" and s.engine.tp == 2 and s.model_name == "Qwen/Qwen3-0.6B"
    # --tp 2 on a one-GPU pod: SGLang would refuse to start.
    found = findings(read(DYNAMO_V1BETA1))
    assert any(f.code is Code.CONFIG_INVALID and "worker/main" in f.message for f in found)


# --- AIBrix -----------------------------------------------------------------------------------------------


def test_aibrix_fleet_judges_the_heads_vllm_over_the_clusters_gpus():
    obj = read((EXAMPLES / "aibrix-rayclusterfleet-multinode.yaml").read_text())
    [s] = servings(workload(obj), CTX)
    assert s.model_name == "Qwen/Qwen2.5-Coder-7B-Instruct" and s.engine.tp == 2 and s.gpus_per_replica == 2
    assert Code.CONFIG_INVALID.value not in codes(obj)


def test_aibrix_model_adapter_says_its_pods_are_judged_not_it():
    obj = read((EXAMPLES / "aibrix-modeladapter.yaml").read_text())
    [f] = findings(obj)
    assert f.code is Code.UNKNOWN_MODEL and "qwen-coder-1-5b-instruct" in f.message
    assert coverage(obj) == [Coverage(NOT_JUDGED_LEVEL, "lora-adapter")]


# --- shape errors name the field --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (KUBEAI_L4.replace("nvidia-gpu-l4:1", "nvidia-gpu-l4:two"), "spec.resourceProfile"),
        (LLMISVC.replace("replicas: 3", "replicas: three"), "replicas"),
        (DYNAMO_V1ALPHA1.replace("replicas: 2", "replicas: [2]"), "replicas"),
    ],
)
def test_a_crd_field_of_the_wrong_type_is_an_error_naming_it(text, field):
    result = check_objects([read(text)], CTX)
    [(_, error)] = result.errors
    assert field in error
    assert [c for _, c in result.coverage] == [Coverage(NOT_JUDGED_LEVEL, "unreadable")]


def test_llmisvc_without_a_template_takes_its_gpus_from_kserves_default_config_not_judged():
    obj = read(LLMISVC)
    del obj["spec"]["template"]
    [f] = findings(obj)
    assert "KServe's default LLMInferenceServiceConfig" in f.message
    assert coverage(obj) == [Coverage(NOT_JUDGED_LEVEL, "config-ref")]


def test_llmisvc_on_cpu_is_not_a_gpu_workload():
    obj = read(LLMISVC)
    obj["spec"]["template"]["containers"][0]["resources"] = {"limits": {"cpu": "4", "memory": "16Gi"}}
    assert findings(obj) == [] and coverage(obj) == []


def test_kubeai_with_autoscaling_disabled_runs_its_replicas_and_never_scales_to_zero():
    obj = read(KUBEAI_L4)
    obj["spec"].update(autoscalingDisabled=True, replicas=2)
    [s] = servings(workload(obj), CTX)
    assert s.workload.replicas == 2
    assert not {Code.COLD_START.value, Code.SCALE_THRASHING.value} & codes(obj)


def test_ray_accelerator_names_with_memory_resolve_to_the_catalog_gpu():
    [s] = servings(workload(serve_llm(accelerator="A100-80G")), CTX)
    assert [g.id for g in s.workload.tier.gpus] == ["A100-SXM-80GB"]


def test_ray_serve_llm_configs_given_as_files_are_not_judged():
    obj = serve_llm()
    config = yaml.safe_load(obj["spec"]["serveConfigV2"])
    config["applications"][0]["args"]["llm_configs"] = ["models/qwen-0.5b.yaml"]
    obj["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    [f] = findings(obj)
    assert "name files" in f.message and coverage(obj) == [Coverage(NOT_JUDGED_LEVEL, "config-file")]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def _replaced(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    import copy

    out = copy.deepcopy(obj)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


CRD_MANIFESTS = [
    serve_llm(),
    read(KUBERAY_VLLM_SAMPLE),
    read(KUBEAI_L4),
    read(LLMISVC),
    read(DYNAMO_V1ALPHA1),
    read(DYNAMO_V1BETA1),
    read((EXAMPLES / "aibrix-rayclusterfleet-multinode.yaml").read_text()),
    read((EXAMPLES / "aibrix-modeladapter.yaml").read_text()),
]


@pytest.mark.parametrize("obj", CRD_MANIFESTS, ids=lambda o: o["kind"])
def test_any_field_of_the_wrong_type_is_read_or_named_never_a_crash(obj):
    for path in _paths(obj["spec"]):
        for value in ("x", [1], 5, None, {"a": 1}):
            bad = _replaced(obj, ("spec", *path), value)
            check_objects([bad], CTX)  # a WorkloadError is the object's error; anything else raises


@pytest.mark.parametrize("obj", [serve_llm(), read(KUBERAY_VLLM_SAMPLE)], ids=["serve-llm", "kuberay-sample"])
def test_any_serve_config_field_of_the_wrong_type_is_read_or_named_never_a_crash(obj):
    config = yaml.safe_load(obj["spec"]["serveConfigV2"])
    for path in _paths(config):
        for value in ("x", [1], 5, None, {"a": 1}):
            text = yaml.safe_dump(_replaced(config, path, value))
            check_objects([{**obj, "spec": {**obj["spec"], "serveConfigV2": text}}], CTX)  # errors recorded


def test_a_serve_config_nested_past_any_parser_is_not_judged_not_a_crash():
    obj = serve_llm()
    obj["spec"]["serveConfigV2"] = "applications: " + "[" * 50000 + "]" * 50000
    assert coverage(obj) == [Coverage(NOT_JUDGED_LEVEL, "unreadable-spec")]


def test_the_crd_kinds_extract_dispatches_are_exactly_the_readers():
    from placement.workload import CRD_KINDS
    from placement.workloads import READERS

    assert {kind for _, kind in READERS} == CRD_KINDS
