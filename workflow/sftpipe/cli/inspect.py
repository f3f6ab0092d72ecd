"""`sft inspect DATA_NAME`: the dataset checks of the token view (exit 0 all ok, 1 a violated check, 2 usage)."""

from __future__ import annotations

import argparse
import json
import sys

from sftpipe.config import ConfigError, RunConfig
from sftpipe.paths import VARIANTS_DIR


def config_for_data(args: argparse.Namespace) -> RunConfig:
    """The config (or, without --variant, the first variant) whose conversion.data_name is DATA_NAME."""
    from sftpipe.cli.pipeline import load_from_args
    from sftpipe.config import load

    cfg = load_from_args(args)
    if cfg.data_name == args.data_name:
        return cfg
    seen = [cfg.data_name]
    if args.variant is None:
        for path in sorted((args.root / VARIANTS_DIR).glob("*.yaml")):
            if path.name.endswith(".output.yaml"):
                continue
            try:
                other = load(args.config, root=args.root, variant=path.stem)
            except ConfigError:
                continue  # a broken variant is `sft validate`'s finding, not this command's
            if other.data_name == args.data_name:
                return other
            seen.append(other.data_name)
    known = ", ".join(sorted(set(seen)))
    raise ConfigError(
        [
            f"data name {args.data_name!r} is not configured by {args.config} or its variants"
            + f" (known: {known})"
        ]
    )


def cmd_inspect(args: argparse.Namespace) -> int:
    from sftpipe.data.inspect import InspectError, format_report, inspect_dataset
    from sftpipe.data.token_view import RenderError
    from sftpipe.util.fs import stdout_to_stderr

    try:
        cfg = config_for_data(args)
        with stdout_to_stderr():  # LF prints while loading the tokenizer; stdout is the report
            report = inspect_dataset(cfg)
    except (ConfigError, InspectError, RenderError) as exc:
        problems = getattr(exc, "problems", [str(exc)])
        if args.json:
            print(json.dumps({"ok": False, "problems": problems}, indent=2))
        else:
            print("sft inspect: " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0 if report["ok"] else 1


def register_cli(sub: argparse._SubParsersAction) -> None:
    from sftpipe.cli.pipeline import add_config_args

    p = sub.add_parser(
        "inspect",
        help="check what every sample trains on (end tokens, tool calls, reasoning, masking, truncation)",
    )
    p.add_argument("data_name", metavar="DATA_NAME", help="conversion.data_name of the config or a variant")
    add_config_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)
