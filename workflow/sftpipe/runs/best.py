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

import argparse
import json
import sys
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
            row = rows.setdefault(line["current_steps"], {"step": line["current_steps"], "eval_loss": None,
                                                          "epoch": line.get("epoch")})
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
        rows.append({
            "path": str(ckpt.path), "step": ckpt.step, "complete": ckpt.complete, "problem": ckpt.problem or None,
            "loss": losses[-1]["loss"] if losses else None,
            "loss_step": losses[-1]["step"] if losses else None,
            "eval_loss": at.get("eval_loss"),
            "epoch": at.get("epoch"),
            "time": datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
    return rows


def pick_best(rows: list[dict[str, Any]], metric: str = "auto", greater_is_better: bool = False
              ) -> tuple[dict[str, Any] | None, str]:
    """(best complete row, metric used). Ties go to the later step (more training for the same score)."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    complete = [r for r in rows if r["complete"]]
    if metric == "auto":
        metric = "eval_loss" if any(isinstance(r.get("eval_loss"), (int, float)) for r in complete) else "loss"
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


def _cmd_checkpoints(args: argparse.Namespace) -> int:
    from sftpipe.runs.index import RunIndexError
    from sftpipe.runs.status import RunNotFound, resolve_run

    try:
        ref = resolve_run(args.root, args.run)
    except (RunNotFound, RunIndexError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result = best_checkpoint(ref.run_dir, args.metric)
    result["run_dir"] = str(ref.run_dir)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    best_path = result["best"]["path"] if result["best"] else None
    latest_path = result["latest"]["path"] if result["latest"] else None
    print(f"{'step':>7s} {'complete':8s} {'loss':>8s} {'eval_loss':>9s} {'time':21s} path")
    for r in result["checkpoints"]:
        tags = [t for t, p in (("best", best_path), ("latest", latest_path)) if p == r["path"]]
        done = "yes" if r["complete"] else "NO"
        print(f"{r['step']:7d} {done:8s} {_fmt(r['loss']):>8s} {_fmt(r['eval_loss']):>9s} {r['time']:21s} "
              f"{r['path']}{'  <- ' + ', '.join(tags) if tags else ''}"
              f"{'  (' + r['problem'] + ')' if r['problem'] else ''}")
    if not result["checkpoints"]:
        print(f"no checkpoints in {ref.run_dir}")
    print(f"best by {result['metric']}: {best_path or '-'}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("checkpoints", help="list a run's checkpoints with metrics; mark the best")
    p.add_argument("run", nargs="?", help="run id (run_003), run name, or run directory (default: newest)")
    p.add_argument("--metric", choices=METRICS, default="auto",
                   help="rank by eval_loss, train loss, or auto (eval_loss when evaluated)")
    p.add_argument("--root", type=Path, default=Path("."), help="project root (default: current directory)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_checkpoints)
