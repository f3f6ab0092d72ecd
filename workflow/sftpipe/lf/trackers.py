"""Experiment trackers: `experiment.tracker` -> LLaMA-Factory's `report_to` and the training environment.

Every tracker works offline, with no server: wandb in `experiment.wandb_mode` (offline by default; files
under <run_dir>/wandb, synced later with `wandb sync`), tensorboard event files under
<run_dir>/tensorboard, mlflow into a local SQLite store, <run_dir>/mlflow.db. `none` reports nowhere.
(Not MLflow's `file:` store: MLflow 3 keeps it in maintenance mode, refuses it unless told, and its
path-traversal guard rejects every run stored below a directory named `artifacts`, i.e. every run dir here.)
`wandb_mode: disabled` keeps meaning "no W&B" and reports nowhere, as before trackers existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

TRACKERS = ("wandb", "tensorboard", "mlflow", "none")
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"


def report_to(experiment: Mapping[str, Any]) -> str:
    """LLaMA-Factory's report_to for the experiment section (tracker defaults to wandb)."""
    tracker = experiment.get("tracker", "wandb")
    if tracker not in TRACKERS:
        raise ValueError(f"experiment.tracker: {tracker!r} is not one of {list(TRACKERS)}")
    if tracker == "wandb" and experiment.get("wandb_mode") == "disabled":
        return "none"
    return tracker


def tracker_lf_args(experiment: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    """Extra LLaMA-Factory (transformers) arguments a tracker needs."""
    if report_to(experiment) == "tensorboard":
        return {"logging_dir": str(run_dir / TENSORBOARD_DIR)}
    return {}


def tracker_env(experiment: Mapping[str, Any], run_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """Environment for the training processes; variables already in `environ` win (e.g. an MLflow server).

    `run_dir` must be absolute: ranks may run in another working directory.
    """
    env: dict[str, str] = {}
    if report_to(experiment) == "mlflow":
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{run_dir / MLFLOW_DB}"
        env["MLFLOW_EXPERIMENT_NAME"] = experiment.get("wandb_project") or "sftpipe"
    return {k: v for k, v in env.items() if k not in environ}
