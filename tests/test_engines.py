"""Each engine's arguments, parsed from the shapes real manifests use."""

from __future__ import annotations

import shlex

import pytest

from placement.engines import Container, parse_container
from placement.engines.base import _is_number, _script_words, image_version


def c(command=(), args=(), env=None, image="") -> Container:  # type: ignore[no-untyped-def]
    return Container(name="c", image=image, command=tuple(command), args=tuple(args), env=env or {})


def test_vllm_serve_positional_model_and_space_separated_flags():
    cfg = parse_container(
        c(
            ["vllm", "serve", "meta-llama/Llama-3.1-70B-Instruct"],
            ["--tensor-parallel-size", "4", "--max-model-len", "32768"],
        )
    )
    assert cfg is not None and cfg.engine == "vllm"
    assert (cfg.model, cfg.tp, cfg.max_model_len) == ("meta-llama/Llama-3.1-70B-Instruct", 4, 32768)


def test_vllm_api_server_module_with_equals_flags_and_underscores():
    cfg = parse_container(
        c(
            ["python3", "-m", "vllm.entrypoints.openai.api_server"],
            [
                "--model=Qwen/Qwen2.5-7B-Instruct",
                "--tensor_parallel_size=2",
                "--gpu_memory_utilization=0.85",
                "--kv-cache-dtype",
                "fp8",
                "--enforce-eager",
            ],
        )
    )
    assert cfg is not None
    assert (cfg.model, cfg.tp, cfg.mem_fraction, cfg.kv_cache_dtype, cfg.enforce_eager) == (
        "Qwen/Qwen2.5-7B-Instruct",
        2,
        0.85,
        "fp8",
        True,
    )


def test_vllm_image_entrypoint_with_args_only_and_short_tp_alias():
    cfg = parse_container(
        c(
            args=["--model", "mistralai/Mistral-7B-v0.1", "-tp", "2", "--max-model-len", "32k"],
            image="vllm/vllm-openai:v0.6.4",
        )
    )
    assert cfg is not None
    assert (cfg.model, cfg.tp, cfg.max_model_len, cfg.version) == (
        "mistralai/Mistral-7B-v0.1",
        2,
        32000,
        (0, 6, 4),
    )


def test_sh_c_script_is_unwrapped_and_k8s_env_references_expanded():
    cfg = parse_container(
        c(
            ["sh", "-c"],
            ["pip install x && exec vllm serve $(MODEL) --max-num-seqs $(SEQS)"],
            env={"MODEL": "google/gemma-2-9b-it", "SEQS": "16"},
        )
    )
    assert cfg is not None
    assert (cfg.model, cfg.max_num_seqs) == ("google/gemma-2-9b-it", 16)


def test_value_from_env_makes_the_setting_unknown_not_empty():
    cfg = parse_container(
        c(["vllm", "serve", "$(MODEL)"], ["--max-model-len", "$(LEN)"], env={"MODEL": None, "LEN": None})
    )
    assert cfg is not None
    assert cfg.model is None
    assert {"model", "max-model-len"} <= cfg.unknown
    assert cfg.problems == []


def test_invalid_values_are_problems_naming_the_flag():
    cfg = parse_container(
        c(
            ["vllm", "serve", "m"],
            ["--gpu-memory-utilization", "1.5", "--dtype", "bf12", "--max-model-len", "lots"],
        )
    )
    assert cfg is not None
    text = " ".join(cfg.problems)
    assert "gpu-memory-utilization=1.5" in text and "dtype='bf12'" in text and "max-model-len='lots'" in text


def test_sglang_launch_server_flags():
    cfg = parse_container(
        c(
            [
                "python3",
                "-m",
                "sglang.launch_server",
                "--model-path",
                "Qwen/Qwen3-32B",
                "--tp",
                "2",
                "--mem-fraction-static",
                "0.8",
                "--context-length",
                "40960",
                "--max-running-requests",
                "64",
            ]
        )
    )
    assert cfg is not None and cfg.engine == "sglang"
    assert (cfg.model, cfg.tp, cfg.mem_fraction, cfg.max_model_len, cfg.max_num_seqs) == (
        "Qwen/Qwen3-32B",
        2,
        0.8,
        40960,
        64,
    )


def test_tgi_env_vars_configure_the_launcher_and_flags_win():
    cfg = parse_container(
        c(
            ["text-generation-launcher"],
            ["--num-shard", "2"],
            env={
                "MODEL_ID": "mistralai/Mixtral-8x7B-Instruct-v0.1",
                "NUM_SHARD": "4",
                "QUANTIZE": "awq",
                "MAX_TOTAL_TOKENS": "8192",
                "CUDA_MEMORY_FRACTION": "0.9",
            },
            image="ghcr.io/huggingface/text-generation-inference:2.4.0",
        )
    )
    assert cfg is not None and cfg.engine == "tgi"
    assert (cfg.model, cfg.tp, cfg.quantization, cfg.max_model_len, cfg.mem_fraction) == (
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        2,
        "awq",
        8192,
        0.9,
    )


def test_tgi_detected_from_image_and_model_id_env_alone():
    cfg = parse_container(
        c(
            env={"MODEL_ID": "meta-llama/Llama-3.1-8B-Instruct"},
            image="ghcr.io/huggingface/text-generation-inference:3.0.1",
        )
    )
    assert cfg is not None and cfg.engine == "tgi" and cfg.model == "meta-llama/Llama-3.1-8B-Instruct"


def test_trtllm_serve_flags():
    cfg = parse_container(
        c(
            [
                "trtllm-serve",
                "serve",
                "meta-llama/Llama-3.1-8B-Instruct",
                "--tp_size",
                "2",
                "--max_batch_size",
                "64",
                "--max_num_tokens",
                "4096",
                "--max_seq_len",
                "8192",
                "--kv_cache_free_gpu_memory_fraction",
                "0.8",
            ]
        )
    )
    assert cfg is not None and cfg.engine == "trtllm"
    assert (
        cfg.model,
        cfg.tp,
        cfg.max_num_seqs,
        cfg.max_num_batched_tokens,
        cfg.max_model_len,
        cfg.mem_fraction,
    ) == ("meta-llama/Llama-3.1-8B-Instruct", 2, 64, 4096, 8192, 0.8)


def test_unknown_server_is_not_an_engine():
    assert (
        parse_container(
            c(["tritonserver", "--model-repository=/models"], image="nvcr.io/nvidia/tritonserver:24.08-py3")
        )
        is None
    )


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("vllm/vllm-openai:v0.6.4", (0, 6, 4)),
        ("vllm/vllm-openai:0.10.1", (0, 10, 1)),
        ("vllm/vllm-openai:latest", None),
        ("registry.local:5000/vllm/vllm-openai", None),
        ("vllm/vllm-openai@sha256:abc", None),
    ],
)
def test_image_version_from_tag(image, version):
    assert image_version(image) == version


@pytest.mark.parametrize(
    "script",
    [
        "vllm serve meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size 2",
        "pip install x &&\tpython3 -m vllm.entrypoints.openai.api_server --model $MODEL ; sleep 1\n",
        "vllm serve 'org/model name' --max-model-len \"32k\"  # a comment",
        "vllm serve m --served-model-name a\\ b",
    ],
)
def test_shell_script_words_match_shlex_with_and_without_quoting(script: str) -> None:
    expected = [w for w in shlex.split(script, comments=True) if w not in {"&&", "||", ";", "|", "exec"}]
    assert list(_script_words(script)) == expected


@pytest.mark.parametrize(
    "word",
    [
        *("-1", "-.5", "1e3", "+2", " 3 ", "-inf", "NaN", "infinity"),  # numbers: values, not flags
        *("--tp", "--max-model-len=4096", "-x1", ".", "-.", "-", ""),
    ],
)
def test_is_number_agrees_with_float(word: str) -> None:
    try:
        float(word)
        expected = True
    except ValueError:
        expected = False
    assert _is_number(word) is expected


@pytest.mark.parametrize(
    ("args", "chunked"),
    [
        (("--enable-chunked-prefill", "--no-enable-chunked-prefill"), False),
        (("--no-enable-chunked-prefill", "--enable-chunked-prefill"), True),
    ],
)
def test_of_two_flags_setting_one_setting_the_later_on_the_command_line_wins(args, chunked) -> None:
    cfg = parse_container(c(["vllm", "serve", "m"], args, image="vllm/vllm-openai:v0.6.4"))
    assert cfg is not None and cfg.chunked_prefill is chunked


def test_backslash_newline_continuations_are_joined_before_the_script_is_split():
    # The form of vLLM's and SGLang's Kubernetes docs: one flag a line under `bash -c`, ended by `\`.
    script = (
        "vllm serve meta-llama/Llama-3.1-8B-Instruct \\\n"
        "  --tensor-parallel-size 2 \\\r\n"
        "  --max-model-len=8192 \\\n"
        '  --served-model-name "llama 8b"\n'
    )
    cfg = parse_container(c(["/bin/bash", "-c"], [script]))
    assert cfg is not None
    assert (cfg.model, cfg.tp, cfg.max_model_len) == ("meta-llama/Llama-3.1-8B-Instruct", 2, 8192)
    assert cfg.flags["served-model-name"] == "llama 8b"
    assert not any("\n" in w for w in _script_words(script))


def test_model_on_a_continued_line_is_the_model_not_a_newline_word():
    script = "python3 -m sglang.launch_server \\\n--model-path Qwen/Qwen2.5-7B-Instruct \\\n--tp 1"
    cfg = parse_container(c(["sh", "-c"], [script]))
    assert cfg is not None
    assert cfg.model == "Qwen/Qwen2.5-7B-Instruct"
