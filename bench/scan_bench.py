"""Benchmark of `gpuplace scan` on the harness's local kube-apiserver: 5,000 fake GPU nodes and
20,000 GPU pods (targets: under 30 s and under 500 MB), printed.

The fleet: 2,500 H100 nodes (8 GPUs) and 2,500 L4 nodes (4 GPUs); 2,000 Deployments (each with its
ReplicaSet) of vLLM serving Llama-3.1-8B (H100) or Qwen2.5-7B (L4), 10 pods each, bound to nodes
(5 one-GPU pods per H100 node, 4 per L4 node on 1,875 of them, so 625 L4 nodes are dark), one pod in
50 with an OOMKilled crash-loop status, 1 HPA per 10 Deployments, 20 pending 8-GPU pods. Then
`python -m gpuplace scan --kubeconfig ... -o json` runs as a subprocess (what a user runs: list over
the API, checks, observed findings, cost, output), timed, with its peak RSS from getrusage; it is run
three times and every run is printed. The in-process split (listing vs the rest) comes from one
more run of collect() and scan() in this process.

    .venv/bin/python bench/scan_bench.py                       # about 3-6 minutes to build the fleet
    .venv/bin/python bench/scan_bench.py --out bench/results/scan_bench.txt
    .venv/bin/python bench/scan_bench.py --nodes 500 --pods 2000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

H100, L4 = "NVIDIA-H100-80GB-HBM3", "NVIDIA-L4"
PODS_PER_DEPLOYMENT = 10
THREADS = 16


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def node_obj(name: str, product: str, gpus: int) -> dict[str, Any]:
    alloc = {"nvidia.com/gpu": str(gpus), "cpu": "192", "memory": "2Ti", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"nvidia.com/gpu.product": product, "kubernetes.io/hostname": name},
        },
        "status": {
            "capacity": alloc,
            "allocatable": alloc,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def template(product: str) -> dict[str, Any]:
    model = "meta-llama/Llama-3.1-8B-Instruct" if product == H100 else "Qwen/Qwen2.5-7B-Instruct"
    return {
        "metadata": {"labels": {"app": "serve"}},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": product},
            "containers": [
                {
                    "name": "vllm",
                    "image": "vllm/vllm-openai:v0.9.0",
                    "command": ["vllm", "serve", model, "--max-model-len", "8192"],
                    "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "8", "memory": "32Gi"}},
                }
            ],
        },
    }


OOM_STATUS = {
    "phase": "Running",
    "containerStatuses": [
        {
            "name": "vllm",
            "ready": False,
            "restartCount": 5,
            "image": "x",
            "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
        }
    ],
}


class Fleet:
    def __init__(self, cp: Any, nodes: int, pods: int) -> None:
        from kubernetes import client as k8s

        self.cp = cp
        api_client = cp.api_client()
        api_client.configuration.connection_pool_maxsize = THREADS
        self.core, self.apps = k8s.CoreV1Api(api_client), k8s.AppsV1Api(api_client)
        self.auto = k8s.AutoscalingV2Api(api_client)
        self.n_nodes, self.n_pods = nodes, pods

    def pool(self, fn: Any, items: list[Any]) -> list[Any]:
        with ThreadPoolExecutor(THREADS) as pool:
            return list(pool.map(fn, items))

    def make_node(self, spec: tuple[str, str, int]) -> None:
        name, product, gpus = spec
        obj = node_obj(name, product, gpus)
        self.core.create_node(obj, _preload_content=False)
        self.core.patch_node(name, {"spec": {"taints": []}}, _preload_content=False)
        self.core.patch_node_status(name, {"status": obj["status"]}, _preload_content=False)

    def slots(self) -> list[tuple[str, str]]:
        """(node, product) of every pod, in order: 5 per H100 node, then 4 per L4 node."""
        half = self.n_nodes // 2
        out = [(f"h100-{i}", H100) for i in range(half) for _ in range(5)]
        out += [(f"l4-{i}", L4) for i in range(self.n_nodes - half) for _ in range(4)]
        return out[: self.n_pods]

    def build(self) -> None:
        t = time.perf_counter()
        half = self.n_nodes // 2
        specs = [(f"h100-{i}", H100, 8) for i in range(half)] + [
            (f"l4-{i}", L4, 4) for i in range(self.n_nodes - half)
        ]
        self.pool(self.make_node, specs)
        log(f"created {len(specs)} nodes in {time.perf_counter() - t:.0f}s")
        namespaces = [f"team-{i}" for i in range(20)]
        for ns in namespaces:
            self.core.create_namespace({"metadata": {"name": ns}}, _preload_content=False)
            self.cp.ensure_default_service_account(ns)
        slots = self.slots()
        deployments = [
            (namespaces[d % len(namespaces)], f"serve-{d}", slots[d * PODS_PER_DEPLOYMENT][1])
            for d in range(len(slots) // PODS_PER_DEPLOYMENT)
        ]
        t = time.perf_counter()
        owners = self.pool(self.make_deployment, deployments)
        log(f"created {len(deployments)} Deployments + ReplicaSets in {time.perf_counter() - t:.0f}s")
        t = time.perf_counter()
        pods = [
            (owners[i // PODS_PER_DEPLOYMENT], i, node, product)
            for i, (node, product) in enumerate(slots)
            if i // PODS_PER_DEPLOYMENT < len(owners)
        ]
        self.pool(self.make_pod, pods)
        log(f"created {len(pods)} bound pods in {time.perf_counter() - t:.0f}s")
        for i in range(20):
            ns = namespaces[i]
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"big-{i}", "namespace": ns},
                "spec": template(H100)["spec"],
            }
            pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "8"
            self.core.create_namespaced_pod(ns, pod, _preload_content=False)

    def make_deployment(self, spec: tuple[str, str, str]) -> tuple[str, str, str]:
        ns, name, product = spec
        deploy = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "replicas": PODS_PER_DEPLOYMENT,
                "selector": {"matchLabels": {"app": "serve"}},
                "template": template(product),
            },
        }
        d = json.loads(self.apps.create_namespaced_deployment(ns, deploy, _preload_content=False).data)
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{name}-rs",
                "namespace": ns,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": name,
                        "uid": d["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "replicas": PODS_PER_DEPLOYMENT,
                "selector": {"matchLabels": {"app": "serve"}},
                "template": template(product),
            },
        }
        r = json.loads(self.apps.create_namespaced_replica_set(ns, rs, _preload_content=False).data)
        if int(name.split("-")[1]) % 10 == 0:
            self.auto.create_namespaced_horizontal_pod_autoscaler(
                ns,
                {
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {
                        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                        "minReplicas": 1,
                        "maxReplicas": 20,
                    },
                },
                _preload_content=False,
            )
        return ns, f"{name}-rs", r["metadata"]["uid"]

    def make_pod(self, spec: tuple[tuple[str, str, str], int, str, str]) -> None:
        (ns, rs, uid), i, node, product = spec
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{rs}-{i}",
                "namespace": ns,
                "labels": {"app": "serve"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": rs,
                        "uid": uid,
                        "controller": True,
                    }
                ],
            },
            "spec": {**template(product)["spec"], "nodeName": node},
        }
        self.core.create_namespaced_pod(ns, pod, _preload_content=False)
        if i % 50 == 0:
            self.core.patch_namespaced_pod_status(
                f"{rs}-{i}", ns, {"status": OOM_STATUS}, _preload_content=False
            )


def run_scan(kubeconfig: Path) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "gpuplace", "scan", "--kubeconfig", str(kubeconfig), "-o", "json", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"scan failed: {proc.stderr[-2000:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    doc = json.loads(proc.stdout)
    counts: dict[str, int] = {}
    for f in [x for w in doc["workloads"] for x in w["findings"]] + doc["cluster_findings"]:
        counts[f["code"]] = counts.get(f["code"], 0) + 1
    # ru_maxrss of children is the largest child so far: the scan is the biggest child this bench runs.
    return {
        "wall_s": wall,
        "peak_rss_mb": max(peak_kib, before) / 1024,
        "workloads": len(doc["workloads"]),
        "nodes": doc["nodes"],
        "findings": counts,
        "waste_per_day": doc["cost"]["total_waste_per_day"],
    }


def split(kubeconfig: Path) -> tuple[float, float, int]:
    from placement.checks import CheckContext
    from scan.collect import KubeApi, collect
    from scan.cost import Prices
    from scan.scanner import scan

    t = time.perf_counter()
    inv = collect(KubeApi(str(kubeconfig), None).get)
    listed = time.perf_counter() - t
    ctx = CheckContext.default()
    t = time.perf_counter()
    scan(inv, ctx, Prices(ctx.gpus))
    return listed, time.perf_counter() - t, len(inv.of("Pod"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    from tests.harness import local_control_plane

    lines = [
        f"# gpuplace scan benchmark, {datetime.now():%Y-%m-%d %H:%M}",
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared), "
        f"Python {platform.python_version()}; local etcd + kube-apiserver (tests/harness)",
        f"fleet: {args.nodes} GPU nodes, {args.pods} bound GPU pods in "
        f"{args.pods // PODS_PER_DEPLOYMENT} Deployments (+ReplicaSets), 20 pending pods, "
        f"{args.pods // PODS_PER_DEPLOYMENT // 10} HPAs",
        "target: < 30 s, < 500 MB",
        "",
    ]
    with (
        tempfile.TemporaryDirectory(prefix="gpuplace-scan-bench-") as tmp,
        local_control_plane(Path(tmp)) as cp,
    ):
        Fleet(cp, args.nodes, args.pods).build()
        for i in range(args.runs):
            r = run_scan(cp.kubeconfig)
            lines.append(
                f"run {i + 1}: {r['wall_s']:.1f} s wall, peak RSS {r['peak_rss_mb']:.0f} MB; "
                f"{r['workloads']} workloads on {r['nodes']} GPU nodes; findings {r['findings']}; "
                f"waste ${r['waste_per_day']:,.0f}/day"
            )
            log(lines[-1])
        listed, judged, pods = split(cp.kubeconfig)
        lines.append(
            f"in-process split: listing {pods} pods and the rest over the API {listed:.1f} s, "
            f"discovery + checks + observed + cost {judged:.1f} s"
        )
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
