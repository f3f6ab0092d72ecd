"""Pre-flight and helper commands: dryrun, build-tiny-model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sftpipe.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    add_config_args,
    add_json,
    load_from_args,
    print_json,
)
from sftpipe.config import ConfigError
from sftpipe.data.inspect import format_report as format_inspection
from sftpipe.data.tiny_model import PRESETS, build_tiny_model
from sftpipe.lf.memory import format_plan
from sftpipe.training.dryrun import run
from sftpipe.util.fs import stdout_to_stderr


def cmd_dryrun(args: argparse.Namespace) -> int:
    """Exit 0 when everything passed, 1 when a check failed, 2 when the config itself is invalid."""
    try:
        cfg = load_from_args(args)
        with stdout_to_stderr():
            report = run(cfg)
    except ConfigError as exc:
        report = {"ok": False, "stage": "config", "problems": exc.problems}
    except Exception as exc:  # noqa: BLE001 - LF's parser/loader raise many types: all are the finding
        report = {"ok": False, "stage": "llamafactory", "problems": [f"{type(exc).__name__}: {exc}"]}
    if args.json:
        print_json(report)
    elif "problems" in report:
        print(f"dry run FAILED at {report['stage']}:", file=sys.stderr)
        for problem in report["problems"]:
            print(f"  - {problem}", file=sys.stderr)
    else:
        _print_dryrun(report)
    if report["ok"]:
        return EXIT_OK
    return EXIT_USAGE if report.get("stage") == "config" else EXIT_FAILURE


def _print_dryrun(report: dict[str, Any]) -> None:
    print("config: ok")
    for w in report["config"]["warnings"]:
        print(f"  warning: {w}")
    print("LLaMA-Factory arguments: ok (parsed by LLaMA-Factory)")
    data = report["data"]
    print(f"data: {data['file'] or '-'} ({data['origin']})")
    if "validation" in data:
        v = data["validation"]
        print(f"  rows: {v['rows']}, invalid: {v['invalid_rows']}")
        for example in v["examples"]:
            print(f"  - {example}")
    tok = report["tokenization"]
    print("tokenization (LLaMA-Factory, CPU, no weights):")
    for key, value in tok.items():
        print(f"  {key}: {value}")
    if "inspection" in report:
        print("dataset checks (sft inspect):")
        print(format_inspection(report["inspection"]))
    mem = report["memory"]
    print(f"memory plan: unavailable ({mem['error']})" if "error" in mem else format_plan(mem))
    if report.get("stage") == "memory":
        print(
            "dry run FAILED: the memory plan does not fit (see the suggestions above; "
            "infrastructure.allow_memory_overcommit: true overrides)"
        )
        return
    print(
        "dry run "
        + (
            "passed"
            if report["ok"]
            else "FAILED: fix the rows or checks above before training "
            "(or list a check in conversion.allow_failed_checks)"
        )
    )


def cmd_build_tiny_model(args: argparse.Namespace) -> int:
    """Build (or reuse) the random tiny model directory and print where it is."""
    path = build_tiny_model(Path(args.out), preset=args.preset, seed=args.seed)
    if args.json:
        print_json({"model_dir": str(path), "preset": args.preset, "seed": args.seed})
    else:
        print(f"model ready: {path} (preset {args.preset}, seed {args.seed})")
    return EXIT_OK


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `sft dryrun` and `sft build-tiny-model`."""
    p = subparsers.add_parser("dryrun", help="validate, render, parse with LLaMA-Factory and tokenize on CPU")
    add_config_args(p)
    add_json(p)
    p.set_defaults(func=cmd_dryrun)

    p = subparsers.add_parser(
        "build-tiny-model", help="build a random Qwen3-architecture model + local tokenizer"
    )
    p.add_argument("--out", required=True, help="model directory to create (kept if already complete)")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    add_json(p)
    p.set_defaults(func=cmd_build_tiny_model)
