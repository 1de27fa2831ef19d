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
