"""Pipeline-stage commands, one per rule: validate, render, convert-config, register, tokenize, train,
writeback, record."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ruamel.yaml import YAML

from sftpipe import paths
from sftpipe.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    CommandError,
    add_config_args,
    add_json,
    load_from_args,
    print_json,
)

# The work of each command is imported inside it: one rule job runs one command, and importing the others'
# layers (training, conversion, LF checks, reports) cost every small job most of its start-up.

__all__ = [
    "add_config_args",
    "load_from_args",
    "register_cli",
]  # shared flags, re-exported for command modules


def cmd_validate(args: argparse.Namespace) -> int:
    from sftpipe.config import config_warnings
    from sftpipe.lf.memory import memory_warnings

    cfg = load_from_args(args)
    warnings = config_warnings(cfg.data) + memory_warnings(cfg)
    report = {
        "ok": True,
        "run_dir": str(cfg.run_dir),
        "data_name": cfg.data_name,
        "variant": cfg.variant,
        "source": cfg.source["type"],
        "warnings": warnings,
        "global_batch": cfg.training["per_device_train_batch_size"]
        * cfg.training["gradient_accumulation_steps"]
        * cfg.infrastructure["n_gpus_per_node"]
        * cfg.infrastructure["n_nodes"],
    }
    if args.json:
        print_json(report)
    else:
        print(
            f"config ok: run {cfg.run_dir}, data {cfg.data_name} ({cfg.source['type']}), "
            f"global batch {report['global_batch']}"
        )
        for w in warnings:
            print(f"warning: {w}")
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    from sftpipe.lf import render as lf_render

    rendered = lf_render.render(load_from_args(args))
    if args.out:
        lf_render.dump(rendered, args.out)
    else:
        YAML().dump(rendered, sys.stdout)
    return EXIT_OK


def cmd_register(args: argparse.Namespace) -> int:
    from sftpipe.data.registration import register

    print_json(register(load_from_args(args), args.dataset_info, args.marker))
    return EXIT_OK


def cmd_convert_config(args: argparse.Namespace) -> int:
    from sftpipe.cli.conversion_outputs import output_paths_from_args
    from sftpipe.data.conversion.convert import convert_job
    from sftpipe.data.conversion.options import conversion_options

    cfg = load_from_args(args)
    try:
        outputs = output_paths_from_args(args, cfg.data_name)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    report = convert_job(cfg.root / cfg.job_dir, outputs, cfg.data_name, conversion_options(cfg))
    print(report.to_text())
    if report.rows_written == 0:  # nothing to train on: fail here, with the report, not later in LF
        print(f"error: no rows written from {cfg.job_dir}; see the per-trial reasons above", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_tokenize(args: argparse.Namespace) -> int:
    from sftpipe.lf import checks as lf_checks
    from sftpipe.lf import render as lf_render
    from sftpipe.util.fs import atomic_write_json

    report = lf_checks.tokenize_dataset(lf_render.render(load_from_args(args)), tokenized_path=args.out)
    atomic_write_json(args.out / "sft_tokenize_report.json", report)
    print_json(report)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from sftpipe.training.train import train

    return train(load_from_args(args), args.manifest, tokenized=args.tokenized or None)


def cmd_writeback(args: argparse.Namespace) -> int:
    from sftpipe.report.record import write_back

    written = write_back(
        load_from_args(args), args.root / args.config, args.manifest, args.metrics, args.plot, args.marker
    )
    print(f"wrote runtime_info.output of {written['target']}")
    return EXIT_OK


def cmd_record(args: argparse.Namespace) -> int:
    from sftpipe.report.record import record_run

    entry = record_run(load_from_args(args), args.manifest, args.writeback, args.marker)
    print(f"recorded {entry['id']} in {paths.INDEX_PATH}")
    return EXIT_OK


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="validate config.yaml (schema + cross-field rules)")
    add_config_args(p)
    add_json(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("render", help="print the LLaMA-Factory YAML this config trains with")
    add_config_args(p)
    p.add_argument("--out", type=Path)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("register", help="register the dataset in dataset_info.json")
    add_config_args(p)
    p.add_argument("--dataset-info", type=Path, required=True)
    p.add_argument("--marker", type=Path, required=True, help="registration record (the Snakemake output)")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser(
        "convert-config", help="convert the Harbor job named by config.yaml (the convert rule)"
    )
    add_config_args(p)
    from sftpipe.cli.conversion_outputs import add_output_args

    add_output_args(p)  # --out-dir (default artifacts/data) or the five exact paths, as the rule passes
    p.set_defaults(func=cmd_convert_config, out_dir=paths.DATA_DIR)

    p = sub.add_parser("tokenize", help="pre-tokenize the dataset on CPU into a LLaMA-Factory tokenized_path")
    add_config_args(p)
    p.add_argument("--out", type=Path, required=True, help="tokenized_path directory (must not exist)")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("train", help="run (or resume) the training job of this config")
    add_config_args(p)
    p.add_argument("--manifest", type=Path, required=True, help="written when training completes")
    p.add_argument(
        "--tokenized",
        type=Path,
        default=None,
        help="pre-tokenized dataset directory (the tokenize rule's output); empty: LF tokenizes",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("writeback", help="write runtime_info.output of config.yaml (or the variant's file)")
    add_config_args(p)
    for name in ("manifest", "metrics", "plot", "marker"):
        p.add_argument(f"--{name}", type=Path, required=True)
    p.set_defaults(func=cmd_writeback)

    p = sub.add_parser("record", help=f"complete the run's entry in {paths.INDEX_PATH}")
    add_config_args(p)
    for name in ("manifest", "writeback", "marker"):
        p.add_argument(f"--{name}", type=Path, required=True)
    p.set_defaults(func=cmd_record)
