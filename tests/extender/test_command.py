"""`gpuplace extender` as a user starts it: help, usage errors (exit 2, one line), and a real start
against a kubeconfig that points nowhere (it serves, and says it is not ready)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gpuplace.cli import main
from tests.harness.controlplane import free_port

REPO = Path(__file__).resolve().parents[2]


def test_help_names_credentials_port_tls_and_log_level(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["extender", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--kubeconfig", "--context", "--port", "--address", "--tls-cert-file", "--tls-key-file",
                 "--log-level", "--policy", "--shortlist", "in-cluster"):
        assert flag in out, flag


def test_unknown_policy_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["extender", "--policy", "worst-fit", "--kubeconfig", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "unknown policy 'worst-fit'" in err and len(err.strip().splitlines()) == 1


def test_missing_kubeconfig_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["extender", "--kubeconfig", str(tmp_path / "missing.yaml")]) == 2
    assert "no usable Kubernetes credentials" in capsys.readouterr().err


def test_half_a_tls_pair_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.replace("{port}", "1"))
    assert main(["extender", "--kubeconfig", str(kubeconfig), "--tls-cert-file", "x.crt"]) == 2
    assert "TLS needs both" in capsys.readouterr().err


def test_bad_config_file_names_the_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("extender:\n  shortlist: -1\n")
    assert main(["extender", "-c", str(config), "--kubeconfig", str(tmp_path / "none")]) == 2
    assert "extender.shortlist" in capsys.readouterr().err


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:{port}"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_without_an_api_server_it_serves_health_but_is_not_ready(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.replace("{port}", str(free_port())))  # nothing listens there
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gpuplace", "extender", "--kubeconfig", str(kubeconfig),
                             "--address", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while get(f"http://127.0.0.1:{port}/healthz")[0] != 200:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the extender did not start serving"
            time.sleep(0.2)
        status, text = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and "not synced" in text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    log = out.decode()
    assert "watch restarts (error)" in log  # it keeps retrying with backoff, it does not crash
    assert "gpuplace extender stopped" in log
