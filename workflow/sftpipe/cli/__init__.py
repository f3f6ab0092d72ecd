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

# Which module registers each command. `sft COMMAND` imports only that module, not every layer: each
# Snakemake rule job is one `sft` process, and importing all commands cost ~1 s per job (more without
# compiled bytecode). tests/unit/cli/test_lazy_commands.py checks this table against what the modules register.
COMMAND_MODULE = {
    **dict.fromkeys(
        ["validate", "render", "register", "convert-config", "tokenize", "train", "writeback", "record"],
        "sftpipe.cli.pipeline",
    ),
    **dict.fromkeys(["dryrun", "build-tiny-model"], "sftpipe.cli.tools"),
    "memory": "sftpipe.cli.memory",
    "inspect": "sftpipe.cli.inspect",
    "convert": "sftpipe.cli.convert",
    **dict.fromkeys(["status", "runs", "history", "checkpoints", "variants", "stop"], "sftpipe.cli.runs"),
    **dict.fromkeys(["metrics", "plot", "compare", "publish"], "sftpipe.cli.report"),
    "dashboard": "sftpipe.cli.dashboard",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for every command, or (`command` given and known) only for its module's commands."""
    parser = argparse.ArgumentParser(prog="sft", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [COMMAND_MODULE[command]] if command in COMMAND_MODULE else COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # argv[0] is the command unless it is a top-level flag (-h): then the full parser prints the full help.
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        # Imported on the error path only: USER_ERRORS gathers exception classes from every layer.
        from sftpipe.cli.errors import USER_ERRORS

        if not isinstance(exc, USER_ERRORS):
            raise
        report_error(exc, bool(getattr(args, "json", False)))
        return exit_code_for(exc)


def run() -> None:
    """The `sft` console script: `main`, then exit without interpreter teardown (sftpipe.util.process_exit).

    A job that imported torch/transformers (convert, tokenize, dryrun) otherwise spends ~1.7 s after its
    work freeing modules. An exception or argparse's SystemExit takes the normal exit path.
    """
    from sftpipe.util.process_exit import exit_now

    exit_now(main())


if __name__ == "__main__":
    run()
