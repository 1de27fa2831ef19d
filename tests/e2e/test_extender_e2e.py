"""The extender with the real kube-scheduler (the shipped KubeSchedulerConfiguration from
manifests/scheduler/) and fake GPU nodes: assertions on real bindings (spec.nodeName and the
gpuplace.io/gpus annotation the binding writes).

The extender runs as `gpuplace extender` in a subprocess, watching the test's kube-apiserver.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ControlPlane, SchedulerFactory, gpu_pod, wait_until
from tests.harness.controlplane import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests" / "scheduler"
SCHEDULER_NAME = "gpuplace-scheduler"
COMPARE_NAME = "default-compare"  # a stock profile: what the default scheduler alone does
NVLINK = {"gpuplace.io/nvlink": "required"}
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA_70B = "meta-llama/Llama-3.1-70B-Instruct"


class ExtenderProcess:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.proc = proc
        self.url = url
        self.log_path = log_path

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def post(self, verb: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(self.url + "/" + verb, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self, *needles: str, timeout: float = 5.0) -> list[str]:
        """Lines holding every needle, waiting for the first one: the extender writes its log in batches,
        up to 0.2 s after the event (common/logs.py)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.logs().splitlines() if all(n in line for n in needles)]
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def filter_verdicts(self, nodes: list[str], gpus: int) -> tuple[list[str], dict[str, str]]:
        """Ask /filter about a throwaway pod (no UID: nothing gets nominated)."""
        probe = gpu_pod("probe", gpus)
        probe["metadata"]["uid"] = ""
        result = self.post("filter", {"Pod": probe, "Nodes": None, "NodeNames": nodes})
        return result["NodeNames"], {**result["FailedNodes"], **result["FailedAndUnresolvableNodes"]}

    def wait_until_it_sees(self, nodes: list[str], empty: bool = True) -> None:
        """Until the extender's cache holds the nodes (and, with `empty`, all their GPUs free)."""

        def seen() -> bool:
            _, failed = self.filter_verdicts(nodes, 1)
            if any("not in the extender's cache" in m for m in failed.values()):
                return False
            return not empty or not failed

        wait_until(seen, timeout=30, what=f"the extender to see {nodes}")


def run_extender(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory,
                 *extra: str) -> Iterator[ExtenderProcess]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("extender") / "extender.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gpuplace", "extender", "--kubeconfig", str(control_plane.kubeconfig),
             "--address", "127.0.0.1", "--port", str(port), "--log-level", "debug", *extra],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    ext = ExtenderProcess(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until(lambda: ext.get("/readyz")[0] == 200 or proc.poll() is not None, timeout=60,
                   what="gpuplace extender /readyz")
        if proc.poll() is not None:
            pytest.fail(f"gpuplace extender exited with {proc.returncode}:\n{ext.logs()[-3000:]}")
        yield ext
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def extender(control_plane: ControlPlane,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExtenderProcess]:
    """`gpuplace extender` with its defaults (/filter offers the one best node)."""
    yield from run_extender(control_plane, tmp_path_factory)


@pytest.fixture(scope="module")
def extender_offering_all(control_plane: ControlPlane,
                          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExtenderProcess]:
    """`gpuplace extender --shortlist 0`: every fitting node offered, the scheduler calls /prioritize."""
    yield from run_extender(control_plane, tmp_path_factory, "--shortlist", "0")


def shipped_scheduler_config(extender_url: str) -> dict[str, Any]:
    """manifests/scheduler's KubeSchedulerConfiguration, pointed at the test's extender."""
    configmap = yaml.safe_load((MANIFESTS / "scheduler-config.yaml").read_text())
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["scheduler-config.yaml"])
    assert config["extenders"][0]["urlPrefix"] == "http://127.0.0.1:8888"
    config["extenders"][0]["urlPrefix"] = extender_url
    config.pop("leaderElection", None)  # the harness runs one scheduler without leader election
    return config


STOCK_CONFIG = {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
                "profiles": [{"schedulerName": COMPARE_NAME}]}


def sized_pod(name: str, gpus: int, ns: str, scheduler: str, **kw: Any) -> dict[str, Any]:
    """A GPU pod asking CPU and memory in proportion to its GPUs (12 cores, 192 GiB per GPU on
    128-core/2 TiB nodes), as real GPU pods do; the stock scheduler then spreads by CPU."""

    def sized(p: dict[str, Any]) -> None:
        requests = {"cpu": str(12 * gpus), "memory": f"{192 * gpus}Gi"}
        p["spec"]["containers"][0]["resources"]["requests"] = requests

    annotations = kw.pop("annotations", NVLINK if gpus > 1 else {})
    return gpu_pod(name, gpus, namespace=ns, scheduler_name=scheduler, annotations=annotations, extra=sized,
                   **kw)


def vllm_pod(name: str, model: str, gpus: int, ns: str, **kw: Any) -> dict[str, Any]:
    """A vLLM server pod without gpuplace.io annotations (no webhook here): the extender recomputes."""
    args = ["vllm", "serve", model, "--max-model-len", "8192"]
    if gpus > 1:
        args += ["--tensor-parallel-size", str(gpus)]

    def serve(p: dict[str, Any]) -> None:
        c = p["spec"]["containers"][0]
        c["image"], c["args"] = "vllm/vllm-openai:v0.8.5", args

    return gpu_pod(name, gpus, namespace=ns, scheduler_name=SCHEDULER_NAME, extra=serve, **kw)


def place(cp: ControlPlane, pods: list[dict[str, Any]], timeout: float = 60) -> dict[str, str]:
    """Create pods one at a time, each after the previous one is bound; name -> node."""
    placed = {}
    for p in pods:
        cp.create(p)
        placed[p["metadata"]["name"]] = cp.wait_for_pod_scheduled(p["metadata"]["name"],
                                                                  p["metadata"]["namespace"], timeout=timeout)
    return placed


def gpus_of(cp: ControlPlane, name: str, ns: str) -> list[int]:
    text = cp.pod(name, ns)["metadata"].get("annotations", {}).get("gpuplace.io/gpus", "")
    return [int(g) for g in text.split(",") if g]


def free_gpus(cp: ControlPlane, nodes: list[str]) -> dict[str, int]:
    """Free nvidia.com/gpu per node, from allocatable and the bound pods' limits."""
    free = {n: int(cp.kubectl_json("get", "node", n)["status"]["allocatable"]["nvidia.com/gpu"])
            for n in nodes}
    for p in cp.kubectl_json("get", "pods", "-A")["items"]:
        node = p["spec"].get("nodeName")
        if node in free:
            free[node] -= sum(int((c.get("resources", {}).get("limits") or {}).get("nvidia.com/gpu", 0))
                              for c in p["spec"]["containers"])
    return free


@pytest.mark.parametrize("which", ["extender", "extender_offering_all"])
def test_burst_that_strands_an_8_gpu_pod_under_the_default_scheduler_packs_with_the_extender(
    control_plane: ControlPlane, scheduler: SchedulerFactory, request: pytest.FixtureRequest, which: str,
) -> None:
    extender: ExtenderProcess = request.getfixturevalue(which)
    nodes = ["burst-h100-a", "burst-h100-b"]
    for n in nodes:
        control_plane.add_gpu_node(n, gpus=8)
    nvl = "burst-nvl-a"
    control_plane.add_gpu_node(nvl, product="NVIDIA-H100-NVL", gpus=4, memory_mib=95830, cpu="64",
                               memory="1Ti")
    arrival = [("p4", 4), ("p2", 2), ("p1a", 1), ("p1b", 1), ("p2b", 2)]

    # The stock scheduler alone: LeastAllocated spreads the small pods over both H100 nodes.
    stock = scheduler(STOCK_CONFIG, name="kube-scheduler-stock")
    ns = control_plane.create_namespace("stock")
    place(control_plane, [sized_pod(n, g, ns, COMPARE_NAME) for n, g in arrival])
    control_plane.create(sized_pod("p8", 8, ns, COMPARE_NAME))
    message = control_plane.wait_for_pod_unschedulable("p8", ns, timeout=60)
    assert "Insufficient nvidia.com/gpu" in message
    free = free_gpus(control_plane, [*nodes, nvl])
    assert sum(free.values()) >= 8 and max(free.values()) < 8, free  # 8 free in total, not on one node
    stock.stop()
    control_plane.force_delete_pods(ns)
    extender.wait_until_it_sees([*nodes, nvl], empty=True)

    # The same arrival through gpuplace-scheduler (the shipped configuration) and the extender.
    scheduler(shipped_scheduler_config(extender.url), name="kube-scheduler-gpuplace")
    ns = control_plane.create_namespace("gpuplace")
    placed = place(control_plane, [sized_pod(n, g, ns, SCHEDULER_NAME) for n, g in [*arrival, ("p8", 8)]])
    assert set(placed) == {"p4", "p2", "p1a", "p1b", "p2b", "p8"}
    # No multi-GPU pod spans an NVLink domain: one pair on the pair node, 4 and 8 on switch nodes.
    for name, node in placed.items():
        gpus = gpus_of(control_plane, name, ns)
        assert len(gpus) == {"p4": 4, "p2": 2, "p2b": 2, "p8": 8}.get(name, 1), name
        if node == nvl and len(gpus) > 1:
            assert gpus in ([0, 1], [2, 3]), f"{name} spans the pairs of {nvl}: {gpus}"
    assert placed["p4"] in nodes and placed["p8"] in nodes
    assert placed["p8"] != placed["p4"]
    bound_lines = extender.log_lines(f"bound {ns}/p8 ")
    assert bound_lines and "GPUs 0,1,2,3,4,5,6,7" in bound_lines[0]
    _, metrics = extender.get("/metrics")
    prioritized = 'gpuplace_extender_requests_total{outcome="ok",verb="prioritize"}' in metrics
    assert prioritized == (which == "extender_offering_all")  # with one node offered, no /prioritize


def test_small_model_lands_on_l4_h100_stays_whole_and_70b_never_goes_where_it_cannot_fit(
    control_plane: ControlPlane, scheduler: SchedulerFactory, extender: ExtenderProcess,
) -> None:
    h100 = "tier-h100-a"
    l4s = ["tier-l4-a", "tier-l4-b"]
    control_plane.add_gpu_node(h100, gpus=8)
    for n in l4s:
        control_plane.add_gpu_node(n, product="NVIDIA-L4", gpus=4, memory_mib=23034, cpu="48", memory="192Gi")
    extender.wait_until_it_sees([h100, *l4s])
    scheduler(shipped_scheduler_config(extender.url), name="kube-scheduler-gpuplace")
    ns = control_plane.create_namespace("tiers")

    small = place(control_plane, [vllm_pod(f"llama-8b-{i}", LLAMA_8B, 1, ns) for i in range(4)])
    assert set(small.values()) <= set(l4s), small
    big = place(control_plane, [vllm_pod(f"llama-70b-{i}", LLAMA_70B, 2, ns) for i in range(4)])
    assert set(big.values()) == {h100}, big
    for i in range(4):  # tensor parallelism over NVLink: each pair of GPUs inside the node's one domain
        assert len(gpus_of(control_plane, f"llama-70b-{i}", ns)) == 2

    # The H100 node is full; the L4 nodes have 4 GPUs free, too small for a 70B shard.
    control_plane.create(vllm_pod("llama-70b-4", LLAMA_70B, 2, ns))
    message = control_plane.wait_for_pod_unschedulable("llama-70b-4", ns, timeout=60)
    assert "gpuplace: L4 GPUs hold 22558 MiB; the pod needs" in message, message
    assert not control_plane.pod("llama-70b-4", ns)["spec"].get("nodeName")
    assert extender.log_lines(f"refused {ns}/llama-70b-4", "gpu-memory")


def test_pods_of_one_group_land_in_one_nvlink_clique(
    control_plane: ControlPlane, scheduler: SchedulerFactory, extender: ExtenderProcess,
) -> None:
    nodes = {f"nvl72-{c}-{i}": c for c in ("c1", "c2") for i in range(2)}
    for name, clique in nodes.items():
        control_plane.add_gpu_node(name, product="NVIDIA-GB200", gpus=4, memory_mib=189471,
                                   clique=f"fabric-{clique}")
    extender.wait_until_it_sees(list(nodes))
    scheduler(shipped_scheduler_config(extender.url), name="kube-scheduler-gpuplace")
    ns = control_plane.create_namespace("group")
    group = {"gpuplace.io/group": "leaderworkerset/llama-405b", "gpuplace.io/nvlink": "required",
             "leaderworkerset.sigs.k8s.io/size": "4"}
    pods = [gpu_pod(f"llama-405b-0-{i}", 2, namespace=ns, scheduler_name=SCHEDULER_NAME, annotations=group,
                    labels={"leaderworkerset.sigs.k8s.io/group-index": "0"}) for i in range(4)]
    placed = place(control_plane, pods)
    cliques = {nodes[n] for n in placed.values()}
    assert len(cliques) == 1, placed


def test_shipped_scheduler_manifests_pass_server_side_validation(control_plane: ControlPlane) -> None:
    rendered = control_plane.kubectl("kustomize", str(MANIFESTS)).stdout
    ns = control_plane.create_namespace("manifests")
    docs = []
    for doc in yaml.safe_load_all(rendered):
        if doc["metadata"].get("namespace") == "gpuplace-system":
            doc["metadata"]["namespace"] = ns
        for subject in doc.get("subjects") or []:
            subject["namespace"] = ns
        docs.append(doc)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("Deployment") == 1 and "ConfigMap" in kinds and "ClusterRole" in kinds
    out = control_plane.kubectl("apply", "--dry-run=server", "-f", "-",
                                input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    assert "created (server dry run)" in out.stdout

