"""`gpuplace scan`: the running fleet, its waste in dollars, and the findings only a live cluster shows."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from common.config import ConfigError, load_config
from gpuplace.cli import EXIT_FINDINGS, EXIT_OK, UsageError
from placement.autoscaling import duration_s
from placement.findings import Severity
from placement.workload import WorkloadError
from scan.collect import ClusterUnreachable, KubeApi, collect
from scan.cost import PriceError, load_prices
from scan.render import as_json, as_table
from scan.report import policy_reports
from scan.scanner import ScanOptions, scan
from scan.writer import write_reports

HELP = """Scan the GPU workloads already running: every deploy-time check on the live objects, plus what only
a running cluster shows (OOM kills, scale events, dark GPU nodes, pending GPU pods, and with --prometheus
idle GPUs and low throughput), priced per day and per year.

Read-only (get/list; no secrets, no exec) unless --report, which creates or replaces one PolicyReport per
namespace and one ClusterPolicyReport (wgpolicyk8s.io/v1alpha2), named gpuplace-scan.

exit codes: 0 scanned (findings or not; see --fail-on), 1 a finding at or above --fail-on, 2 unusable input
or no cluster.
examples:
  gpuplace scan
  gpuplace scan --context prod -n ml -o json
  gpuplace scan --prometheus http://prometheus.monitoring:9090 --prices prices.yaml --report
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("scan", help="scan the live cluster's GPU workloads (read-only)",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", metavar="PATH",
                   help="kubeconfig (default: in-cluster, then ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument("-n", "--namespace", help="scan one namespace (nodes are always cluster-wide)")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.add_argument("--report", action="store_true",
                   help="write PolicyReports / a ClusterPolicyReport (needs create/update on them)")
    p.add_argument("--prometheus", metavar="URL", help="Prometheus with DCGM exporter and engine metrics")
    p.add_argument("--prices", metavar="FILE", help="YAML map of GPU to USD per GPU-hour (default: catalog)")
    p.add_argument("--window", default="1h", help="how far back events and metrics count (default 1h)")
    p.add_argument("-c", "--config", help="gpuplace config file (default: $GPUPLACE_CONFIG)")
    p.add_argument("--fail-on", choices=("error", "warning", "never"), default="never",
                   help="exit 1 when a finding has at least this severity (default: never)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


class Progress:
    """One line on stderr per step once a scan runs longer than a second (a terminal gets one line
    rewritten in place)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.start, self.tty = quiet, time.monotonic(), sys.stderr.isatty()

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.start
        if self.quiet or elapsed < 1.0:
            return
        line = f"gpuplace scan: {elapsed:5.1f}s {message}"
        print(f"\r\033[K{line}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr,
              flush=True)

    def done(self) -> None:
        if self.tty and not self.quiet and time.monotonic() - self.start >= 1.0:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        window_s = duration_s(args.window, "--window")
        ctx = load_config(args.config).check_context()
        prices = load_prices(args.prices, ctx.gpus)
    except (WorkloadError, ConfigError, PriceError) as exc:
        raise UsageError(str(exc)) from None
    if window_s <= 0:
        raise UsageError(f"--window must be positive, got {args.window}")
    progress = Progress(args.quiet)
    try:
        api = KubeApi(args.kubeconfig, args.context)
        inv = collect(api.get, args.namespace, progress)
    except ClusterUnreachable as exc:
        raise UsageError(f"cannot reach a cluster: {exc}") from None
    metrics = None
    if args.prometheus:
        from scan.metrics import PrometheusMetrics

        metrics = PrometheusMetrics(args.prometheus, window_s, inv.now, progress=progress)
    result = scan(inv, ctx, prices, ScanOptions(window_s=window_s), metrics, progress)
    written: list[str] = []
    if args.report:
        progress("writing PolicyReports")
        try:
            written, problems = write_reports(api, policy_reports(result, inv.now))
        except ClusterUnreachable as exc:
            raise UsageError(f"cannot write reports: {exc}") from None
        result.gaps.extend(problems)
    progress.done()
    if args.output == "json":
        doc: dict[str, Any] = as_json(result, inv.now)
        if args.report:
            doc["reports_written"] = written
        json.dump(doc, sys.stdout, indent=2)
        print()
    else:
        print(as_table(result, inv.now))
        if args.report:
            print(f"\nwrote {len(written)} reports: {', '.join(written) or 'none'}")
    return _exit(result.all_findings(), args.fail_on)


def _exit(findings: list[Any], fail_on: str) -> int:
    if fail_on == "never":
        return EXIT_OK
    floor = Severity(fail_on).rank
    return EXIT_FINDINGS if any(f.effective_severity.rank >= floor for f in findings) else EXIT_OK
