"""Pipeline-stage commands: validate, render, register, train, writeback, record."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sftpipe.config import ConfigError, RunConfig, config_warnings, load

DEFAULT_CONFIG = Path("config/config.yaml")
VARIANT_OUTPUT_SUFFIX = ".output.yaml"


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="run profile (default config/config.yaml)")
    p.add_argument("--variant", default=None, help="config/variants/<name>.yaml overrides to apply")
    p.add_argument("--root", type=Path, default=Path("."), help="project root (default: current directory)")


def load_from_args(args: argparse.Namespace) -> RunConfig:
    return load(args.config, root=args.root, variant=args.variant)


def output_target(cfg: RunConfig, config_path: Path) -> Path:
    """Where a run's output block goes: config.yaml, or a variant's own file next to the variant."""
    if not cfg.variant:
        return config_path
    return cfg.root / "config" / "variants" / f"{cfg.variant}{VARIANT_OUTPUT_SUFFIX}"


def _fail(exc: Exception, as_json: bool = False) -> int:
    if as_json:
        problems = getattr(exc, "problems", [str(exc)])
        print(json.dumps({"ok": False, "problems": problems}, indent=2))
    else:
        print(f"error: {exc}", file=sys.stderr)
    return 2


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        cfg = load_from_args(args)
    except (ConfigError, OSError) as exc:
        return _fail(exc, args.json)
    warnings = config_warnings(cfg.data)
    report = {"ok": True, "run_dir": str(cfg.run_dir), "data_name": cfg.data_name,
              "variant": cfg.variant, "source": cfg.source["type"], "warnings": warnings,
              "global_batch": cfg.training["per_device_train_batch_size"]
              * cfg.training["gradient_accumulation_steps"]
              * cfg.infrastructure["n_gpus_per_node"] * cfg.infrastructure["n_nodes"]}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"config ok: run {cfg.run_dir}, data {cfg.data_name} ({cfg.source['type']}), "
              f"global batch {report['global_batch']}")
        for w in warnings:
            print(f"warning: {w}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from ruamel.yaml import YAML

    from sftpipe.lf import render as lf_config

    cfg = load_from_args(args)
    rendered = lf_config.render(cfg)
    if args.out:
        lf_config.dump(rendered, args.out)
    else:
        YAML().dump(rendered, sys.stdout)
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from sftpipe.data.registration import RegistrationError, register

    cfg = load_from_args(args)
    try:
        record = register(cfg, args.dataset_info, args.marker)
    except RegistrationError as exc:
        return _fail(exc)
    print(json.dumps(record, indent=2))
    return 0


def conversion_options(cfg: RunConfig):
    """Map config.yaml (conversion + the training keys that decide token lengths) onto ConversionOptions."""
    from sftpipe.data.conversion.convert import ConversionOptions

    conv, train = cfg.conversion, cfg.training
    reasoning = conv["reasoning"]
    if reasoning == "auto":  # reasoning templates train <think> text; *_nothink ones would train it verbatim
        reasoning = "drop" if train["template"].endswith("_nothink") else "keep"
    model = cfg.root / cfg.model_path
    return ConversionOptions(
        scaffold=cfg.source["scaffold"], selection=conv["selection"], exception_policy=conv["exception_policy"],
        max_instances=conv["max_instances"], max_trials_per_instance=conv["max_trials_per_instance"],
        exclude_repos_file=str(cfg.root / conv["exclude_repos_file"]) if conv["exclude_repos_file"] else "",
        keep_subagents=conv["keep_subagents"], min_score=conv["min_score"], reasoning=reasoning,
        tool_error_policy=conv["tool_error_policy"], over_cutoff=conv["over_cutoff"],
        cutoff_len=train["cutoff_len"], tokenizer_path=str(model) if model.is_dir() else "",
        template=train["template"], enable_thinking=train.get("enable_thinking", True), workers=conv["workers"])


def cmd_convert_config(args: argparse.Namespace) -> int:
    from sftpipe.data.conversion.convert import convert_job

    cfg = load_from_args(args)
    report = convert_job(cfg.root / cfg.job_dir, args.out_dir, cfg.data_name, conversion_options(cfg))
    print(report.to_text())
    if report.rows_written == 0:  # nothing to train on: fail here, with the report, not later in LF
        print(f"error: no rows written from {cfg.job_dir}; see the per-trial reasons above", file=sys.stderr)
        return 1
    return 0


def cmd_tokenize(args: argparse.Namespace) -> int:
    from sftpipe.lf import render as lf_config
    from sftpipe.lf import checks as lf_dataset
    from sftpipe.util.fs import atomic_write_json

    cfg = load_from_args(args)
    report = lf_dataset.tokenize_dataset(lf_config.render(cfg), tokenized_path=args.out)
    atomic_write_json(args.out / "sft_tokenize_report.json", report)
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from sftpipe.training.train import RunDirError, train
    from sftpipe.slurm.env import SlurmEnvError

    cfg = load_from_args(args)
    try:
        return train(cfg, args.manifest)
    except (RunDirError, SlurmEnvError) as exc:  # the run cannot start here: say why, no traceback
        return _fail(exc)


def cmd_writeback(args: argparse.Namespace) -> int:
    from sftpipe.report import output_block
    from sftpipe.util.fs import atomic_write_json, atomic_write_text
    from sftpipe.report.writeback import write_output_block

    cfg = load_from_args(args)
    block = output_block.build(cfg, output_block.load_json(args.manifest), output_block.load_json(args.metrics),
                               args.plot)
    target = output_target(cfg, args.root / args.config)
    if not target.exists():  # a variant's first result: a file of its own, never the variant itself
        atomic_write_text(target, f"# Results of variant {cfg.variant!r}, written by the pipeline.\n"
                                  "runtime_info:\n  output: {}\n")
    write_output_block(target, block)
    atomic_write_json(args.marker, {"target": str(target), "output": block})
    print(f"wrote runtime_info.output of {target}")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from sftpipe.runs import index as run_index
    from sftpipe.config import INDEX_PATH
    from sftpipe.util.fs import atomic_write_json
    from sftpipe.report.output_block import load_json

    cfg = load_from_args(args)
    manifest, written = load_json(args.manifest), load_json(args.writeback)
    output = written["output"]
    records = {k: v for k, v in output["artifacts"].items()}
    records["writeback"] = written["target"]
    metrics = output["training_metrics"]
    fields = {"final_loss": metrics["final_loss"], "checkpoint_path": output["checkpoint_path"], "records": records,
              "tokens_per_second_per_gpu": metrics.get("tokens_per_second_per_gpu"), "mfu": metrics.get("mfu")}
    if output.get("best_checkpoint"):
        fields["best_checkpoint"] = output["best_checkpoint"]
    entry = run_index.update_entry(cfg.root / INDEX_PATH, manifest["run_id"], **fields)
    atomic_write_json(args.marker, entry)
    print(f"recorded {manifest['run_id']} in {INDEX_PATH}")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="validate config.yaml (schema + cross-field rules)")
    add_config_args(p)
    p.add_argument("--json", action="store_true")
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

    p = sub.add_parser("convert-config", help="convert the Harbor job named by config.yaml (the convert rule)")
    add_config_args(p)
    p.add_argument("--out-dir", type=Path, default=Path("artifacts/data"))
    p.set_defaults(func=cmd_convert_config)

    p = sub.add_parser("tokenize", help="pre-tokenize the dataset on CPU into a LLaMA-Factory tokenized_path")
    add_config_args(p)
    p.add_argument("--out", type=Path, required=True, help="tokenized_path directory (must not exist)")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("train", help="run (or resume) the training job of this config")
    add_config_args(p)
    p.add_argument("--manifest", type=Path, required=True, help="written when training completes")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("writeback", help="write runtime_info.output of config.yaml (or the variant's file)")
    add_config_args(p)
    for name in ("manifest", "metrics", "plot", "marker"):
        p.add_argument(f"--{name}", type=Path, required=True)
    p.set_defaults(func=cmd_writeback)

    p = sub.add_parser("record", help="complete the run's entry in artifacts/index.yaml")
    add_config_args(p)
    for name in ("manifest", "writeback", "marker"):
        p.add_argument(f"--{name}", type=Path, required=True)
    p.set_defaults(func=cmd_record)
