"""`gpuplace check PATH...`: every deploy-time check on manifest files, like a linter."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from common.config import ConfigError, load_config
from gpuplace.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, UsageError
from gpuplace.manifests import ManifestError, load_paths
from placement.checks import check_objects
from placement.coverage import counts as coverage_counts
from placement.coverage import summary as coverage_summary
from placement.findings import Severity, worst

HELP = """Run gpuplace's deploy-time checks on Kubernetes manifests (what the admission webhook would say).

exit codes: 0 no error findings, 1 at least one error finding (the webhook would deny), 2 unusable input.
The last line says how many GPU workloads were judged fully, without a model, and not at all (why);
-o json prints {"findings": [...], "coverage": {...}} with the same counts.
examples:
  gpuplace check examples/
  kustomize build overlays/prod | gpuplace check - -o json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check",
        help="check manifests offline",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="YAML/JSON file, directory, or - for stdin")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("-c", "--config", help="gpuplace config file (default: $GPUPLACE_CONFIG)")
    p.add_argument(
        "--min-severity",
        choices=[s.value for s in Severity],
        default="info",
        help="hide findings below this severity (default: info, show all)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        ctx = load_config(args.config).check_context()
        docs = load_paths(args.paths)
    except (ConfigError, ManifestError) as exc:
        raise UsageError(str(exc)) from exc
    result = check_objects([d.obj for d in docs], ctx)
    floor = Severity(args.min_severity).rank
    shown = [(docs[i], f) for i, f in result.findings if f.effective_severity.rank >= floor]
    for i, error in result.errors:
        print(
            f"gpuplace check: {docs[i].where}: cannot read {docs[i].obj.get('kind')}: {error}",
            file=sys.stderr,
        )
    judged = coverage_counts(c for _, c in result.coverage)
    if args.output == "json":
        findings = [{"source": d.source, "document": d.index, **f.as_dict()} for d, f in shown]
        json.dump({"findings": findings, "coverage": judged}, sys.stdout, indent=2)
        print()
    else:
        for doc, f in shown:
            print(f"{doc.source}:{doc.index}: {f.effective_severity.value}: {f.message}")
        counts = Counter(f.effective_severity.value for _, f in shown)
        print(
            f"{len(docs)} objects, {counts['error']} errors, {counts['warning']} warnings, "
            f"{counts['info']} info",
            file=sys.stderr,
        )
        print(coverage_summary(judged), file=sys.stderr)
    if result.errors:
        return EXIT_USAGE
    return EXIT_FINDINGS if worst([f for _, f in result.findings]) == Severity.ERROR else EXIT_OK
