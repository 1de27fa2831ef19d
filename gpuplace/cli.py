"""The `gpuplace` command line: one entry point, one module per subcommand under `gpuplace.commands`.

Each command module exposes `register(subparsers)` that adds its parser and sets `func=run`, where
`run(args) -> int` returns the process exit code. Exit codes are shared across commands:
0 ok, 1 findings at error severity (what the webhook would deny), 2 unusable input or usage error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Listed here (not discovered) so `gpuplace --help` is stable and a broken optional module names itself.
COMMANDS = ("check", "explain", "webhook", "extender", "certs", "simulate", "plan", "scan")

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input the user can fix; printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpuplace",
        description="Catch GPU placement mistakes in Kubernetes before they cost money or uptime.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"gpuplace.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"gpuplace.commands.{name}":
                raise
            continue  # command not built yet in this checkout
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"gpuplace {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
