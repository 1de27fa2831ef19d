"""helm (built by hack/helm.sh) and kubectl's kustomize (built by hack/control-plane.sh) for the chart tests;
missing binaries skip the tests locally and fail them under CI=true, like the e2e fixtures."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "gpuplace"
HELM_SCRIPT = REPO / "hack" / "helm.sh"
RELEASE, NAMESPACE = "gpuplace", "gpuplace-system"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true: the chart tests must run)", pytrace=False)
    pytest.skip(reason)


def helm_binary() -> Path:
    override = os.environ.get("GPUPLACE_HELM")
    if override:
        return Path(override)
    out = subprocess.run(["bash", str(HELM_SCRIPT), "path"], capture_output=True, text=True, check=True)
    path = Path(out.stdout.strip())
    if not path.is_file():
        _unavailable(f"helm missing at {path}: run `bash hack/helm.sh install` (or `make helm`)")
    return path


def helm(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, timeout=120, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def render(*sets: str, namespace: str = NAMESPACE, set_json: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """`helm template` with `--set` pairs (and `--set-json`: helm's --set makes 3.9 a string), as parsed
    objects."""
    flags = [f for s in sets for f in ("--set", s)] + [f for s in set_json for f in ("--set-json", s)]
    out = helm("template", RELEASE, str(CHART), "--namespace", namespace, *flags).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_key(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}
