"""The `sft` command: one subcommand per pipeline job; `--json` where it reports.

Each module that offers a command defines `register_cli(subparsers)`; the list below is the
single place commands are wired in.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Modules providing `register_cli(subparsers)`, in help order.
COMMAND_MODULES = [
    "sftpipe.cli.pipeline",
    "sftpipe.training.dryrun",
    "sftpipe.cli.inspect",
    "sftpipe.data.tiny_model",
    "sftpipe.data.conversion.cli",
    "sftpipe.runs.metrics",
    "sftpipe.report.plotting",
    "sftpipe.runs.index",
    "sftpipe.runs.status",
    "sftpipe.training.stop",
    "sftpipe.runs.best",
    "sftpipe.report.compare",
    "sftpipe.report.publish",
    "sftpipe.runs.variants",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sft", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
