"""What the write-back puts in runtime_info.output, gathered from a finished run's files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sftpipe import paths
from sftpipe.config import RunConfig
from sftpipe.runs import checkpoints
from sftpipe.runs.best import best_checkpoint
from sftpipe.util.fs import display_path

_WANDB_RUN = re.compile(r"^(?:offline-)?run-\d{8}_\d{6}-(?P<id>[a-z0-9]+)$")


def wandb_run_id(run_dir: Path) -> str | None:
    """The W&B run id from the local wandb/ directory the run wrote (offline or online), if any."""
    wandb_dir = run_dir / "wandb"
    if not wandb_dir.is_dir():
        return None
    runs = sorted((p for p in wandb_dir.iterdir() if _WANDB_RUN.match(p.name)), key=lambda p: p.name)
    return _WANDB_RUN.match(runs[-1].name).group("id") if runs else None


def build(cfg: RunConfig, manifest: dict[str, Any], metrics: dict[str, Any], plot: Path) -> dict[str, Any]:
    """The runtime_info.output block of a completed run (contract: specs/contract.md)."""
    root, run_dir = cfg.root, cfg.root / cfg.run_dir
    summary = metrics.get("summary", {})
    model_only = bool(cfg.training.get("save_only_model"))
    latest = checkpoints.latest_complete(run_dir, model_only)
    best = best_checkpoint(run_dir, model_only=model_only)["best"]
    out: dict[str, Any] = {
        "run_id": manifest["run_id"],
        "run_dir": display_path(run_dir, root) + "/",
        "checkpoint_path": (display_path(latest.path, root) + "/") if latest else None,
        "best_checkpoint": (display_path(Path(best["path"]), root) + "/") if best else None,
        "training_metrics": {
            "final_loss": summary.get("final_loss"),
            "train_runtime": summary.get("train_runtime"),
            "total_steps": summary.get("total_steps"),
            "best_eval_loss": summary.get("best_eval_loss"),
            "num_input_tokens_seen": summary.get("num_input_tokens_seen"),
            "tokens_per_second_per_gpu": summary.get("tokens_per_second_per_gpu"),
            "mfu": summary.get("mfu"),
            "peak_gpu_memory_gb": summary.get("peak_gpu_memory_gb"),
        },
        "artifacts": {
            "train_results": display_path(run_dir / paths.TRAIN_RESULTS, root),
            "train_loss_plot": display_path(plot, root),
            "training_log": manifest["console_log"],
            "metrics": display_path(run_dir / paths.METRICS_JSON, root),
        },
        "training_curves": {"wandb_run_id": wandb_run_id(run_dir)},
    }
    return out
