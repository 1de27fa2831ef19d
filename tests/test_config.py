"""The config file: validated at start, errors naming the field, env overrides, user catalog entries."""

from __future__ import annotations

import json

import pytest

from common.config import ConfigError, load_config
from placement.checks import check_objects
from tests.manifests import L40S, vllm

LLAMA_LIKE_13B = {
    "model_type": "llama",
    "hidden_size": 5120,
    "intermediate_size": 13824,
    "num_hidden_layers": 40,
    "num_attention_heads": 40,
    "num_key_value_heads": 40,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "torch_dtype": "float16",
    "tie_word_embeddings": False,
}


def test_defaults_without_a_file():
    config = load_config(None, environ={})
    assert config.webhook.mode == "enforce" and config.checks.load_gib_per_s == 1.0


def test_env_overrides_scalar_fields():
    config = load_config(
        None, environ={"GPUPLACE_CHECKS__LOAD_GIB_PER_S": "2.5", "GPUPLACE_WEBHOOK__MODE": "warn"}
    )
    assert config.checks.load_gib_per_s == 2.5 and config.webhook.mode == "warn"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("webhook:\n  mode: strict\n", "webhook.mode"),
        ("severity:\n  oom-rsk: warning\n", "unknown finding code 'oom-rsk'"),
        ("checks:\n  typo_field: 1\n", "checks.typo_field"),
        ("catalog:\n  prices:\n    H100-XYZ: 2\n", "H100-XYZ"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_config_names_the_field(tmp_path, text, field):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=field.replace("(", r"\(").replace(")", r"\)")):
        load_config(str(path), environ={})


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "nope.yaml"), environ={})


def test_user_hf_config_json_sizes_a_model_not_in_the_catalog(tmp_path):
    (tmp_path / "house.json").write_text(json.dumps(LLAMA_LIKE_13B))
    path = tmp_path / "c.yaml"
    path.write_text("catalog:\n  hf_configs:\n    acme/house-model: house.json\n")
    ctx = load_config(str(path), environ={}).check_context()
    result = check_objects([vllm("acme/house-model", product=L40S)], ctx)
    codes = {f.code.value for _, f in result.findings}
    assert "unknown-model" not in codes  # sized from the config.json, not guessed
    resolved = ctx.models.resolve("acme/house-model")
    assert resolved is not None and 12.5e9 < resolved.arch.params < 13.5e9


def test_bad_hf_config_names_the_entry(tmp_path):
    (tmp_path / "broken.json").write_text("{}")
    path = tmp_path / "c.yaml"
    path.write_text("catalog:\n  hf_configs:\n    acme/x: broken.json\n")
    with pytest.raises(ConfigError, match=r"catalog\.hf_configs\.acme/x"):
        load_config(str(path), environ={})
