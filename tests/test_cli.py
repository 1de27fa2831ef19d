"""`gpuplace check` and `gpuplace explain` as a user runs them: output, exit codes, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpuplace.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def test_check_examples_exits_1_with_the_denials_and_every_finding_code(capsys):
    assert main(["check", str(EXAMPLES)]) == 1
    out = capsys.readouterr().out
    for code in (
        "oom-risk",
        "config-invalid",
        "kv-cache-starved",
        "tier-misplacement",
        "overprovisioned",
        "cold-start",
        "scale-thrashing",
        "batch-over-tiered",
        "batch-size-suboptimal",
        "low-throughput-config",
        "unknown-model",
    ):
        assert f"gpuplace[{code}]" in out, code
    assert "error: gpuplace[oom-risk]: deploy/llama-70b container vllm" in out


def test_clean_examples_have_no_findings(capsys):
    clean = [p for p in EXAMPLES.glob("*.yaml") if p.read_text().startswith("# CLEAN")]
    assert len(clean) >= 5
    assert main(["check", *map(str, clean)]) == 0
    assert capsys.readouterr().out == ""


def test_json_output_carries_the_figures(capsys):
    assert main(["check", str(EXAMPLES / "vllm-llama70b-on-l40s-oom.yaml"), "-o", "json"]) == 1
    [finding] = json.loads(capsys.readouterr().out)["findings"]
    assert finding["code"] == "oom-risk" and finding["severity"] == "error"
    assert (
        finding["kind"] == "Deployment" and finding["name"] == "llama-70b" and finding["container"] == "vllm"
    )
    assert finding["weights_gib"] > 120 and "budget_gib" in finding and "kv_tokens" in finding


def test_stdin_multi_document_stream_links_autoscaler_to_its_target():
    text = (EXAMPLES / "keda-llama70b-cold-start.yaml").read_text()
    proc = subprocess.run(
        [sys.executable, "-m", "gpuplace", "check", "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "67.7 GiB of weights" in proc.stdout and "-:2: warning: gpuplace[cold-start]" in proc.stdout


def test_malformed_yaml_is_one_line_naming_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x\n")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gpuplace check: {bad}: invalid YAML at line") and "\n" not in err


def test_object_with_wrong_shape_names_document_and_field(tmp_path, capsys):
    bad = tmp_path / "shape.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: apps/v1\n"
        "kind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers: nope\n"
    )
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "(document 2): cannot read Deployment: containers must be a list" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("- just\n- a list\n", "expected a Kubernetes object"),
        ("kind: Pod\n", "`apiVersion` is missing"),
    ],
)
def test_non_objects_are_refused(tmp_path, capsys, content, expected):
    path = tmp_path / "x.yaml"
    path.write_text(content)
    assert main(["check", str(path)]) == 2
    assert expected in capsys.readouterr().err


def test_missing_path_is_usage_error(capsys):
    assert main(["check", "/nonexistent/manifests"]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_config_file_overrides_severity_and_bad_config_names_the_field(tmp_path, capsys):
    cfg = tmp_path / "gpuplace.yaml"
    cfg.write_text("severity:\n  oom-risk: warning\n")
    assert main(["check", str(EXAMPLES / "vllm-llama70b-on-l40s-oom.yaml"), "-c", str(cfg)]) == 0
    capsys.readouterr()
    cfg.write_text("checks:\n  load_gib_per_s: -1\n")
    assert main(["check", str(EXAMPLES), "-c", str(cfg)]) == 2
    assert "checks.load_gib_per_s" in capsys.readouterr().err


def test_price_override_changes_the_money_in_messages(tmp_path, capsys):
    cfg = tmp_path / "gpuplace.yaml"
    cfg.write_text("catalog:\n  prices:\n    H100-SXM-80GB: 10.0\n")
    main(["check", str(EXAMPLES / "vllm-llama8b-on-h100-misplaced.yaml"), "-c", str(cfg), "-o", "json"])
    [finding] = json.loads(capsys.readouterr().out)["findings"]
    assert finding["monthly_cost"] == round(10.0 * 2 * 730)


def test_explain_prints_the_breakdown_and_verdict(capsys):
    assert (
        main(
            [
                "explain",
                "meta-llama/Llama-3.1-70B-Instruct",
                "--gpu",
                "NVIDIA-L40S",
                "--tp",
                "4",
                "--max-model-len",
                "8192",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "weights         32.9 GiB per GPU" in out and "verdict         FITS" in out


def test_explain_unknown_gpu_is_usage_error(capsys):
    assert main(["explain", "meta-llama/Llama-3.1-8B", "--gpu", "Voodoo-5"]) == 2
    assert "--gpu 'Voodoo-5' is not in the GPU catalog" in capsys.readouterr().err


def test_explain_shows_each_term_and_the_rule_that_decided(capsys):
    args = ["explain", "openai/gpt-oss-120b", "--gpu", "H100", "--engine-version", "0.11.0"]
    args += ["--max-model-len", "131072", "--mem-fraction", "0.95", "--max-num-batched-tokens", "1024"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "  sampler       7.3 GiB (1024 rows x 201088 vocab x 38 B, native sort path)" in out
    assert (
        "(mxfp4 experts in the triton layout)" in out and "cuda graphs     0.2 GiB, outside the budget" in out
    )
    assert "rule            the KV cache cannot hold one max-model-len sequence" in out
    assert main([*args, "-o", "json"]) == 1
    terms = json.loads(capsys.readouterr().out)["terms_gib"]
    assert (
        terms["sampler"] == 7.29
        and terms["weights"] == 64.18
        and set(terms) >= {"forward", "non_torch", "kv"}
    )


def test_explain_latest_release_samples_with_flashinfer_and_counts_graphs_in_the_budget(capsys):
    args = ["explain", "openai/gpt-oss-120b", "--gpu", "H100", "--max-model-len", "131072"]
    assert main([*args, "--mem-fraction", "0.95", "--max-num-batched-tokens", "1024"]) == 0
    out = capsys.readouterr().out
    assert "engine          vllm latest" in out and "14 B, FlashInfer path" in out
    assert "cuda graphs     0.2 GiB, inside the budget" in out


def test_explain_names_a_version_it_cannot_read(capsys):
    assert main(["explain", "openai/gpt-oss-20b", "--gpu", "H100", "--engine-version", "nightly"]) == 2
    assert "--engine-version 'nightly' is not a version" in capsys.readouterr().err


def test_explain_sglang_shows_its_budget_line_and_that_a_short_pool_is_a_warning(capsys):
    args = ["explain", "Qwen/QwQ-32B", "--gpu", "L4", "--engine", "sglang", "--engine-version", "0.4.3.post4"]
    args += ["--tp", "4", "--max-model-len", "131072"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "in use before the weights load) x mem-fraction-static 0.85" in out
    assert "sglang starts and refuses requests over" in out and "verdict         FITS" in out
    assert main([*args, "-o", "json"]) == 0
    assert "refuses requests over" in json.loads(capsys.readouterr().out)["rule"]


def test_explain_tgi_counts_the_warm_up_logits_and_names_the_refusal(capsys):
    args = ["explain", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "A10G", "--engine", "tgi"]
    args += ["--engine-version", "2.2.0", "--max-model-len", "65536"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "prefill logprobs: 65585 tokens x 128256 vocab x 2 copies" not in out  # 2.x: 4095 + 50
    assert "prefill logprobs: 4145 tokens x 128256 vocab x 2 copies" in out
    assert "TGI refuses to start (NotEnoughMemory)" in out


def test_explain_says_sglang_starts_with_a_capped_context_instead_of_refusing(capsys):
    # QwQ-32B on 4 x L4 with SGLang 0.4.3 at 131072 tokens started and served (engine_startup_logs R07).
    args = ["explain", "Qwen/QwQ-32B", "--gpu", "L4", "--engine", "sglang", "--engine-version", "0.4.3.post4"]
    assert main([*args, "--tp", "4", "--max-model-len", "131072", "--mem-fraction", "0.85"]) == 0
    out = capsys.readouterr().out
    assert "(capped to the pool)" in out and "sglang starts and refuses requests over" in out
