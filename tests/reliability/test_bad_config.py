"""A bad config file stops `gpuplace webhook` and `gpuplace extender` at start with exit code 2 and one
line that names the field (or the file's problem): no stack trace, no server half up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.reliability_kit import REPO

BAD = {
    "a field of the wrong type": (
        "webhook",
        "webhook:\n  timeout_budget_s: fast\n",
        "webhook.timeout_budget_s",
    ),
    "a value out of range": ("webhook", "webhook:\n  timeout_budget_s: 60\n", "webhook.timeout_budget_s"),
    "a misspelt section": ("webhook", "webhok:\n  mode: warn\n", "webhok"),
    "a misspelt field": ("webhook", "webhook:\n  mod: warn\n", "webhook.mod"),
    "an unknown mode": ("webhook", "webhook:\n  mode: strict\n", "webhook.mode"),
    "an unknown finding code": ("webhook", "severity:\n  oom-risky: info\n", "oom-risky"),
    "broken YAML": ("webhook", "webhook: [1,\n", "invalid YAML"),
    "a list, not a mapping": ("webhook", "- webhook\n", "bad.yaml"),
    "binary bytes": ("webhook", "\x00\x01\x02", "bad.yaml"),
    "extender: a field of the wrong type": (
        "extender",
        "extender:\n  bind_timeout_s: soon\n",
        "extender.bind_timeout_s",
    ),
    "extender: an unknown policy": ("extender", "extender:\n  policy: fastest\n", "extender.policy"),
    "extender: broken YAML": ("extender", "extender: {port: \n", "invalid YAML"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_config_file_is_one_line_naming_the_field_and_exit_2(tmp_path: Path, case):
    command, text, named = BAD[case]
    (tmp_path / "bad.yaml").write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "gpuplace", command, "--config", str(tmp_path / "bad.yaml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
