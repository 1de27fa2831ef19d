"""`gpuplace simulate`: replay GPU cluster traces against placement policies, side by side.

Input, one of:
  --trace-dir DIR        every `openb_pod_list_*.csv` in DIR against DIR's `openb_node_list_gpu_node.csv`
                         (default: $GPUPLACE_TRACE_DIR); `--traces a,b` keeps some of them
  --nodes CSV --pods CSV...   gpuplace's trace format (see `placement.trace`), one trace per pod file

Each (trace, policy, seed) is one replay of the FGD paper's protocol (`placement.simulate`). The report
gives unallocated GPU % at 100 % arrived demand, mean±sd over the seeds, beside the paper's published
figure where there is one; `--results-md` writes it as Markdown with the allocation curves, `--plot`
draws allocated GPU % against arrived demand % for one trace. `--nvlink` runs the NVLink variant: whole
multi-GPU pods must sit in one NVLink domain (layouts from the node CSV's nvlink columns, else the
openb defaults in `placement.trace.OPENB_NVLINK`).

`--cache FILE` appends every finished replay to FILE (JSON lines) and skips replays already there, so
a long run can be stopped and resumed. Exit codes: 0 ok, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

from gpuplace.cli import UsageError
from placement.policies import POLICY_NAMES
from placement.simulate import CURVE_POINTS, NvlinkStats, ReplayConfig, ReplaySummary, Summary, replay
from placement.topology import GpuNode, PodRequest
from placement.trace import (
    OPENB_NODE_FILE,
    OPENB_NVLINK,
    OPENB_PUBLISHED,
    TraceError,
    openb_traces,
    read_nodes,
    read_pods,
)

TRACE_DIR_ENV = "GPUPLACE_TRACE_DIR"
PLOT_POLICY_ORDER = POLICY_NAMES
BASELINE_TOLERANCE = 1.0  # points: how close a baseline must come to the paper's figure
CURVE_TABLE_POINTS = (50, 60, 70, 80, 90, 95, 100, 105, 110, 120, 130)

Job = tuple[str, str, int]  # trace, policy, seed
TraceFiles = dict[str, tuple[Path, Path]]  # trace -> (node list, pod list)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("simulate", help="replay a GPU cluster trace against placement policies",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trace-dir", type=Path, help=f"openb trace directory (default: ${TRACE_DIR_ENV})")
    p.add_argument("--traces", help="comma-separated trace names from --trace-dir (default: all)")
    p.add_argument("--nodes", type=Path, help="node-list CSV (gpuplace trace format)")
    p.add_argument("--pods", type=Path, nargs="+", help="pod-list CSV(s), one trace each")
    p.add_argument("--policies", default=",".join(POLICY_NAMES),
                   help=f"comma-separated, of: {', '.join(POLICY_NAMES)} (default: all)")
    p.add_argument("--seeds", type=int, default=10, help="replays per trace and policy (seeds 0..N-1)")
    p.add_argument("--inflate", type=float, default=1.3, help="workload size as a multiple of GPU capacity")
    p.add_argument("--nvlink", action="store_true", help="NVLink variant: multi-GPU pods need one domain")
    p.add_argument("--workers", type=int, default=1, help="replays run in parallel (processes)")
    p.add_argument("--cache", type=Path, help="JSON-lines file of finished replays (resume)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("--plot", type=Path, help="PNG: allocated vs arrived GPU %% per policy")
    p.add_argument("--plot-trace", help="trace for --plot (default: `default` if present, else the first)")
    p.add_argument("--results-md", type=Path, help="write the Markdown report here")
    p.add_argument("--progress", action="store_true", help="one line per finished replay on stderr")
    p.set_defaults(func=run)


# ---- inputs ---------------------------------------------------------------------------------------
def _trace_files(args: argparse.Namespace) -> TraceFiles:
    if args.pods:
        if not args.nodes:
            raise UsageError("--pods needs --nodes (the node list they run on)")
        return {p.stem: (args.nodes, p) for p in args.pods}
    directory = args.trace_dir or (Path(os.environ[TRACE_DIR_ENV]) if os.environ.get(TRACE_DIR_ENV) else None)
    if directory is None:
        raise UsageError(f"give --trace-dir DIR, set ${TRACE_DIR_ENV}, or give --nodes and --pods")
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory")
    found = openb_traces(directory)
    if not found:
        raise UsageError(f"{directory}: no openb_pod_list_*.csv files")
    if args.traces:
        wanted = [t.strip() for t in args.traces.split(",") if t.strip()]
        unknown = [t for t in wanted if t not in found]
        if unknown:
            raise UsageError(f"unknown trace(s) {', '.join(unknown)}; {directory} has {', '.join(found)}")
        found = {t: found[t] for t in wanted}
    nodes = args.nodes or directory / OPENB_NODE_FILE
    return {name: (nodes, pods) for name, pods in found.items()}


def _policies(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICY_NAMES]
    if unknown or not names:
        raise UsageError(f"unknown policy {', '.join(unknown) or '(none)'}; known: {', '.join(POLICY_NAMES)}")
    return names


# ---- running replays -------------------------------------------------------------------------------
_LOADED: dict[str, tuple[list[GpuNode], list[PodRequest]]] = {}
_SETTINGS: dict[str, Any] = {}


def _load(files: TraceFiles, inflate: float, nvlink: bool) -> None:
    """Read every trace once per process (pool initializer, and the single-process path)."""
    _SETTINGS.update(inflate=inflate, nvlink=nvlink)
    node_cache: dict[Path, list[GpuNode]] = {}
    for name, (nodes, pods) in files.items():
        if nodes not in node_cache:
            node_cache[nodes] = read_nodes(nodes, OPENB_NVLINK if nvlink else None)
        _LOADED[name] = (node_cache[nodes], read_pods(pods))


def _replay_one(job: Job) -> ReplaySummary:
    trace, policy, seed = job
    nodes, pods = _LOADED[trace]
    cfg = ReplayConfig(seed=seed, inflate_to=_SETTINGS["inflate"], nvlink=_SETTINGS["nvlink"])
    start = time.perf_counter()
    result = replay(nodes, pods, policy, cfg)
    return ReplaySummary.of(trace, result, time.perf_counter() - start, cfg.nvlink)


def _summary_from_json(data: Mapping[str, Any]) -> ReplaySummary:
    fields = dict(data)
    fields["curve"] = tuple(fields["curve"])
    if fields.get("nvlink") is not None:
        fields["nvlink"] = NvlinkStats(**fields["nvlink"])
    return ReplaySummary(**fields)


def _read_cache(path: Path | None, nvlink: bool) -> dict[Job, ReplaySummary]:
    if path is None or not path.exists():
        return {}
    done: dict[Job, ReplaySummary] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            s = _summary_from_json(json.loads(line))
        except (ValueError, TypeError, KeyError) as exc:
            raise UsageError(f"{path}:{line_no}: not a replay record ({exc})") from exc
        if (s.nvlink is not None) == nvlink:
            done[s.trace, s.policy, s.seed] = s
    return done


def _run(jobs: list[Job], files: TraceFiles, args: argparse.Namespace) -> Iterator[ReplaySummary]:
    workers = max(1, min(args.workers, len(jobs)))
    if workers == 1:
        _load(files, args.inflate, args.nvlink)
        yield from map(_replay_one, jobs)
        return
    with Pool(workers, initializer=_load, initargs=(files, args.inflate, args.nvlink)) as pool:
        yield from pool.imap_unordered(_replay_one, jobs)


def _collect(args: argparse.Namespace, files: TraceFiles, policies: list[str]) -> list[ReplaySummary]:
    jobs = [(t, p, s) for t in files for p in policies for s in range(args.seeds)]
    done = _read_cache(args.cache, args.nvlink)
    todo = [j for j in jobs if j not in done]
    cache = args.cache.open("a") if args.cache else None
    try:
        for i, summary in enumerate(_run(todo, files, args), 1):
            done[summary.trace, summary.policy, summary.seed] = summary
            if cache:
                cache.write(json.dumps(asdict(summary)) + "\n")
                cache.flush()
            if args.progress:
                print(f"[{i}/{len(todo)}] {summary.trace} {summary.policy} seed {summary.seed}: "
                      f"{summary.unallocated:.2f}% unallocated, {summary.seconds:.1f}s", file=sys.stderr)
    finally:
        if cache:
            cache.close()
    return [done[j] for j in jobs]


def run(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    files = _trace_files(args)
    policies = _policies(args.policies)
    try:
        summaries = _collect(args, files, policies)
    except TraceError as exc:
        raise UsageError(str(exc)) from exc
    report = Report(summaries, list(files), policies, args.nvlink)
    print(report.json() if args.output == "json" else report.text())
    if args.plot:
        report.plot(args.plot, args.plot_trace)
    if args.results_md:
        args.results_md.parent.mkdir(parents=True, exist_ok=True)
        args.results_md.write_text(report.markdown(_command_line()))
    return 0


def _command_line() -> str:
    """The command as a user would type it (whether run as `gpuplace` or `python -m gpuplace`)."""
    return " ".join(["gpuplace", *sys.argv[1:]])


# ---- the report ------------------------------------------------------------------------------------
def _fmt(s: Summary | None) -> str:
    return "n/a" if s is None else f"{s.mean:.2f}±{s.sd:.2f}"


def _paper(trace: str, policy: str) -> tuple[float, float] | None:
    return OPENB_PUBLISHED.get(trace, {}).get(policy)


class Report:
    """Aggregates replay summaries by (trace, policy) and renders them."""

    def __init__(self, summaries: Sequence[ReplaySummary], traces: list[str], policies: list[str],
                 nvlink: bool) -> None:
        self.summaries = list(summaries)
        self.traces, self.policies, self.nvlink = traces, policies, nvlink
        self.groups: dict[tuple[str, str], list[ReplaySummary]] = {}
        for s in summaries:
            self.groups.setdefault((s.trace, s.policy), []).append(s)

    def headline(self, trace: str, policy: str) -> Summary | None:
        group = self.groups.get((trace, policy))
        return Summary.of([s.unallocated for s in group]) if group else None

    def curve(self, trace: str, policy: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of allocated % at arrived 0..CURVE_POINTS %."""
        rows = np.array([s.curve for s in self.groups[trace, policy]], dtype=np.float64)
        sd = rows.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(rows.shape[1])
        return rows.mean(axis=0), sd

    def seconds(self, policy: str) -> float:
        times = [s.seconds for s in self.summaries if s.policy == policy]
        return float(np.mean(times)) if times else 0.0

    # -- text and JSON --
    def text(self) -> str:
        title = "NVLink variant: " if self.nvlink else ""
        lines = [f"{title}unallocated GPU % at 100% arrived demand, mean±sd over seeds [paper's figure]"]
        width = max(len(t) for t in self.traces) + 2
        lines.append("trace".ljust(width) + "".join(p.rjust(22) for p in self.policies))
        for t in self.traces:
            cells = []
            for p in self.policies:
                paper = _paper(t, p)
                cell = _fmt(self.headline(t, p)) + (f" [{paper[0]:.2f}]" if paper else "")
                cells.append(cell.rjust(22))
            lines.append(t.ljust(width) + "".join(cells))
        if self.nvlink:
            lines += ["", *self._nvlink_lines(plain=True)]
        return "\n".join(lines)

    def json(self) -> str:
        table = {t: {p: asdict(h) for p in self.policies if (h := self.headline(t, p))} for t in self.traces}
        return json.dumps({"unallocated_at_100": table, "published": OPENB_PUBLISHED,
                           "replays": [asdict(s) for s in self.summaries]}, indent=1)

    # -- NVLink --
    def _nvlink_row(self, trace: str, policy: str) -> list[str]:
        stats = [s.nvlink for s in self.groups.get((trace, policy), []) if s.nvlink]
        if not stats:
            return [trace, policy, "n/a", "n/a", "n/a", "n/a"]
        share = Summary.of([100 * n.in_domain_share for n in stats])
        refused = Summary.of([n.big_refused for n in stats])
        with_free = Summary.of([n.big_refused_with_free for n in stats])
        placed = Summary.of([n.multi_gpu_placed for n in stats])
        return [trace, policy, f"{share.mean:.1f}±{share.sd:.1f}", f"{placed.mean:.0f}",
                f"{with_free.mean:.1f}±{with_free.sd:.1f}", f"{refused.mean:.1f}±{refused.sd:.1f}"]

    def _nvlink_lines(self, plain: bool) -> list[str]:
        head = ["trace", "policy", "multi-GPU pods in one domain %", "multi-GPU pods placed",
                "8-GPU pods refused with >=8 GPUs free", "8-GPU pods refused (all)"]
        rows = [self._nvlink_row(t, p) for t in self.traces for p in self.policies]
        return _table(head, rows, plain)

    # -- Markdown --
    def markdown(self, command: str) -> str:
        out = [f"# gpuplace simulate: openb replay{' (NVLink variant)' if self.nvlink else ''}", ""]
        if command:
            out += [f"Produced by `{command}`.", ""]
        out += _PROTOCOL_MD
        if self.nvlink:
            out += [*_nvlink_layout_md(), "## NVLink results (mean±sd over seeds)", ""]
            out += [*self._nvlink_lines(plain=False), ""]
        out += ["## Unallocated GPU % at 100% arrived demand (lower is better)", "",
                "Mean±sd over seeds; the paper's published figure (for the plain replay) in brackets."]
        if self.nvlink:
            out += ["The baselines ignore NVLink, so their rows are the plain replay's; gpuplace's include "
                    "the domain constraint."]
        out += [""]
        out += [*self._headline_md(), ""]
        if not self.nvlink:
            out += self._checks_md()
        out += self._curve_md() + self._runtime_md()
        return "\n".join(out) + "\n"

    def _headline_md(self) -> list[str]:
        rows = []
        for t in self.traces:
            row = [t]
            for p in self.policies:
                paper = _paper(t, p)
                row.append(_fmt(self.headline(t, p)) + (f" [{paper[0]:.2f}±{paper[1]:.2f}]" if paper else ""))
            rows.append(row)
        return _table(["trace", *self.policies], rows, plain=False)

    def _checks_md(self) -> list[str]:
        out = ["## Checks", "", f"Baselines within {BASELINE_TOLERANCE:g} point of the paper, and gpuplace "
               "against the paper's FGD and two thirds of the paper's BestFit:", ""]
        rows = []
        for t in self.traces:
            published = OPENB_PUBLISHED.get(t)
            if not published:
                continue
            row = [t]
            for p in ("best-fit", "random", "fgd"):
                ours, paper = self.headline(t, p), published.get(p)
                if ours is None or paper is None:
                    row.append("n/a")
                    continue
                ok = abs(ours.mean - paper[0]) <= BASELINE_TOLERANCE
                row.append(f"{ours.mean - paper[0]:+.2f} {'ok' if ok else 'OFF'}")
            gp = self.headline(t, "gpuplace")
            fgd, bf = published["fgd"][0], published["best-fit"][0]
            row.append("n/a" if gp is None else f"{gp.mean:.2f} {'<' if gp.mean < fgd else '>='} {fgd:.2f}")
            row.append("n/a" if gp is None else f"{gp.mean:.2f} {'<=' if gp.mean <= bf * 2 / 3 else '>'} "
                       f"{bf * 2 / 3:.2f}")
            rows.append(row)
        head = ["trace", "best-fit vs paper", "random vs paper", "fgd vs paper", "gpuplace vs paper FGD",
                "gpuplace vs 2/3 paper BestFit"]
        return [*out, *_table(head, rows, plain=False), ""]

    def _curve_md(self) -> list[str]:
        out = ["## Allocated GPU % against arrived demand %", "",
               "Mean over seeds; columns are arrived GPU demand as % of capacity.", ""]
        for t in self.traces:
            rows = []
            for p in self.policies:
                if (t, p) in self.groups:
                    mean, _ = self.curve(t, p)
                    rows.append([p, *(f"{mean[x]:.2f}" for x in CURVE_TABLE_POINTS)])
            out += [f"### {t}", "", *_table(["policy", *map(str, CURVE_TABLE_POINTS)], rows, plain=False), ""]
        return out

    def _runtime_md(self) -> list[str]:
        n = len(self.summaries)
        total = sum(s.seconds for s in self.summaries)
        rows = [[p, f"{self.seconds(p):.1f}"] for p in self.policies]
        return ["## Runtime", "", f"{n} replays, {total / 60:.1f} CPU-minutes in all. Seconds per replay "
                "(one core):", "", *_table(["policy", "s/replay"], rows, plain=False), ""]

    # -- plot --
    def plot(self, path: Path, trace: str | None) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise UsageError("--plot needs matplotlib: pip install 'gpuplace[plot]'") from exc

        trace = trace or ("default" if "default" in self.traces else self.traces[0])
        if trace not in self.traces:
            raise UsageError(f"--plot-trace {trace}: not among the traces run ({', '.join(self.traces)})")
        x = np.arange(CURVE_POINTS + 1)
        fig, ax = plt.subplots(figsize=(8, 5.5))
        for p in self.policies:
            if (trace, p) not in self.groups:
                continue
            mean, sd = self.curve(trace, p)
            unalloc = self.headline(trace, p)
            label = f"{p} ({unalloc.mean:.2f}% unallocated at 100%)" if unalloc else p
            ax.plot(x, mean, label=label, linewidth=2.2 if p == "gpuplace" else 1.4)
            ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
        ax.plot(x, np.minimum(x, 100), color="grey", linestyle=":", linewidth=1, label="ideal")
        ax.axvline(100, color="grey", linewidth=0.6)
        seeds = max(len(g) for (t, _), g in self.groups.items() if t == trace)
        ax.set(xlabel="arrived GPU demand (% of cluster GPU capacity)",
               ylabel="allocated GPUs (% of capacity)",
               title=f"openb {trace}: allocation vs arrived demand ({seeds} seeds)",
               xlim=(60, CURVE_POINTS), ylim=(60, 100))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)


def _table(head: list[str], rows: Iterable[list[str]], plain: bool) -> list[str]:
    rows = list(rows)
    if plain:
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(r) + " |" for r in rows)]


def _nvlink_layout_md() -> list[str]:
    rows = [[m, layout.kind, str(layout.domain_size or "whole node")] for m, layout in OPENB_NVLINK.items()]
    return ["## NVLink layout assumed (the trace has none)", "",
            *_table(["GPU model", "layout", "GPUs per domain"], rows, plain=False), "",
            "V100 SXM2 8-GPU nodes are a hybrid cube-mesh, fully connected only within each quad, so two "
            "domains of 4; G2/G3 (undisclosed 8-GPU models) are taken as NVSwitch; T4, P100 (PCIe), A10 and "
            "single-GPU nodes have no NVLink, so a multi-GPU pod there is never inside one domain. Every "
            "whole multi-GPU pod is marked as needing one domain. gpuplace enforces it (filter, domain "
            "choice, domain-aware fragmentation); the baselines place as they always do and are measured.",
            ""]


_PROTOCOL_MD = [
    "Replay protocol (Weng et al., ATC'23, and their simulator): 1213 GPU nodes, pods shuffled per seed, "
    "the list resized to 1.3x the cluster's GPU capacity (resampling pods with replacement, or dropping "
    "random pods from larger traces), pods scheduled one at a time and never leaving, failed pods stay "
    "failed. Ties between equal scores go to a random but fixed order of nodes per seed, as in the "
    "paper's simulator (its kube-scheduler fork takes the smallest node name among equal scores and "
    "prefixes names with a random permutation); gpuplace breaks its own ties. Headline: unallocated GPU "
    "% = 100 - allocated % averaged over the pods whose arrived demand rounds to 100% of capacity.",
    "",
    "Policies: `least-allocated` (kube-scheduler's default spreading over CPU, memory and GPU), "
    "`most-allocated` (packing), `random`, `best-fit` and `fgd` as the paper's simulator scores them "
    "(FGD with its integer score), and `gpuplace` (`placement/policies/gpuplace.py`: FGD's gain plus "
    "CPU:GPU balance and GPU-model scarcity prices).",
    "",
]
