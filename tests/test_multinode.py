"""Multi-node serving judged as one instance: a LeaderWorkerSet group (leader engine args, leader + workers'
GPUs), SGLang --nnodes in a StatefulSet, vLLM with a Ray backend."""

from __future__ import annotations

from typing import Any

import pytest

from placement.checks import CheckContext, check_objects
from placement.findings import Code, Finding, Severity
from placement.workload import extract
from tests.published import one


@pytest.fixture(scope="module")
def ctx() -> CheckContext:
    return CheckContext.default()


def run(ctx: CheckContext, *objs: dict[str, Any]) -> list[Finding]:
    result = check_objects(list(objs), ctx)
    assert result.errors == []
    return [f for _, f in result.findings]


def _leader_script(lws: dict[str, Any]) -> list[str]:
    return lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]["command"]


def test_lws_group_is_judged_by_the_leaders_engine_args_with_the_whole_groups_gpus(ctx):
    lws = one("lws-vllm-multinode.yaml")
    workload = extract(lws, ctx.gpus)
    assert workload is not None
    (served,) = workload.gpu_containers
    assert served.name == "vllm-leader" and served.engine is not None
    assert (served.engine.model, served.engine.tp, served.engine.pp) == (
        "meta-llama/Meta-Llama-3.1-405B-Instruct", 8, 2
    )
    assert (workload.group_size, workload.group_gpus) == (2, 16)
    assert workload.tier.pinned and workload.tier.gpus[0].id == "H100-SXM-80GB"  # from the workers
    found = run(ctx, lws)
    # 405B bf16 over 16 H100s: ~51 GiB of weights per GPU fits; nothing to deny, nothing unknown.
    assert not {Code.UNKNOWN_MODEL, Code.CONFIG_INVALID, Code.OOM_RISK} & {f.code for f in found}, [
        f.message for f in found
    ]


def test_lws_405b_that_overflows_its_group_is_denied(ctx):
    lws = one("lws-vllm-multinode.yaml")
    script = _leader_script(lws)
    script[2] = script[2].replace("--pipeline_parallel_size 2", "--pipeline_parallel_size 1")
    found = run(ctx, lws)
    oom = next(f for f in found if f.code == Code.OOM_RISK)
    assert oom.effective_severity == Severity.ERROR and "at tp=8" in oom.message


def test_lws_with_pp_over_more_nodes_than_the_group_has_is_config_invalid(ctx):
    lws = one("lws-vllm-multinode.yaml")
    script = _leader_script(lws)
    script[2] = script[2].replace("--pipeline_parallel_size 2", "--pipeline_parallel_size 4")
    invalid = next(f for f in run(ctx, lws) if f.code == Code.CONFIG_INVALID)
    assert "tp=8 x pp=4 needs 32 GPUs but the pod gets 16" in invalid.message


def test_lws_group_larger_than_tp_x_pp_reports_the_idle_pods(ctx):
    lws = one("lws-vllm-multinode.yaml")
    lws["spec"]["leaderWorkerTemplate"]["size"] = 3
    idle = next(f for f in run(ctx, lws) if f.code == Code.OVERPROVISIONED and "idle" in f.message)
    assert "requests 24 GPUs over 3 pods but tp=8 x pp=2 uses 16; 8 sit idle" in idle.message
    assert "Use 2 pods of 8 GPUs per group." in idle.message


def test_lws_leader_without_gpus_counts_only_the_workers(ctx):
    lws = one("lws-vllm-multinode.yaml")
    leader = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    del leader["resources"]["limits"]["nvidia.com/gpu"]
    workload = extract(lws, ctx.gpus)
    assert workload is not None and workload.group_gpus == 8
    assert [c.name for c in workload.gpu_containers] == ["vllm-worker"]


def test_lws_without_a_leader_template_runs_the_worker_template_on_every_pod(ctx):
    lws = one("lws-vllm-multinode.yaml")
    lwt = lws["spec"]["leaderWorkerTemplate"]
    lwt["workerTemplate"]["spec"]["containers"] = lwt.pop("leaderTemplate")["spec"]["containers"]
    workload = extract(lws, ctx.gpus)
    assert workload is not None and workload.group_gpus is None and workload.group_size == 2
    assert workload.stamp_paths == (("spec", "leaderWorkerTemplate", "workerTemplate"),)
    (served,) = workload.gpu_containers
    assert served.engine is not None and served.engine.pp == 2
    assert Code.CONFIG_INVALID not in {f.code for f in run(ctx, lws)}


# --- outside LeaderWorkerSet -------------------------------------------------------------------------


def test_sglang_nnodes_statefulset_counts_the_gpus_of_all_its_nodes(ctx):
    sts = one("sglang-statefulset-multinode.yaml")
    workload = extract(sts, ctx.gpus)
    assert workload is not None and (workload.group_size, workload.replicas) == (2, 1)
    (served,) = workload.gpu_containers
    assert served.engine is not None and (served.engine.model, served.engine.tp) == (
        "meta-llama/Llama-3.1-405B-Instruct", 16
    )
    found = run(ctx, sts)
    # tp=16 over 2 x 8 H100: no "needs 16 GPUs but the pod gets 8", and 405B bf16 fits at 51 GiB/GPU.
    assert not {Code.CONFIG_INVALID, Code.OOM_RISK, Code.UNKNOWN_MODEL} & {f.code for f in found}


def test_sglang_nnodes_with_fewer_pods_than_nodes_is_config_invalid(ctx):
    sts = one("sglang-statefulset-multinode.yaml")
    sts["spec"]["replicas"] = 1
    invalid = next(f for f in run(ctx, sts) if f.code == Code.CONFIG_INVALID)
    assert "--nnodes 2 but the StatefulSet runs 1 pod(s)" in invalid.message
    assert invalid.effective_severity == Severity.ERROR


def test_sglang_405b_on_one_node_of_the_group_size_is_still_an_overflow(ctx):
    sts = one("sglang-statefulset-multinode.yaml")
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    args[0] = args[0].replace("--tp 16", "--tp 8").replace("--nnodes 2", "--nnodes 1")
    sts["spec"]["replicas"] = 1
    oom = next(f for f in run(ctx, sts) if f.code == Code.OOM_RISK)
    assert oom.effective_severity == Severity.ERROR


def test_two_sglang_instances_of_two_nodes_each_are_two_replicas(ctx):
    sts = one("sglang-statefulset-multinode.yaml")
    sts["spec"]["replicas"] = 4
    workload = extract(sts, ctx.gpus)
    assert workload is not None and (workload.group_size, workload.replicas) == (2, 2)


def test_vllm_ray_statefulset_is_one_instance_over_all_its_pods(ctx):
    sts = one("vllm-ray-statefulset.yaml")
    workload = extract(sts, ctx.gpus)
    assert workload is not None and (workload.group_size, workload.replicas) == (2, 1)
    found = run(ctx, sts)
    assert not {Code.CONFIG_INVALID, Code.OOM_RISK, Code.UNKNOWN_MODEL} & {f.code for f in found}


def test_vllm_ray_statefulset_too_small_for_tp_x_pp_is_config_invalid(ctx):
    sts = one("vllm-ray-statefulset.yaml")
    sts["spec"]["replicas"] = 1
    invalid = next(f for f in run(ctx, sts) if f.code == Code.CONFIG_INVALID)
    assert "tp=8 x pp=2 needs 16 GPUs but the pod gets 8" in invalid.message


def test_vllm_ray_deployment_takes_the_ray_clusters_gpus_as_tp_x_pp(ctx):
    # The head pod of a Ray cluster whose workers run elsewhere (e.g. a KubeRay worker group): no
    # "needs 16 GPUs but the pod gets 8" for GPUs gpuplace cannot see.
    sts = one("vllm-ray-statefulset.yaml")
    sts["kind"] = "Deployment"
    workload = extract(sts, ctx.gpus)
    assert workload is not None and workload.group_gpus == 16
    assert Code.CONFIG_INVALID not in {f.code for f in run(ctx, sts)}


def test_vllm_without_ray_keeps_its_pod_gpus(ctx):
    sts = one("vllm-ray-statefulset.yaml")
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    args[0] = args[0].replace("--distributed-executor-backend ray", "")
    invalid = next(f for f in run(ctx, sts) if f.code == Code.CONFIG_INVALID)
    assert "needs 16 GPUs but the pod gets 8" in invalid.message
