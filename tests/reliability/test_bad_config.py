"""A bad config file stops `gpuplace webhook` and `gpuplace extender` at start with exit code 2 and one
line that names the field (or the file's problem): no stack trace, no server half up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.reliability_kit import BAD_CONFIGS as BAD
from bench.reliability_kit import REPO


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
