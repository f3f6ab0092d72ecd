"""`sft convert`: a Harbor job dir -> the same IM/LF/stats/report files the pipeline rule writes.

Every option's default and choices come from the `conversion` section of the config schema
(options.py), so a bare `sft convert` converts exactly like the pipeline with an all-default config.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sftpipe.cli.conversion_outputs import add_output_args, output_paths_from_args
from sftpipe.data.conversion.convert import convert_job
from sftpipe.data.conversion.harbor_job import SCAFFOLDS
from sftpipe.data.conversion.options import (
    DEFAULT_TEMPLATE,
    ConversionOptions,
    conversion_choices,
    default_conversion,
    options_from_config,
)

# Output flags -> OutputPaths fields; each overrides the --out-dir layout for its file.


def _optional_bool(text: str) -> bool | None:
    return {"true": True, "false": False, "null": None, "none": None}[text.lower()]


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `sft convert`; option defaults come from the config schema's conversion section."""
    d = default_conversion()
    p = subparsers.add_parser(
        "convert",
        help="convert a Harbor job into LLaMA-Factory data",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--job-dir", required=True, type=Path)
    p.add_argument("--scaffold", default="auto", choices=(*SCAFFOLDS, "auto"))
    p.add_argument("--data-name", required=True)
    add_output_args(p)
    p.add_argument("--selection", default=d["selection"], choices=conversion_choices("selection"))
    p.add_argument(
        "--exception-policy", default=d["exception_policy"], choices=conversion_choices("exception_policy")
    )
    p.add_argument("--max-instances", type=int, default=d["max_instances"])
    p.add_argument("--max-trials-per-instance", type=int, default=d["max_trials_per_instance"])
    p.add_argument(
        "--exclude-repos-file",
        default=d["exclude_repos_file"],
        help='owner/repo list to exclude; "" disables',
    )
    p.add_argument("--keep-subagents", action=argparse.BooleanOptionalAction, default=d["keep_subagents"])
    p.add_argument(
        "--no-subagents",
        dest="keep_subagents",
        action="store_false",
        default=argparse.SUPPRESS,  # the default is --keep-subagents' (the schema's)
        help="same as --no-keep-subagents",
    )
    p.add_argument(
        "--on-damaged-trial",
        default=d["on_damaged_trial"],
        choices=conversion_choices("on_damaged_trial"),
        help="skip: a damaged trial yields no rows; salvage: its longest valid part (status salvaged)",
    )
    p.add_argument(
        "--keep-lossy-fallback",
        action=argparse.BooleanOptionalAction,
        default=d["keep_lossy_fallback"],
        help="keep ATIF-only rows of tool-calling scaffolds that lack system prompt/tool schemas",
    )
    p.add_argument("--min-score", type=float, default=d["min_score"])
    p.add_argument(
        "--reasoning",
        default=d["reasoning"],
        choices=conversion_choices("reasoning"),
        help="auto: keep for reasoning templates, drop for *_nothink ones (by --template)",
    )
    p.add_argument(
        "--tool-error-policy", default=d["tool_error_policy"], choices=conversion_choices("tool_error_policy")
    )
    p.add_argument("--over-cutoff", default=d["over_cutoff"], choices=conversion_choices("over_cutoff"))
    p.add_argument("--cutoff-len", type=int, default=ConversionOptions.cutoff_len)
    p.add_argument("--tokenizer-path", default="", help='tokenizer for token lengths; "" skips measuring')
    p.add_argument("--template", default=DEFAULT_TEMPLATE)
    p.add_argument(
        "--enable-thinking",
        type=_optional_bool,
        default=True,
        help="true|false|null, as training's enable_thinking",
    )
    p.add_argument("--workers", type=int, default=d["workers"], help="0 = all cores")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_run)


def _options(args: argparse.Namespace) -> ConversionOptions:
    conversion = {key: getattr(args, key) for key in default_conversion() if hasattr(args, key)}
    training = {
        "template": args.template,
        "cutoff_len": args.cutoff_len,
        "enable_thinking": args.enable_thinking,
    }
    return options_from_config(
        conversion, training, scaffold=args.scaffold, tokenizer_path=args.tokenizer_path
    )


def _run(args: argparse.Namespace) -> int:
    if args.exclude_repos_file and not Path(args.exclude_repos_file).is_file():
        print(
            f"sft convert: exclude-repos file {args.exclude_repos_file} not found "
            '(pass --exclude-repos-file "" to disable exclusion)',
            file=sys.stderr,
        )
        return 2
    try:
        report = convert_job(
            args.job_dir, output_paths_from_args(args, args.data_name), args.data_name, _options(args)
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"sft convert: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.to_text(), end="")
    return 0 if report.rows_written else 1
