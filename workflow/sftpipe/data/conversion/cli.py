"""`sft convert`: a Harbor job dir -> the same IM/LF/stats/report files the pipeline rule writes."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from sftpipe.data.conversion.convert import ConversionOptions, convert_job
from sftpipe.data.conversion.harbor_job import SCAFFOLDS

_DEFAULTS = ConversionOptions()


def _optional_bool(text: str) -> bool | None:
    return {"true": True, "false": False, "null": None, "none": None}[text.lower()]


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("convert", help="convert a Harbor job into LLaMA-Factory data",
                              description=__doc__)
    p.add_argument("--job-dir", required=True, type=Path)
    p.add_argument("--scaffold", default="auto", choices=(*SCAFFOLDS, "auto"))
    p.add_argument("--data-name", required=True)
    p.add_argument("--out-dir", required=True, type=Path,
                   help="writes lf_data/<name>.json, <name>.im.jsonl, <name>.stats.json, <name>.report.json/.txt")
    p.add_argument("--selection", default=_DEFAULTS.selection, choices=("resolved", "unresolved", "all"))
    p.add_argument("--exception-policy", default=_DEFAULTS.exception_policy, choices=("keep_if_rewarded", "drop"))
    p.add_argument("--max-instances", type=int, default=_DEFAULTS.max_instances)
    p.add_argument("--max-trials-per-instance", type=int, default=_DEFAULTS.max_trials_per_instance)
    p.add_argument("--exclude-repos-file", default="artifacts/data/excluded_repos.txt",
                   help='owner/repo list to exclude (default: %(default)s); "" disables')
    p.add_argument("--no-subagents", dest="keep_subagents", action="store_false")
    p.add_argument("--min-score", type=float, default=_DEFAULTS.min_score)
    p.add_argument("--reasoning", default=_DEFAULTS.reasoning, choices=("keep", "drop"))
    p.add_argument("--tool-error-policy", default=_DEFAULTS.tool_error_policy, choices=("keep", "drop"))
    p.add_argument("--over-cutoff", default=_DEFAULTS.over_cutoff, choices=("drop", "keep"))
    p.add_argument("--cutoff-len", type=int, default=_DEFAULTS.cutoff_len)
    p.add_argument("--tokenizer-path", default="", help='tokenizer for token lengths; "" skips measuring')
    p.add_argument("--template", default=_DEFAULTS.template)
    p.add_argument("--enable-thinking", type=_optional_bool, default=_DEFAULTS.enable_thinking,
                   help="true|false|null, as training's enable_thinking")
    p.add_argument("--workers", type=int, default=_DEFAULTS.workers, help="0 = all cores")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.exclude_repos_file and not Path(args.exclude_repos_file).is_file():
        print(f"sft convert: exclude-repos file {args.exclude_repos_file} not found "
              '(pass --exclude-repos-file "" to disable exclusion)', file=sys.stderr)
        return 2
    names = {f.name for f in fields(ConversionOptions)}
    try:
        opts = ConversionOptions(**{k: v for k, v in vars(args).items() if k in names})
        report = convert_job(args.job_dir, args.out_dir, args.data_name, opts)
    except (ValueError, FileNotFoundError) as exc:
        print(f"sft convert: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.to_text(), end="")
    return 0 if report.rows_written else 1
