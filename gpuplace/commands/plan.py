"""`gpuplace plan defrag|batch`: the CP-SAT planners on a cluster snapshot or a live cluster.

The snapshot is `kubectl get nodes,pods,pdb -A -o json` output (JSON or YAML, a List or several
documents); without `--snapshot` the same objects are read through the official client (kubeconfig, or the
in-cluster service account). `--apply` is the only thing here that changes a cluster: it evicts the plan's
pods through the Eviction API (policy/v1), in plan order, and stops at the first refusal.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from common.kube import configure
from gpuplace.cli import EXIT_FINDINGS, EXIT_OK, UsageError
from placement.catalog import default_gpu_catalog
from placement.planner.batch import BatchOptions, BatchResult, plan_batch
from placement.planner.defrag import DefragOptions, DefragResult, fragmentation_finding, plan_defrag
from placement.planner.snapshot import (
    Snapshot,
    SnapshotError,
    iter_objects,
    parse_quantity,
    pod_request_from_k8s,
    snapshot_from_objects,
)
from placement.planner.solver import DEFAULT_TIME_LIMIT_S, SolveOptions
from placement.topology import MILLI, Cluster, PodRequest
from placement.trace import TraceError, read_pods

HELP = """Plan GPU placements with ortools CP-SAT, on a snapshot file or the live cluster.

  defrag  the fewest weighted pod moves that open k GPUs in one NVLink domain for a pending pod
          (only movable pods move, PodDisruptionBudgets hold, every moved pod lands somewhere)
  batch   where a set of pending pods should go: most GPU demand placed, then most whole free blocks

examples:
  kubectl get nodes,pods,pdb -A -o json > cluster.json
  gpuplace plan defrag --snapshot cluster.json --pod ml/llama-405b-0
  gpuplace plan defrag --gpus 8 --time-limit 30            # live cluster via kubeconfig
  gpuplace plan defrag --pod ml/llama-405b-0 --apply       # evict in plan order (live cluster only)
  gpuplace plan batch --snapshot cluster.json --pending jobs.yaml -o json

Every solve has a time limit and says whether its answer is proven optimal or the best found.
Exit codes: 0 a plan (or nothing to do), 1 no plan exists or none was found in time, 2 bad input.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help="defragmentation and batch placement plans (ortools)",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="plan_command", metavar="PLAN", required=True)
    d = sub.add_parser("defrag", help="moves that open k GPUs in one NVLink domain",
                       description="The cheapest ordered pod moves that let a pending pod start.")
    _source_args(d)
    what = d.add_mutually_exclusive_group(required=True)
    what.add_argument("--pod", metavar="NS/NAME", help="a pending pod of the snapshot")
    what.add_argument("--gpus", type=int, metavar="K", help="a hypothetical pod of K GPUs")
    d.add_argument("--gpu-model", action="append", default=[], metavar="MODEL",
                   help="with --gpus: an allowed GPU (catalog spelling, e.g. H100); repeatable")
    d.add_argument("--cpu", default="0", help="with --gpus: the pod's CPU request (e.g. 16 or 500m)")
    d.add_argument("--memory", default="0", help="with --gpus: the pod's memory request (e.g. 256Gi)")
    d.add_argument("--no-nvlink", action="store_true",
                   help="with --gpus: k GPUs on one node suffice (default: one NVLink domain)")
    d.add_argument("--max-blocks", type=int, default=DefragOptions.max_blocks,
                   help="small clusters: candidate blocks in the one joint model (cheapest first)")
    d.add_argument("--apply", action="store_true",
                   help="evict the plan's pods through the Eviction API, in order (live cluster only)")
    d.set_defaults(func=run)
    b = sub.add_parser("batch", help="place a set of pending pods (offline optimum)",
                       description="Place pending pods all at once: most GPU demand, then whole free blocks.")
    _source_args(b)
    b.add_argument("--pending", metavar="FILE", help="pods to place: Pod YAML/JSON, or a gpuplace trace "
                   "CSV (default: the snapshot's pending GPU pods)")
    b.add_argument("--max-nodes", type=int, default=BatchOptions.max_nodes, help="candidate nodes per pod")
    b.set_defaults(func=run)


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot", metavar="FILE", help="kubectl get nodes,pods,pdb -A -o json output ('-': "
                   "stdin); default: the live cluster")
    p.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig for the live cluster (default: "
                   "in-cluster, then ~/.kube/config)")
    p.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S, metavar="S",
                   help=f"CP-SAT time limit in seconds (default {DEFAULT_TIME_LIMIT_S:g})")
    p.add_argument("--workers", type=int, default=SolveOptions.workers, help="CP-SAT worker threads")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    if args.time_limit <= 0:
        raise UsageError(f"--time-limit must be positive, got {args.time_limit:g}")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if getattr(args, "apply", False) and args.snapshot:
        raise UsageError("--apply evicts from the live cluster the plan was made from; drop --snapshot")
    solve = SolveOptions(args.time_limit, args.workers)
    snapshot = _load_snapshot(args)
    if args.plan_command == "defrag":
        return _defrag(args, snapshot, solve)
    return _batch(args, snapshot, solve)


# ---- input ------------------------------------------------------------------------------------------------
def parse_documents(text: str, origin: str) -> list[Any]:
    """JSON (kubectl -o json) or YAML, one or several documents."""
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            doc = json.loads(text)
            return doc if isinstance(doc, list) else [doc]
        return list(yaml.safe_load_all(text))
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"{origin}: not JSON or YAML: {str(exc).splitlines()[0]}") from None


def _read(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _load_snapshot(args: argparse.Namespace) -> Snapshot:
    if args.snapshot:
        docs, origin = parse_documents(_read(args.snapshot), args.snapshot), args.snapshot
    else:
        docs, origin = live_objects(args.kubeconfig), "live cluster"
    try:
        snapshot = snapshot_from_objects(docs)
    except SnapshotError as exc:
        raise UsageError(f"{origin}: {exc}") from None
    if not snapshot.nodes:
        raise UsageError(f"{origin}: no Node with allocatable nvidia.com/gpu")
    return snapshot


def _kube_client(kubeconfig: str | None) -> Any:
    """The kubernetes.client module, configured from the kubeconfig or the in-cluster service account."""
    from kubernetes import client, config

    try:
        configure(kubeconfig)
    except (config.ConfigException, OSError) as exc:
        raise UsageError(f"cannot reach a cluster: {exc} (give --snapshot FILE or --kubeconfig PATH)") \
            from None
    return client


def live_objects(kubeconfig: str | None) -> list[dict[str, Any]]:
    """Nodes, pods and PodDisruptionBudgets of the live cluster, as the JSON kubectl would print."""
    client = _kube_client(kubeconfig)
    api = client.ApiClient()
    core, policy = client.CoreV1Api(api), client.PolicyV1Api(api)
    out: list[dict[str, Any]] = []
    try:
        for kind, listed in (("Node", core.list_node(_request_timeout=30)),
                             ("Pod", core.list_pod_for_all_namespaces(_request_timeout=30)),
                             ("PodDisruptionBudget",
                              policy.list_pod_disruption_budget_for_all_namespaces(_request_timeout=30))):
            for item in api.sanitize_for_serialization(listed).get("items") or []:
                out.append({**item, "kind": kind})
    except client.ApiException as exc:
        raise UsageError(f"live cluster: listing failed: {exc.status} {exc.reason}") from None
    return out


def _pending_pods(args: argparse.Namespace, snapshot: Snapshot) -> list[PodRequest]:
    if not args.pending:
        return [PodRequest(p.key, p.request.cpu_milli, p.request.memory_mib, p.request.num_gpu,
                           p.request.gpu_milli, p.request.gpu_models, p.request.nvlink_required)
                for p in snapshot.pending() if p.request.num_gpu]
    if args.pending.endswith(".csv"):
        try:
            return read_pods(args.pending)
        except TraceError as exc:
            raise UsageError(str(exc)) from None
    catalog = default_gpu_catalog()
    pods = []
    for obj in iter_objects(parse_documents(_read(args.pending), args.pending)):
        if obj.get("kind", "Pod") != "Pod":
            continue
        meta = obj.get("metadata") or {}
        try:
            req = pod_request_from_k8s(obj, catalog)
        except SnapshotError as exc:
            raise UsageError(f"{args.pending}: {exc}") from None
        key = f"{meta.get('namespace', 'default')}/{req.name}"
        pods.append(dataclasses.replace(req, name=key))
    if not pods:
        raise UsageError(f"{args.pending}: no Pod in the file")
    return pods


def _defrag_target(args: argparse.Namespace, snapshot: Snapshot) -> PodRequest:
    if args.pod:
        pod = snapshot.find(args.pod if "/" in args.pod else f"default/{args.pod}")
        if pod is None:
            raise UsageError(f"--pod {args.pod}: no such pod in the snapshot (use NAMESPACE/NAME)")
        if pod.node is not None:
            raise UsageError(f"--pod {args.pod}: already runs on {pod.node}")
        if not pod.request.num_gpu:
            raise UsageError(f"--pod {args.pod}: requests no nvidia.com/gpu")
        return dataclasses.replace(pod.request, name=pod.key)
    if args.gpus < 1:
        raise UsageError(f"--gpus must be at least 1, got {args.gpus}")
    catalog = default_gpu_catalog()
    models = set()
    for m in args.gpu_model:
        spec = catalog.resolve(m)
        models.add(spec.id if spec else m)
    try:
        cpu = int(parse_quantity(args.cpu, "--cpu") * 1000)
        mem = int(parse_quantity(args.memory, "--memory") / (1 << 20))
    except SnapshotError as exc:
        raise UsageError(str(exc)) from None
    return PodRequest(f"{args.gpus}-gpu-pod", cpu, mem, args.gpus, MILLI, frozenset(models),
                      not args.no_nvlink and args.gpus > 1)


# ---- defrag -----------------------------------------------------------------------------------------------
def _defrag(args: argparse.Namespace, snapshot: Snapshot, solve: SolveOptions) -> int:
    target = _defrag_target(args, snapshot)
    options = DefragOptions(solve=solve, max_blocks=max(1, args.max_blocks))
    result = plan_defrag(snapshot, target, options)
    ns, _, name = target.name.rpartition("/")
    finding = fragmentation_finding(snapshot, dataclasses.replace(target, name=name), result, ns or None)
    if args.output == "json":
        doc = {"pod": target.name, "found": result.found, **dataclasses.asdict(result),
               "findings": [finding.as_dict()] if finding else []}
        print(json.dumps(doc, indent=2))
    else:
        if finding:
            print(finding.message)
        print(render_defrag(result, target.name))
    if not result.found:
        return EXIT_FINDINGS
    if args.apply and result.moves:
        return apply_plan(result, _kube_client(args.kubeconfig).CoreV1Api())
    return EXIT_OK


def render_defrag(result: DefragResult, pod: str) -> str:
    if not result.found:
        return f"no plan for {pod}: {result.message}"
    if result.proven_optimal:
        proof = "proven optimal"
    else:
        within = "optimal within the scope" if result.status == "optimal" else "best found"
        proof = f"{within}; no plan costs less than {result.lower_bound}"
    lines = [f"plan for {pod}: {result.message}",
             f"status: {result.status} ({proof}); {result.solve_s:.2f} s; {result.scope}; "
             f"{result.blocks_considered} of {result.blocks_total} blocks considered"]
    step = 0
    for step, m in enumerate(result.moves, 1):
        lines.append(f"  {step}. evict {m.pod} from {m.from_node} GPU {_gpus(m.from_gpus)} "
                     f"(weight {m.weight}) -> expected on {m.to_node} GPU {_gpus(m.to_gpus)}")
    lines.append(f"  {step + 1}. {pod} -> {result.node} GPU {_gpus(result.gpus)}")
    return "\n".join(lines)


def _gpus(gpus: Sequence[int]) -> str:
    return ",".join(map(str, gpus)) or "-"


def apply_plan(result: DefragResult, core: Any) -> int:
    """Evict the plan's pods in order through policy/v1 Eviction; stop at the first refusal (a
    PodDisruptionBudget answers 429), since later moves assumed the earlier ones."""
    from kubernetes import client

    for i, m in enumerate(result.moves, 1):
        ns, name = m.pod.split("/", 1)
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=ns))
        try:
            core.create_namespaced_pod_eviction(name, ns, body, _request_timeout=30)
        except client.ApiException as exc:
            print(f"eviction {i}/{len(result.moves)} of {m.pod} refused: {exc.status} {exc.reason}; "
                  "stopped, the rest of the plan was not applied", file=sys.stderr)
            return EXIT_FINDINGS
        print(f"evicted {m.pod} ({i}/{len(result.moves)})")
    return EXIT_OK


# ---- batch ------------------------------------------------------------------------------------------------
def _batch(args: argparse.Namespace, snapshot: Snapshot, solve: SolveOptions) -> int:
    pods = _pending_pods(args, snapshot)
    if not pods:
        raise UsageError("no pending GPU pod to place (give --pending FILE)")
    nodes = snapshot.gpu_nodes()
    if not nodes:
        raise UsageError("every GPU node is cordoned")
    result = plan_batch(Cluster(nodes), pods, BatchOptions(solve=solve, max_nodes=max(1, args.max_nodes)))
    if args.output == "json":
        print(json.dumps(dataclasses.asdict(result), indent=2))
    else:
        print(render_batch(result))
    return EXIT_OK


def render_batch(result: BatchResult) -> str:
    def gpus(milli: int) -> str:
        return f"{milli / MILLI:g}"

    bound = gpus(result.placed_bound_milli)
    if result.proven_optimal:
        proof = "proven optimal"
    else:
        within = "optimal within the scope" if result.status == "optimal" else "best found"
        proof = f"{within}; within the scope no placement places more than {bound} GPUs"
    lines = [f"placed {gpus(result.placed_milli)} of {gpus(result.demand_milli)} GPUs demanded "
             f"({len(result.placements)} pods; greedy best fit: {gpus(result.greedy_placed_milli)}); "
             f"whole free-block GPUs after: {result.free_block_gpus}",
             f"status: {result.status} ({proof}); {result.solve_s:.2f} s; {result.scope}"]
    lines += [f"  {p.pod} -> {p.node} GPU {_gpus(p.gpus)}" for p in result.placements]
    if result.unplaced:
        lines.append("unplaced: " + ", ".join(result.unplaced))
    return "\n".join(lines)
