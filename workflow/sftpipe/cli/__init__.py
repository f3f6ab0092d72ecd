"""The `sft` command: argparse and printing only; one module per command family, shared flags in `common`.

Each module below defines `register_cli(subparsers)`; this list is the single place commands are wired in.
Errors the domain raises for a user to read (an invalid config, a run not found, a refused stop...) are
printed once, by `common.report_error`, with the documented exit code (0 ok, 1 failure, 2 usage/config).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sftpipe.cli.common import exit_code_for, report_error
from sftpipe.cli.errors import USER_ERRORS

# Modules providing `register_cli(subparsers)`, in help order.
COMMAND_MODULES = [
    "sftpipe.cli.pipeline",
    "sftpipe.cli.tools",
    "sftpipe.cli.memory",
    "sftpipe.cli.inspect",
    "sftpipe.cli.convert",
    "sftpipe.cli.runs",
    "sftpipe.cli.report",
    "sftpipe.cli.dashboard",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sft", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        report_error(exc, bool(getattr(args, "json", False)))
        return exit_code_for(exc)


if __name__ == "__main__":
    sys.exit(main())
