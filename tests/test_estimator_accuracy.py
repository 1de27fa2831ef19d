"""bench/estimator_accuracy.py: both log files are read the way their columns say, and a missed target
or a wrong verdict makes it exit 1 (on small files written here, not the shared data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_scripts import load_bench

ea = load_bench("estimator_accuracy")

MEASUREMENTS = """# comment lines are skipped
model,gpu,cuda_total_gib,tp,weights_dtype,kv_dtype,max_model_len,gpu_memory_utilization,weights_gib,kv_gib,kv_tokens,outcome,source
meta-llama/Llama-3.1-8B-Instruct,RTX-3090,23.58,1,bf16,auto,20000,0.90,14.99,3.81,31232,fits,vllm-project/vllm#10517
"""
HEADER = (
    "id,source,engine,engine_version,model,gpu,gpu_total_gib_reported,tp,pp,dtype,kv_dtype,max_model_len,util,"
    "max_num_seqs,max_num_batched_tokens,enforce_eager,logged_weights_gib,logged_kv_gib,logged_kv_tokens,logged_fail\n"
)
STARTED = (
    "X01,src,vllm,0.11.0,meta-llama/Llama-3.1-8B-Instruct,H100,79.18,1,1,bf16,auto,16000,0.9,,,no,"
    "14.99,51.38,,no\n"
)


def write(tmp_path: Path, startup_rows: str) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "vllm_measurements.csv").write_text(MEASUREMENTS)
    (data / "engine_startup_logs.csv").write_text(HEADER + startup_rows)
    return tmp_path


def test_startup_log_columns_become_the_engine_config(tmp_path):
    row = "X02,src,sglang,0.4.3.post4,Qwen/QwQ-32B,L4,,4,1,awq-int4,fp8,131072,0.85,64,2048,yes,,,46611,no\n"
    [case] = ea.read_startup_logs(write(tmp_path, row) / "data" / "engine_startup_logs.csv")
    assert (case.engine, case.version, case.tp, case.dtype, case.kv_dtype) == (
        "sglang",
        (0, 4, 3),
        4,
        "awq",
        "fp8",
    )
    assert (case.max_num_seqs, case.max_num_batched_tokens, case.enforce_eager) == (64, 2048, True)
    assert case.kv_tokens == 46611 and not case.failed


def test_measurement_rows_take_the_version_of_their_source(tmp_path):
    [case] = ea.read_measurements(write(tmp_path, "") / "data" / "vllm_measurements.csv")
    assert case.id == "M01" and case.version == (0, 6, 4) and case.total_gib == 23.58


def test_all_targets_met_exits_0(tmp_path, capsys):
    assert ea.main(["--shared", str(write(tmp_path, STARTED))]) == 0
    assert "targets missed: 0" in capsys.readouterr().out


def test_a_wrong_verdict_exits_1_and_is_listed_as_still_off(tmp_path, capsys):
    # The same started run, logged as a failure: the estimate says it fits, so the verdict is wrong.
    failed = STARTED.replace("X01", "X03").replace(",no\n", ",yes: no KV room\n")
    assert ea.main(["--shared", str(write(tmp_path, STARTED + failed))]) == 1
    out = capsys.readouterr().out
    assert "started/fits ok" in out and "failed/fits WRONG" in out
    assert "X03 vllm meta-llama/Llama-3.1-8B-Instruct (verdict wrong, KV" in out


def test_missing_files_name_the_folder_to_set(tmp_path, capsys):
    assert ea.main(["--shared", str(tmp_path)]) == 2
    assert "set GPUPLACE_SHARED or --shared" in capsys.readouterr().err


@pytest.mark.parametrize("row_id", ["R18"])
def test_corrections_are_named_with_their_reason(row_id):
    field, _, why = ea.CORRECTIONS[row_id]
    assert field in ea.Case.__dataclass_fields__ and "add up" in why
