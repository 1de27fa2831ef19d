"""Benchmark of the gpuplace scheduler extender, in one run:

1. Per-pod latency of /filter + /prioritize at 500, 5,000 and 20,000 nodes, in-process against the
   cache (no API server): what the extender does per pod (parse the ExtenderArgs JSON kube-scheduler
   sends with every node name, filter, answer, parse the prioritize call, score, answer), on a cluster
   already about half full, with each placement recorded before the next pod (as /bind does). The same
   at 5,000 nodes over HTTP (aiohttp on loopback) shows what the wire adds.
2. Throughput of the real kube-scheduler with and without the extender on the same fake cluster
   (>= 1,000 nodes, local kube-apiserver + etcd from tests/harness): N pods are created first, then the
   scheduler starts; pods/s = bound pods between the first and the last "Successfully bound" line of
   the scheduler's log. Runs: the stock configuration, the stock configuration scoring 100% of nodes,
   and the shipped gpuplace-scheduler configuration (manifests/scheduler) with the extender as a
   subprocess. kube-scheduler's client QPS is raised to 500 (burst 1000) in every run, so that its
   default of 50/s does not cap the runs that bind through the scheduler itself.

    .venv/bin/python bench/extender_bench.py                       # everything (about 5-8 minutes)
    .venv/bin/python bench/extender_bench.py --skip-throughput     # latency only
    .venv/bin/python bench/extender_bench.py --out bench/results/extender_bench.txt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from extender.cache.cluster_cache import ClusterCache, RecordState  # noqa: E402
from extender.core import Extender, Settings  # noqa: E402
from extender.filter import run_filter  # noqa: E402
from extender.prioritize import run_prioritize  # noqa: E402
from extender.protocol import parse_args  # noqa: E402
from placement.checks.settings import CheckContext  # noqa: E402
from placement.scheduling import PolicyHolder  # noqa: E402

# Node mix: (product, GPUs, cpu, memory, share of nodes)
NODE_MIX = [
    ("NVIDIA-H100-80GB-HBM3", 8, "192", "2Ti", 0.5),
    ("NVIDIA-H100-NVL", 4, "96", "1Ti", 0.2),
    ("NVIDIA-L4", 4, "48", "192Gi", 0.3),
]
# Pod mix: (GPUs, share); multi-GPU pods need one NVLink domain. A third carry a memory need (a model).
POD_MIX = [(1, 0.45), (2, 0.25), (4, 0.2), (8, 0.1)]
MEMORY_NEEDS = [None, None, 18_833, 51_443]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- objects ----------------------------------------------------------------------------------------------
def node_obj(name: str, product: str, gpus: int, cpu: str, memory: str) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": memory, "pods": "110", "nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": product,
                "nvidia.com/gpu.count": str(gpus),
                "gpuplace.io/bench": "true",
            },
        },
        "spec": {},
        "status": {
            "capacity": alloc,
            "allocatable": alloc,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "fake",
                    "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        },
    }


def nodes_for(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        x = (i * 0.6180339887) % 1.0  # a fixed, well-spread mix
        acc = 0.0
        pick = NODE_MIX[-1]
        for entry in NODE_MIX:
            acc += entry[4]
            if x < acc:
                pick = entry
                break
        product, gpus, cpu, memory, _ = pick
        out.append(node_obj(f"gpu-{i:05d}", product, gpus, cpu, memory))
    return out


def pod_obj(
    name: str,
    gpus: int,
    ns: str,
    scheduler: str,
    memory_need: int | None = None,
    uid: str | None = None,
    node: str | None = None,
    gpu_ids: str | None = None,
) -> dict[str, Any]:
    annotations: dict[str, str] = {"gpuplace.io/nvlink": "required" if gpus > 1 else "none"}
    if memory_need:
        annotations["gpuplace.io/gpu-memory-min"] = str(memory_need)
    if gpu_ids:
        annotations["gpuplace.io/gpus"] = gpu_ids
    meta: dict[str, Any] = {"name": name, "namespace": ns, "annotations": annotations}
    if uid:
        meta["uid"] = uid
        meta["resourceVersion"] = "1"
    spec: dict[str, Any] = {
        "schedulerName": scheduler,
        "terminationGracePeriodSeconds": 0,
        "containers": [
            {
                "name": "main",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {
                    "requests": {"cpu": str(4 * gpus), "memory": f"{32 * gpus}Gi"},
                    "limits": {"nvidia.com/gpu": str(gpus)},
                },
            }
        ],
    }
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {"phase": "Pending"}}


def pod_sizes(n: int, rng: random.Random) -> list[int]:
    sizes, weights = zip(*POD_MIX, strict=True)
    return rng.choices(sizes, weights=weights, k=n)


# ---- 1. latency in-process -------------------------------------------------------------------------------
def prefill(cache: ClusterCache, nodes: list[dict[str, Any]], rng: random.Random, fill: float = 0.5) -> int:
    """Bind pods (whole NVLink-aligned blocks) until about `fill` of each node's GPUs are used."""
    pods: list[dict[str, Any]] = []
    for n in nodes:
        gpus = int(n["status"]["allocatable"]["nvidia.com/gpu"])
        domain = (
            2
            if n["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-NVL"
            else (1 if gpus == 4 else 8)
        )
        target = sum(rng.random() < fill for _ in range(gpus))
        free = list(range(gpus))
        used = 0
        while used < target:
            size = rng.choice([s for s in (1, 2, 4) if s <= target - used and s <= max(domain, 1)] or [1])
            block = next(
                (
                    free[i : i + size]
                    for i in range(0, len(free) - size + 1)
                    if free[i] // max(domain, 1) == free[i + size - 1] // max(domain, 1)
                    and free[i + size - 1] - free[i] == size - 1
                ),
                None,
            )
            if block is None:
                break
            for g in block:
                free.remove(g)
            used += size
            pods.append(
                pod_obj(
                    f"pre-{len(pods)}",
                    size,
                    "bench",
                    "x",
                    uid=f"pre-{len(pods)}",
                    node=n["metadata"]["name"],
                    gpu_ids=",".join(map(str, block)),
                )
            )
    cache.replace_pods(pods, 0.0)
    return len(pods)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def latency_run(size: int, pods: int, shortlist: int, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    ctx = CheckContext.default()
    nodes = nodes_for(size)
    cache = ClusterCache(ctx.gpus)
    t = time.perf_counter()
    cache.replace_nodes(nodes)
    prefilled = prefill(cache, nodes, rng)
    with cache.view():
        pass
    setup_s = time.perf_counter() - t
    ext = Extender(cache, ctx, PolicyHolder(), settings=Settings(shortlist=shortlist))
    names = [n["metadata"]["name"] for n in nodes]
    lat_filter: list[float] = []
    lat_prio: list[float] = []
    total: list[float] = []
    passed_counts: list[int] = []
    refused = 0
    warmup = 20
    for i, gpus in enumerate(pod_sizes(pods + warmup, rng)):
        uid = f"bench-{i}"
        p = pod_obj(f"p-{i}", gpus, "bench", "gpuplace-scheduler", rng.choice(MEMORY_NEEDS), uid=uid)
        body = json.dumps({"Pod": p, "Nodes": None, "NodeNames": names}).encode()
        t0 = time.perf_counter()
        result = run_filter(ext, parse_args(body))
        answer = result.to_json()
        t1 = time.perf_counter()
        passed = json.loads(answer)["NodeNames"]
        if not passed:
            refused += 1
            continue
        body2 = json.dumps({"Pod": p, "Nodes": None, "NodeNames": passed}).encode()
        t2 = time.perf_counter()
        scores = json.loads(run_prioritize(ext, parse_args(body2))) if len(passed) > 1 else []
        t3 = time.perf_counter()
        best = max(scores, key=lambda h: h["Score"])["Host"] if scores else passed[0]
        rec = cache.record(uid)  # /bind: the nomination becomes an assumed placement
        if rec is not None and rec.state is RecordState.NOMINATED and rec.node == best and rec.gpus:
            cache.assume(uid, rec.key, best, rec.request, rec.gpus, None)
        if i >= warmup:
            lat_filter.append(t1 - t0)
            lat_prio.append(t3 - t2)
            total.append(t1 - t0 + t3 - t2)
            passed_counts.append(len(passed))
    ms = 1000.0
    return {
        "nodes": size,
        "shortlist": shortlist,
        "pods": len(total),
        "prefilled_pods": prefilled,
        "setup_s": setup_s,
        "refused": refused,
        "p50_ms": percentile(total, 50) * ms,
        "p99_ms": percentile(total, 99) * ms,
        "filter_p50_ms": percentile(lat_filter, 50) * ms,
        "prioritize_p50_ms": percentile(lat_prio, 50) * ms,
        "mean_candidates": float(np.mean(passed_counts)) if passed_counts else 0.0,
    }


async def http_latency(size: int, pods: int, shortlist: int, seed: int = 0) -> dict[str, Any]:
    """The same per-pod sequence over HTTP to the aiohttp app on loopback (client in the same process)."""
    import aiohttp
    from aiohttp import web

    from extender.server import build_app

    rng = random.Random(seed)
    ctx = CheckContext.default()
    nodes = nodes_for(size)
    cache = ClusterCache(ctx.gpus)
    cache.replace_nodes(nodes)
    prefill(cache, nodes, rng)

    class NoApi:
        async def bind(self, namespace: str, name: str, uid: str, node: str, annotations: Any) -> None:
            return None

        async def get_pod(self, namespace: str, name: str) -> None:
            return None

        async def close(self) -> None:
            return None

    ext = Extender(cache, ctx, PolicyHolder(), binder=NoApi(), settings=Settings(shortlist=shortlist))
    runner = web.AppRunner(build_app(ext), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    names = [n["metadata"]["name"] for n in nodes]
    samples: list[float] = []
    binds: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i, gpus in enumerate(pod_sizes(pods + 20, rng)):
            p = pod_obj(f"h-{i}", gpus, "bench", "gpuplace-scheduler", rng.choice(MEMORY_NEEDS), uid=f"h-{i}")
            body = json.dumps({"Pod": p, "Nodes": None, "NodeNames": names}).encode()
            t0 = time.perf_counter()
            async with session.post(url + "/filter", data=body) as resp:
                passed = (await resp.json())["NodeNames"]
            t1 = time.perf_counter()
            if not passed:
                continue
            best = passed[0]
            body2 = json.dumps({"Pod": p, "Nodes": None, "NodeNames": passed}).encode()
            t2 = time.perf_counter()
            if len(passed) > 1:
                async with session.post(url + "/prioritize", data=body2) as resp:
                    best = max(await resp.json(), key=lambda h: h["Score"])["Host"]
            t3 = time.perf_counter()
            bind = {
                "PodName": p["metadata"]["name"],
                "PodNamespace": "bench",
                "PodUID": f"h-{i}",
                "Node": best,
            }
            async with session.post(url + "/bind", json=bind) as resp:
                await resp.read()
            t4 = time.perf_counter()
            if i >= 20:
                samples.append(t1 - t0 + t3 - t2)
                binds.append(t4 - t3)
    await runner.cleanup()
    return {
        "nodes": size,
        "shortlist": shortlist,
        "pods": len(samples),
        "p50_ms": percentile(samples, 50) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "bind_p50_ms": percentile(binds, 50) * 1000,
    }


# ---- 2. throughput with the real kube-scheduler ------------------------------------------------------------
KLOG_TIME = re.compile(r"^I(\d{4}) (\d\d):(\d\d):(\d\d\.\d+)")


def bound_times(log_text: str) -> list[float]:
    out = []
    for line in log_text.splitlines():
        if "Successfully bound pod to node" not in line:
            continue
        m = KLOG_TIME.match(line)
        if m:
            out.append(int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4)))
    return sorted(out)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children) so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(f) for f in fields[11:15]) / ticks


def process_pids(cp: Any, extender_pid: int, scheduler: Any) -> dict[str, int]:
    pids = {"extender": extender_pid}
    components = (
        ("kube-apiserver", getattr(cp, "_apiserver", None)),
        ("etcd", getattr(cp, "_etcd", None)),
        ("kube-scheduler", scheduler),
    )
    for name, comp in components:
        proc = getattr(comp, "process", None)
        pid = getattr(proc, "pid", None)
        if isinstance(pid, int):
            pids[name] = pid
    return pids


def scheduler_configs(extender_url: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    qps = {"qps": 500, "burst": 1000}
    stock = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": qps,
        "profiles": [{"schedulerName": "bench-stock"}],
    }
    yield "stock kube-scheduler (default config)", stock, "bench-stock"
    yield (
        "stock, percentageOfNodesToScore: 100",
        {**stock, "percentageOfNodesToScore": 100, "profiles": [{"schedulerName": "bench-stock-all"}]},
        "bench-stock-all",
    )
    configmap = yaml.safe_load((REPO / "manifests/scheduler/scheduler-config.yaml").read_text())
    shipped = yaml.safe_load(configmap["data"]["scheduler-config.yaml"])
    shipped["extenders"][0]["urlPrefix"] = extender_url
    shipped.pop("leaderElection", None)
    shipped["clientConnection"] = qps
    if os.environ.get("GPUPLACE_BENCH_NO_BIND"):  # diagnosis: kube-scheduler binds itself
        shipped["extenders"][0].pop("bindVerb")
    yield "gpuplace-scheduler + extender (shipped config)", shipped, "gpuplace-scheduler"


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except Exception as exc:
        return 0, str(exc)


def extender_sums(metrics: str) -> dict[str, tuple[float, float]]:
    """verb -> (seconds, requests) so far, from the extender's latency histogram."""
    found: dict[str, list[float]] = {}
    for kind, verb, value in re.findall(
        r'gpuplace_extender_request_duration_seconds_(sum|count)\{verb="(\w+)"\} (\S+)', metrics
    ):
        found.setdefault(verb, [0.0, 0.0])[0 if kind == "sum" else 1] = float(value)
    return {verb: (v[0], v[1]) for verb, v in found.items()}


def mean_ms(before: str, after: str) -> dict[str, tuple[float, int]]:
    """Mean latency and number of requests per verb between two scrapes."""
    b, a = extender_sums(before), extender_sums(after)
    out = {}
    for verb, (seconds, count) in a.items():
        s0, c0 = b.get(verb, (0.0, 0.0))
        if count > c0:
            out[verb] = (1000 * (seconds - s0) / (count - c0), int(count - c0))
    return out


def scheduler_breakdown(cp: Any, sched: Any) -> dict[str, float]:
    """Mean ms per pod of kube-scheduler's scheduling algorithm (filter + extenders + score) and of its
    Filter and Score plugins, from its /metrics (read with the admin client certificate)."""
    import ssl

    apiserver = getattr(cp, "_apiserver", None)
    admin = getattr(apiserver, "admin", None)
    if admin is None:
        return {}
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(str(admin.cert_path), str(admin.key_path))
    try:
        url = f"https://127.0.0.1:{sched.port}/metrics"
        with urllib.request.urlopen(url, context=context, timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return {}

    def mean(pattern: str) -> float:
        sums = [float(v) for v in re.findall(pattern.replace("KIND", "sum"), text, re.M)]
        counts = [float(v) for v in re.findall(pattern.replace("KIND", "count"), text, re.M)]
        return 1000 * sum(sums) / sum(counts) if counts and sum(counts) else float("nan")

    return {
        "algorithm": mean(r"^scheduler_scheduling_algorithm_duration_seconds_KIND (\S+)"),
        "filter plugins": mean(
            r"^scheduler_framework_extension_point_duration_seconds_KIND\{"
            r'extension_point="Filter",profile="[^"]+",status="Success"\} (\S+)'
        ),
        "score plugins": mean(
            r"^scheduler_framework_extension_point_duration_seconds_KIND\{"
            r'extension_point="Score",profile="[^"]+",status="Success"\} (\S+)'
        ),
    }


class Cluster:
    """The local control plane with the fake nodes, the extender subprocess and the bench namespace."""

    def __init__(self, cp: Any, n_nodes: int, tmp: Path) -> None:
        from kubernetes import client as k8s

        from tests.harness.controlplane import free_port

        self.cp = cp
        api: Any = k8s.CoreV1Api(cp.api_client())
        self.api = api
        self.api.api_client.configuration.connection_pool_maxsize = 16
        t = time.perf_counter()
        self.nodes = nodes_for(n_nodes)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(self._make_node, self.nodes))
        log(f"created {n_nodes} nodes in {time.perf_counter() - t:.1f}s")
        self.api.create_namespace({"metadata": {"name": "bench"}}, _preload_content=False)
        cp.ensure_default_service_account("bench")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "extender.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.shortlist: int | None = None
        self.start_extender(1)

    def start_extender(self, shortlist: int) -> None:
        """(Re)start `gpuplace extender` with this shortlist and wait until it is ready."""
        if self.proc is not None and self.shortlist == shortlist:
            return
        self.close()
        launcher = os.environ.get("GPUPLACE_BENCH_LAUNCHER", "").split() or [sys.executable, "-m", "gpuplace"]
        with self.log_path.open("ab") as fh:
            self.proc = subprocess.Popen(
                [
                    *launcher,
                    "extender",
                    "--kubeconfig",
                    str(self.cp.kubeconfig),
                    "--address",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--shortlist",
                    str(shortlist),
                    "--log-level",
                    os.environ.get("GPUPLACE_BENCH_LOG_LEVEL", "warning"),
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        self.shortlist = shortlist
        deadline = time.monotonic() + 120
        while http_get(self.url + "/readyz")[0] != 200:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"extender not ready:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.5)

    def _make_node(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        self.api.create_node(obj, _preload_content=False)
        self.api.patch_node(name, {"spec": {"taints": []}}, _preload_content=False)  # drop not-ready
        self.api.patch_node_status(name, {"status": obj["status"]}, _preload_content=False)

    def bench_pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(
            self.api.list_namespaced_pod("bench", _preload_content=False).data
        )["items"]
        return items

    def run(
        self,
        label: str,
        config: dict[str, Any],
        scheduler_name: str,
        sizes: list[int],
        tag: str,
        timeout: float,
    ) -> dict[str, Any]:
        wait_extender_idle(self.url, [n["metadata"]["name"] for n in self.nodes])
        t = time.perf_counter()

        def make_pod(args: tuple[int, int]) -> None:
            i, gpus = args
            self.api.create_namespaced_pod(
                "bench", pod_obj(f"{tag}-{i}", gpus, "bench", scheduler_name), _preload_content=False
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(make_pod, enumerate(sizes)))
        log(f"{label}: created {len(sizes)} pods in {time.perf_counter() - t:.1f}s; starting the scheduler")
        before = http_get(self.url + "/metrics")[1]
        with self.cp.start_scheduler(config, name=f"bench-{tag}", timeout=120) as sched:
            started = time.monotonic()
            assert self.proc is not None
            pids = process_pids(self.cp, self.proc.pid, sched)
            cpu_before = {k: cpu_seconds(p) for k, p in pids.items()}
            bound, last_change, last_bound = 0, started, -1
            # Until every pod is bound, or nothing got bound for 15 s (the rest is unschedulable).
            while time.monotonic() - started < timeout and time.monotonic() - last_change < 15:
                bound = sum(1 for p in self.bench_pods() if p["spec"].get("nodeName"))
                if bound != last_bound:
                    last_bound, last_change = bound, time.monotonic()
                if bound >= len(sizes):
                    break
                time.sleep(0.5)
            wall = time.monotonic() - started
            times = bound_times(sched.logs())
            cpu = {k: cpu_seconds(p) - cpu_before[k] for k, p in pids.items()}
            breakdown = scheduler_breakdown(self.cp, sched)
        after = http_get(self.url + "/metrics")[1]
        span = times[-1] - times[0] if len(times) > 1 else float("nan")
        row = {
            "run": label,
            "nodes": len(self.nodes),
            "pods": len(sizes),
            "bound": bound,
            "pods_per_s": (len(times) - 1) / span if span > 0 else float("nan"),
            "bind_span_s": span,
            "wall_s": wall,
            "cpu_s": cpu,
            "extender_mean_ms": mean_ms(before, after),
            "scheduler_ms": breakdown,
        }
        log(
            f"{label}: {bound}/{len(sizes)} bound, {row['pods_per_s']:.1f} pods/s (binds over {span:.1f}s, "
            f"{wall:.1f}s from scheduler start)"
        )
        self.api.delete_collection_namespaced_pod("bench", grace_period_seconds=0, _preload_content=False)
        wait_pods_gone(self.api)
        return row

    def close(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc = None
        keep = os.environ.get("GPUPLACE_BENCH_KEEP_LOG")
        if keep:
            Path(keep).write_bytes(self.log_path.read_bytes())


def throughput(
    n_nodes: int,
    n_pods: int,
    timeout: float,
    runs: list[str] | None = None,
    repeat: int = 1,
    shortlists: tuple[int, ...] = (1,),
) -> list[dict[str, Any]]:
    """Every configuration `repeat` times, interleaved, so that load from elsewhere hits them alike."""
    from tests.harness import local_control_plane

    results = []
    with tempfile.TemporaryDirectory(prefix="gpuplace-bench-") as tmp, local_control_plane(Path(tmp)) as cp:
        cluster = Cluster(cp, n_nodes, Path(tmp))
        try:
            sizes = pod_sizes(n_pods, random.Random(1))
            for rep in range(repeat):
                for label, config, scheduler_name in scheduler_configs(cluster.url):
                    if runs and scheduler_name not in runs:
                        continue
                    for k in shortlists if scheduler_name == "gpuplace-scheduler" else (0,):
                        if scheduler_name == "gpuplace-scheduler":
                            cluster.start_extender(k)
                            label = f"gpuplace-scheduler + extender, shortlist {k}"
                        tag = f"{scheduler_name}-{k}-{rep}"
                        row = cluster.run(label, config, scheduler_name, sizes, tag, timeout)
                        results.append({**row, "rep": rep})
        finally:
            cluster.close()
    return results


def wait_pods_gone(api: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not json.loads(api.list_namespaced_pod("bench", _preload_content=False).data)["items"]:
            return
        time.sleep(1.0)
    raise RuntimeError("bench pods not deleted")


def wait_extender_idle(url: str, names: list[str], timeout: float = 120) -> None:
    """Until the extender's cache holds every node with all its GPUs free."""
    probe = pod_obj("probe", 1, "bench", "x")
    probe["metadata"]["uid"] = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = urllib.request.Request(
            url + "/filter", data=json.dumps({"Pod": probe, "Nodes": None, "NodeNames": names}).encode()
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = json.loads(resp.read())
        if body["NodeNames"] and not body["FailedNodes"] and not body["FailedAndUnresolvableNodes"]:
            metrics = http_get(url + "/metrics")[1]
            assumed = re.search(r"^gpuplace_extender_cache_pods (\S+)", metrics, re.M)
            if assumed and float(assumed.group(1)) == 0:
                return
        time.sleep(1.0)
    raise RuntimeError("the extender's cache did not drain")


# ---- report ------------------------------------------------------------------------------------------------
def report(lat: list[dict[str, Any]], http: list[dict[str, Any]], thr: list[dict[str, Any]]) -> str:
    lines = [
        f"# gpuplace extender benchmark, {datetime.now().isoformat(timespec='seconds')}",
        f"# host: {platform.node()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.machine()}; other work may be running on the same cores",
        "",
    ]
    lines.append("## filter + prioritize per pod, in-process (parse request, decide, write answer)")
    lines.append("shortlist 1: /filter ranks the fitting nodes and offers the best (the scheduler then skips")
    lines.append("/prioritize); shortlist 0: /filter offers every fitting node, /prioritize scores them all.")
    lines.append(
        f"{'nodes':>7} {'shortlist':>9} {'pods':>5} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'filter p50':>11} {'prio p50':>9} {'offered':>8} {'refused':>8}"
    )
    for r in lat:
        lines.append(
            f"{r['nodes']:>7} {r['shortlist']:>9} {r['pods']:>5} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['filter_p50_ms']:>11.2f} {r['prioritize_p50_ms']:>9.2f} "
            f"{r['mean_candidates']:>8.0f} {r['refused']:>8}"
        )
    if http:
        lines += ["", "## the same over HTTP (aiohttp, loopback, client in the same process)"]
        for r in http:
            lines.append(
                f"{r['nodes']:>7} nodes, shortlist {r['shortlist']}: filter+prioritize p50 "
                f"{r['p50_ms']:.2f} ms, p99 "
                f"{r['p99_ms']:.2f} ms; bind (no API call) p50 {r['bind_p50_ms']:.2f} ms"
            )
    if thr:
        lines += [
            "",
            "## real kube-scheduler throughput on the same fake cluster "
            "(pods created first, then the scheduler starts)",
            "pods/s over the bind span (first to last 'Successfully bound' line of the scheduler log);",
            "median of the repetitions, each repetition in brackets; CPU seconds per process for the",
            "median repetition; extender mean ms per verb as the extender served them.",
        ]
        by_run: dict[str, list[dict[str, Any]]] = {}
        for r in thr:
            by_run.setdefault(r["run"], []).append(r)
        medians = {run: float(np.median([r["pods_per_s"] for r in rows])) for run, rows in by_run.items()}
        base = next((v for k, v in medians.items() if k.startswith("stock kube")), float("nan"))
        # The shipped configuration scores every node (percentageOfNodesToScore: 100): without the
        # extender, that configuration is the stock run that scores 100% of nodes.
        same = next((v for k, v in medians.items() if "percentageOfNodesToScore: 100" in k), float("nan"))
        for run, rows in by_run.items():
            mid = sorted(rows, key=lambda r: r["pods_per_s"])[len(rows) // 2]
            each = ", ".join(f"{r['pods_per_s']:.0f}" for r in rows)
            versus = f" = {medians[run] / base:.0%} of stock"
            if "extender" in run:
                versus += f", {medians[run] / same:.0%} of the same configuration without the extender"
            lines.append(
                f"{run:<48} {mid['nodes']} nodes, {mid['bound']}/{mid['pods']} bound: "
                f"{medians[run]:.1f} pods/s [{each}]{versus}"
            )
            lines.append("    CPU s: " + ", ".join(f"{k} {v:.1f}" for k, v in mid["cpu_s"].items()))
            if mid.get("scheduler_ms"):
                lines.append(
                    "    kube-scheduler mean ms per attempt: "
                    + ", ".join(f"{k} {v:.2f}" for k, v in mid["scheduler_ms"].items())
                )
            if "extender" in run and mid["extender_mean_ms"]:
                lines.append(
                    "    extender requests (mean ms): "
                    + ", ".join(f"{k} {n} ({v:.2f})" for k, (v, n) in sorted(mid["extender_mean_ms"].items()))
                )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="500,5000,20000", help="node counts for the latency part")
    parser.add_argument("--pods", type=int, default=300, help="pods per size (latency part)")
    parser.add_argument(
        "--http-size", type=int, default=5000, help="node count of the HTTP latency run (0: skip)"
    )
    parser.add_argument("--throughput-nodes", type=int, default=1000)
    parser.add_argument("--throughput-pods", type=int, default=1000)
    parser.add_argument("--throughput-timeout", type=float, default=240.0, help="seconds per scheduler run")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each scheduler run")
    parser.add_argument("--shortlists", default="1,8", help="extender --shortlist values to run")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--runs",
        default="",
        help="comma-separated subset of: bench-stock, bench-stock-all, gpuplace-scheduler (default: all)",
    )
    parser.add_argument("--out", help="also write the report here")
    args = parser.parse_args()
    lat = []
    shortlists = tuple(int(k) for k in args.shortlists.split(","))
    for size in (int(s) for s in args.sizes.split(",") if s):
        for k in (*shortlists, 0) if 0 not in shortlists else shortlists:
            log(f"latency at {size} nodes, shortlist {k}")
            lat.append(latency_run(size, args.pods, k))
    http = (
        [asyncio.run(http_latency(args.http_size, min(args.pods, 200), k)) for k in (shortlists[0], 0)]
        if args.http_size
        else []
    )
    runs = [r for r in args.runs.split(",") if r] or None
    thr = (
        []
        if args.skip_throughput
        else throughput(
            args.throughput_nodes,
            args.throughput_pods,
            args.throughput_timeout,
            runs,
            args.repeat,
            tuple(int(k) for k in args.shortlists.split(",")),
        )
    )
    text = report(lat, http, thr)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
