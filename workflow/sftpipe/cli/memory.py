"""`sft memory`: the per-GPU memory plan of the configured run (config.json only, no weights).

Exit codes: 0 the plan fits infrastructure.gpu_memory_gb, 1 it does not, 2 config or model-config error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sftpipe.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, add_config_args, add_json, load_from_args
from sftpipe.config import ConfigError
from sftpipe.lf.memory import MemoryPlanError, format_plan, memory_plan


def cmd_memory(args: argparse.Namespace) -> int:
    """Print the per-GPU memory plan; exit 1 when it does not fit, 2 when the config or the model's
    config.json cannot be used."""
    try:
        plan = memory_plan(load_from_args(args), args.model_config)
    except (ConfigError, MemoryPlanError, OSError) as exc:
        problems = getattr(exc, "problems", [str(exc)])
        if args.json:
            print(json.dumps({"ok": False, "problems": problems}, indent=2))
        else:
            print("error: " + "\n  ".join(problems), file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(plan, indent=2) if args.json else format_plan(plan))
    return EXIT_OK if plan["fits"] else EXIT_FAILURE


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add `sft memory`."""
    p = sub.add_parser("memory", help="per-GPU memory plan of the run (reads only the model's config.json)")
    add_config_args(p)
    p.add_argument(
        "--model-config",
        type=Path,
        default=None,
        help="directory (or file) holding the model's config.json, instead of model_name_or_path",
    )
    add_json(p)
    p.set_defaults(func=cmd_memory)
