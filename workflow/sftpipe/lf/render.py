"""Render the LLaMA-Factory training YAML from runtime_info.input.

The schema's training keys are LLaMA-Factory argument names, so they pass through; this module adds
what the pipeline owns (model, dataset, output_dir, reporting, resume) and what it forbids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sftpipe.config import RunConfig, rotation_guard
from sftpipe.lf import trackers
from sftpipe.paths import LF_DATA_DIR
from sftpipe.util.fs import atomic_write_text
from sftpipe.util.yamltext import dump_yaml11

# Keys the pipeline sets itself; a value in training: for these is ignored or rejected upstream.
PIPELINE_KEYS = ("output_dir", "plot_loss", "overwrite_output_dir", "report_to", "run_name")


def render(
    cfg: RunConfig, resume_from: Path | None = None, tokenized_path: Path | None = None
) -> dict[str, Any]:
    training = {k: v for k, v in cfg.training.items() if k not in PIPELINE_KEYS and v is not None}
    if not training.get("deepspeed"):
        training.pop("deepspeed", None)
    if training.get("max_steps", -1) <= 0:
        training.pop("max_steps", None)
    training.pop("resume_from_checkpoint", None)
    lf: dict[str, Any] = {
        "model_name_or_path": cfg.model_path,
        "trust_remote_code": cfg.inp["model"]["trust_remote_code"],
        "do_train": True,
        **training,
        "dataset": cfg.data_name,
        "dataset_dir": str(LF_DATA_DIR),
        "output_dir": str(cfg.run_dir),
        # training_loss.png is drawn by the pipeline's plot stage (one owner of that file).
        "plot_loss": False,
        "overwrite_output_dir": False,
        "report_to": trackers.report_to(cfg.experiment),
        "run_name": cfg.tracking_name,
    }
    for key, value in trackers.tracker_lf_args(
        cfg.experiment, cfg.run_dir
    ).items():  # relative, as output_dir
        lf.setdefault(key, value)
    lf.setdefault("include_num_input_tokens_seen", True)  # token counts for metrics and tokens/s
    lf.setdefault("ddp_timeout", 180000000)  # long tokenization on rank 0 must not kill the group
    explicit = cfg.training.get("resume_from_checkpoint")
    if explicit or resume_from:
        lf["resume_from_checkpoint"] = str(explicit or resume_from)
    if tokenized_path:
        lf["tokenized_path"] = str(tokenized_path)
    lf, _ = rotation_guard(lf)  # save_total_limit never deletes the best checkpoint (see config_warnings)
    return lf


def dump(lf: dict[str, Any], path: Path) -> None:
    """Write the LF YAML so that LF's YAML 1.1 reader gets the same values (`eval_strategy: 'no'` stays a string)."""
    atomic_write_text(path, dump_yaml11(lf))
