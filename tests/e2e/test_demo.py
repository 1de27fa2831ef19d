"""hack/demo.sh against the local control plane (CI's stand-in for hack/kind-up.sh): the same script a user
runs on kind, so it cannot rot. Only the setup differs: gpuplace runs as local processes here."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.local_gpuplace import REPO, LocalExtender, LocalWebhook

pytestmark = pytest.mark.e2e


def test_demo_script_shows_the_denial_the_warnings_and_the_placement(
    control_plane, scheduler, tmp_path: Path
):
    if control_plane.external:
        pytest.skip("on an external cluster use hack/kind-up.sh, which installs gpuplace in the cluster")
    for i in (1, 2):
        control_plane.add_gpu_node(f"demo-h100-{i}", product="NVIDIA-H100-80GB-HBM3", gpus=8)
    webhook, extender = LocalWebhook(control_plane, tmp_path), LocalExtender(control_plane, tmp_path)
    webhook.start()
    extender.start()
    try:
        control_plane.apply(*webhook.configurations())
        scheduler(extender.scheduler_config("gpuplace-scheduler"), name="gpuplace-scheduler")
        time.sleep(1)  # webhook configurations are picked up asynchronously
        ns = f"demo-{os.getpid()}"
        env = {
            **os.environ,
            "KUBECONFIG": str(control_plane.kubeconfig),
            "KUBECTL": str(control_plane.kubectl_path),
        }
        proc = subprocess.run(
            ["bash", str(REPO / "hack/demo.sh"), ns],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
            check=False,
        )
        out = proc.stdout + proc.stderr
        (tmp_path / "demo.out").write_text(out)
        assert proc.returncode == 0, out
        assert (
            "denied the request: gpuplace[oom-risk]: deploy/llama-70b container vllm needs 131.4 GiB/GPU"
            in out
        )
        assert "Warning: gpuplace[tier-misplacement]: deploy/llama-8b" in out
        assert (
            "Warning: gpuplace[scale-thrashing]: hpa/llama-405b-fp8 scales deployment/llama-405b-fp8" in out
        )
        assert "Warning: gpuplace[tier-misplacement]: deploy/qwen-1-5b" in out and "(server dry run)" in out
        assert 'deployments.apps "qwen-1-5b" not found' in out
        assert "gpuplace.io/gpu-memory-min" in out
        pods = control_plane.kubectl_json("get", "pods", "-n", ns)["items"]
        placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods}
        assert all(placed.values()), placed  # every pod, the 8-GPU one included, got a node
        small = {placed[f"demo-{n}"] for n in ("tp4", "tp2", "one-a", "one-b")}
        assert len(small) == 1 and placed["demo-tp8"] not in small  # packed; the 8-GPU pod got a whole node
    finally:
        webhook.remove_configurations()
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        control_plane.force_delete_pods(ns)
        webhook.stop()
        extender.stop()
