"""What every command shares: the common flags (defined once), one error printer, and the exit codes.

Exit codes (every command): 0 ok; 1 failure (the run failed, a check did not pass, a run or file was not
found); 2 usage or config error (bad flags, invalid config.yaml or variant). argparse itself exits 2 on bad flags.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sftpipe.paths import DEFAULT_CONFIG

if TYPE_CHECKING:
    from sftpipe.config import RunConfig

# sftpipe.config (YAML + JSON-schema libraries) is imported where it is used: `sft metrics` and `sft plot`,
# two rule jobs, never load a config and should not pay for it at start-up.

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CommandError(RuntimeError):
    """A command cannot do what it was asked; the message says why (exit 1)."""


class UsageError(CommandError):
    """The command was called wrongly (a flag or path that cannot be right); exit 2."""


def add_root(p: argparse.ArgumentParser) -> None:
    """--root: the project root the command works in (default: the current directory)."""
    p.add_argument("--root", type=Path, default=Path("."), help="project root (default: current directory)")


def add_json(p: argparse.ArgumentParser) -> None:
    """--json: print the result (and errors) as JSON on stdout."""
    p.add_argument("--json", action="store_true", help="print JSON on stdout (errors too)")


def add_config_args(p: argparse.ArgumentParser) -> None:
    """--config, --variant and --root: which run profile a command works on."""
    p.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help=f"run profile (default {DEFAULT_CONFIG})"
    )
    p.add_argument("--variant", default=None, help="config/variants/<name>.yaml overrides to apply")
    add_root(p)


def add_run_arg(p: argparse.ArgumentParser, required: bool = False) -> None:
    """The positional run reference; optional (the newest run) unless `required`."""
    help_text = "run id (run_003), run name, or run directory" + (
        "" if required else " (default: the newest)"
    )
    p.add_argument("run", nargs=None if required else "?", help=help_text)


def load_from_args(args: argparse.Namespace) -> RunConfig:
    """The resolved config named by --config/--variant/--root."""
    from sftpipe.config import load

    return load(args.config, root=args.root, variant=args.variant)


def print_json(obj: Any) -> None:
    """Print `obj` as indented JSON; values JSON cannot encode are printed as str()."""
    print(json.dumps(obj, indent=2, default=str))


def report_error(exc: BaseException, as_json: bool) -> None:
    """The one error printer: `error: ...` on stderr, or {"ok": false, "error", "problems"} on stdout."""
    from sftpipe.config import ConfigError

    problems = list(getattr(exc, "problems", None) or [str(exc)])
    if as_json:
        print_json({"ok": False, "error": str(exc), "problems": problems})
    elif isinstance(exc, ConfigError):
        print("error: invalid config:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)


def exit_code_for(exc: BaseException) -> int:
    """2 (usage) for config and usage errors, 1 for every other failure."""
    from sftpipe.config import ConfigError

    return EXIT_USAGE if isinstance(exc, (ConfigError, UsageError)) else EXIT_FAILURE


def fmt_value(value: Any, digits: int = 4) -> str:
    """A table cell: floats to `digits` places, None as '-'."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
