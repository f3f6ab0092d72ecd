"""Checkpoints of a run with their metrics, the best one by a metric, and rotation that keeps it.

Metrics at a checkpoint come from sftpipe.runs.metrics (trainer_state.json + trainer_log.jsonl): the train
`loss` logged at the checkpoint's step (else the last one before it) and the `eval_loss` evaluated at
exactly that step. The best checkpoint is the complete one with the lowest value of the metric:
`eval_loss` when any complete checkpoint has one, else train `loss` (`metric="auto"`).

Protecting the best from rotation: HF's `save_total_limit` deletes the oldest checkpoints, but
`Trainer._sorted_checkpoints` moves `state.best_model_checkpoint` out of the deletion range, and
`best_model_checkpoint` is tracked whenever `metric_for_best_model` is set (load_best_model_at_end is
not needed). It is only set when a checkpoint exists at the best eval's step, so save_steps must be
a multiple of eval_steps. `rotation_guard()` adds `metric_for_best_model: eval_loss` and
`greater_is_better: false` to an LF config that rotates, and reports configurations where the best
cannot be protected (rotation without evaluation: HF only tracks eval metrics).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sftpipe import paths
from sftpipe.runs import checkpoints
from sftpipe.runs.metrics import MetricsError, extract_metrics, read_trainer_log

METRICS = ("auto", "eval_loss", "loss")


def _metric_rows(run_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Per-step rows from sftpipe.runs.metrics; train losses it lacks are filled from trainer_log.jsonl."""
    try:
        series = extract_metrics(run_dir)["series"]
        log = Path(run_dir) / paths.TRAINER_LOG
        lines = read_trainer_log(log, [])[0] if log.is_file() else []
    except MetricsError as exc:
        return [], [str(exc)]
    rows = {r["step"]: dict(r) for r in series}
    for line in lines:
        if isinstance(line.get("loss"), (int, float)):
            row = rows.setdefault(
                line["current_steps"],
                {"step": line["current_steps"], "eval_loss": None, "epoch": line.get("epoch")},
            )
            if row.get("loss") is None:
                row["loss"] = line["loss"]
    return [rows[s] for s in sorted(rows)], []


def checkpoint_table(run_dir: Path, model_only: bool = False) -> list[dict[str, Any]]:
    """Every checkpoint-N of the run, oldest first, with completeness and metrics at its step."""
    run_dir = Path(run_dir)
    series, _ = _metric_rows(run_dir)
    rows = []
    for ckpt in checkpoints.list_checkpoints(run_dir, model_only):
        losses = [r for r in series if r["step"] <= ckpt.step and isinstance(r.get("loss"), (int, float))]
        at = next((r for r in series if r["step"] == ckpt.step), {})
        mtime = ckpt.path.stat().st_mtime
        rows.append(
            {
                "path": str(ckpt.path),
                "step": ckpt.step,
                "complete": ckpt.complete,
                "problem": ckpt.problem or None,
                "loss": losses[-1]["loss"] if losses else None,
                "loss_step": losses[-1]["step"] if losses else None,
                "eval_loss": at.get("eval_loss"),
                "epoch": at.get("epoch"),
                "time": datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return rows


def pick_best(
    rows: list[dict[str, Any]], metric: str = "auto", greater_is_better: bool = False
) -> tuple[dict[str, Any] | None, str]:
    """(best complete row, metric used). Ties go to the later step (more training for the same score)."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    complete = [r for r in rows if r["complete"]]
    if metric == "auto":
        metric = (
            "eval_loss" if any(isinstance(r.get("eval_loss"), (int, float)) for r in complete) else "loss"
        )
    scored = [r for r in complete if isinstance(r.get(metric), (int, float)) and r[metric] == r[metric]]
    if not scored:
        return None, metric
    sign = -1 if greater_is_better else 1
    return min(scored, key=lambda r: (sign * r[metric], -r["step"])), metric


def best_checkpoint(run_dir: Path, metric: str = "auto", model_only: bool = False) -> dict[str, Any]:
    """For the write-back: {"latest": row|None, "best": row|None, "metric": name, "checkpoints": [...]}."""
    rows = checkpoint_table(run_dir, model_only)
    best, used = pick_best(rows, metric)
    complete = [r for r in rows if r["complete"]]
    return {"latest": complete[-1] if complete else None, "best": best, "metric": used, "checkpoints": rows}


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("-" if v is None else str(v))
