"""Coverage: how many GPU workloads gpuplace judged fully, without a model, or not at all (and why),
printed by `gpuplace check` and in its JSON."""

from __future__ import annotations

import json
from pathlib import Path

from gpuplace.cli import main
from placement.checks import CheckContext, check_objects
from placement.coverage import FULL, NO_MODEL, NOT_JUDGED_LEVEL, Coverage, counts, summary
from tests.manifests import L4, deployment, vllm

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CTX = CheckContext.default()


def judged(*objs: dict) -> list[Coverage]:
    return [c for _, c in check_objects(list(objs), CTX).coverage]


def test_each_gpu_workload_counts_once_by_how_much_was_judged():
    full = vllm("meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192", product=L4, name="a")
    unknown = vllm("acme/house-model", "--max-model-len", "4096", product=L4, name="b")
    guessed = vllm("acme/house-model-13B", "--max-model-len", "4096", product=L4, name="c")
    odd_tier = vllm("meta-llama/Llama-3.1-8B-Instruct", product="NVIDIA-Z9000", name="d")
    cpu = deployment(name="web", gpus=0, image="nginx")
    assert judged(full, unknown, guessed, odd_tier, cpu) == [
        Coverage(FULL),
        Coverage(NO_MODEL),
        Coverage(NO_MODEL),  # sized from its name: only a guess
        Coverage(NOT_JUDGED_LEVEL, "unknown-tier"),
    ]  # the CPU Deployment is not a GPU workload: not counted


def test_counts_and_the_summary_line_group_not_judged_by_reason():
    items = [Coverage(FULL), Coverage(NO_MODEL), Coverage(NOT_JUDGED_LEVEL, "lora-adapter")] * 2
    totals = counts(items)
    assert totals == {"full": 2, "no-model": 2, "not-judged": 2, "not-judged-reasons": {"lora-adapter": 2}}
    assert summary(totals) == (
        "GPU workloads: 2 judged fully, 2 without a model, 2 not judged (2 lora-adapter)"
    )


def test_check_prints_the_coverage_line_last(capsys):
    main(["check", str(EXAMPLES / "aibrix-modeladapter.yaml"), str(EXAMPLES / "tgi-mistral7b-l4.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    expected = "GPU workloads: 1 judged fully, 0 without a model, 1 not judged (1 lora-adapter)"
    assert err[-1] == expected


def test_check_json_carries_findings_and_the_same_counts(capsys):
    main(["check", str(EXAMPLES / "aibrix-modeladapter.yaml"), "-o", "json"])
    out = json.loads(capsys.readouterr().out)
    assert [f["code"] for f in out["findings"]] == ["unknown-model"]
    assert out["findings"][0]["not_judged"] == "lora-adapter"
    assert out["coverage"] == {
        "full": 0,
        "no-model": 0,
        "not-judged": 1,
        "not-judged-reasons": {"lora-adapter": 1},
    }
