"""The annotations /mutate stamps, and the UPDATE hash."""

from __future__ import annotations

import copy

from placement.checks import CheckContext
from placement.requirements import (
    GPU_MEMORY_MIN,
    INPUTS_HASH,
    MODEL_RESOLVED,
    NVLINK,
    gpu_spec_hash,
    requirements,
)
from placement.workload import extract
from tests.manifests import H100, L40S, vllm

CTX = CheckContext.default()


def reqs(obj):  # type: ignore[no-untyped-def]
    workload = extract(obj, CTX.gpus)
    assert workload is not None
    return requirements(workload, CTX)


def test_gpu_memory_min_is_the_smallest_gpu_the_estimator_fits():
    out = reqs(vllm("meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192", product=L40S))
    need_gib = int(out[GPU_MEMORY_MIN]) / 1024
    assert 17 < need_gib < 22  # 15 GiB of weights + 1 GiB KV + overheads, over 0.9
    assert out[MODEL_RESOLVED] == "meta-llama/Llama-3.1-8B-Instruct" and out[NVLINK] == "none"


def test_tensor_parallel_pod_requires_nvlink_and_needs_less_per_gpu():
    one = reqs(vllm("meta-llama/Llama-3.3-70B-Instruct", "--max-model-len", "8192", product=H100))
    four = reqs(
        vllm(
            "meta-llama/Llama-3.3-70B-Instruct",
            "--max-model-len",
            "8192",
            "--tensor-parallel-size",
            "4",
            gpus=4,
            product=H100,
        )
    )
    assert four[NVLINK] == "required"
    assert int(four[GPU_MEMORY_MIN]) < int(one[GPU_MEMORY_MIN]) / 3


def test_no_gpu_no_annotations():
    assert reqs(vllm("meta-llama/Llama-3.1-8B-Instruct", gpus=0)) == {}


def test_hash_ignores_labels_and_replicas_but_not_args():
    obj = vllm("meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192", product=L40S)
    base = gpu_spec_hash(extract(obj, CTX.gpus))  # type: ignore[arg-type]
    relabelled = copy.deepcopy(obj)
    relabelled["spec"]["template"]["metadata"]["labels"]["team"] = "x"
    relabelled["spec"]["replicas"] = 5
    assert gpu_spec_hash(extract(relabelled, CTX.gpus)) == base  # type: ignore[arg-type]
    changed = copy.deepcopy(obj)
    changed["spec"]["template"]["spec"]["containers"][0]["args"][-1] = "16384"
    assert gpu_spec_hash(extract(changed, CTX.gpus)) != base  # type: ignore[arg-type]


def test_requirements_are_idempotent():
    obj = vllm("meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192", product=L40S)
    first = reqs(obj)
    stamped = copy.deepcopy(obj)
    stamped["spec"]["template"]["metadata"]["annotations"] = dict(first)
    assert reqs(stamped) == first and first[INPUTS_HASH]


def test_user_declared_nvlink_stands_for_a_server_gpuplace_cannot_read():
    from tests.manifests import deployment

    obj = deployment(
        command=["my-server"], gpus=8, product=H100, annotations={"gpuplace.io/nvlink": "required"}
    )
    assert reqs(obj)[NVLINK] == "required"
