"""`sft COMMAND` imports only the module of that command; the table saying which module that is stays true."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

from sftpipe.cli import COMMAND_MODULE, COMMAND_MODULES, build_parser, main

WORKFLOW = Path(__file__).resolve().parents[3] / "workflow"


def _registered(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    importlib.import_module(module).register_cli(sub)
    return set(sub.choices)


def test_table_matches_what_each_module_registers():
    for module in COMMAND_MODULES:
        assert _registered(module) == {c for c, m in COMMAND_MODULE.items() if m == module}, module
    assert set(COMMAND_MODULE.values()) == set(COMMAND_MODULES)


def test_full_parser_still_lists_every_command():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMAND_MODULE)


def test_a_rule_command_does_not_import_other_commands_or_layers():
    # A fresh interpreter: what `sft record --help` loads, as every small rule job pays it.
    code = (
        "import sys; from sftpipe.cli import main\n"
        "try: main(['record', '--help'])\n"
        "except SystemExit: pass\n"
        "print(__import__('json').dumps(sorted(m for m in sys.modules if m.startswith('sftpipe'))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(WORKFLOW), "PATH": ""},
    )
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert "sftpipe.cli.pipeline" in loaded
    for other in (
        "sftpipe.cli.runs",
        "sftpipe.cli.report",
        "sftpipe.cli.dashboard",
        "sftpipe.cli.errors",
        "sftpipe.training.train",
        "sftpipe.data.conversion.convert",
        "sftpipe.report.publish",
    ):
        assert other not in loaded, other


def test_user_errors_are_still_one_line_with_their_exit_code(tmp_path, capsys):
    # The error table is imported only on the error path; a missing config is still exit 2, no traceback.
    code = main(["validate", "--root", str(tmp_path), "--config", "nope.yaml"])
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_unknown_command_gets_the_full_usage(capsys):
    try:
        main(["no-such-command"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "invalid choice" in capsys.readouterr().err
