"""Hand-written run directories in LLaMA-Factory's exact file formats (as LF 0.9.5 writes them on CPU).

Line shapes copied from a real `llamafactory-cli train` run of the tiny model: trainer_log.jsonl has a
train line per step, an eval line at eval steps and a final summary line; trainer_state.json holds
log_history with per-step `train_runtime`/`train_tokens_per_second` (include_num_input_tokens_seen).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from sftpipe.runs import index as run_index
from sftpipe.util.timefmt import utc_now


def _hms(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def log_lines(
    losses: dict[int, float],
    evals: dict[int, float],
    total: int,
    sec_per_step: int = 2,
    tokens_per_step: int = 512,
) -> list[dict[str, Any]]:
    lines = []
    for step in sorted(set(losses) | set(evals)):
        base = {
            "current_steps": step,
            "total_steps": total,
            "epoch": step / 32,
            "percentage": round(100 * step / total, 2),
            "elapsed_time": _hms(step * sec_per_step),
            "remaining_time": _hms((total - step) * sec_per_step),
            "throughput": tokens_per_step / sec_per_step,
            "total_tokens": step * tokens_per_step,
        }
        if step in losses:
            lines.append(
                {
                    "current_steps": step,
                    "total_steps": total,
                    "loss": losses[step],
                    "lr": 1e-3 * (1 - step / (total + 1)),
                }
                | {k: v for k, v in base.items() if k not in ("current_steps", "total_steps")}
            )
        if step in evals:
            lines.append(
                {"current_steps": step, "total_steps": total, "eval_loss": evals[step]}
                | {k: v for k, v in base.items() if k not in ("current_steps", "total_steps")}
            )
    return lines


def write_log(run_dir: Path, lines: list[dict[str, Any]], append: bool = False) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "trainer_log.jsonl", "a" if append else "w") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)


def state(step: int, losses: dict[int, float], evals: dict[int, float], max_steps: int) -> dict[str, Any]:
    history: list[dict[str, Any]] = []
    for s in range(1, step + 1):
        if s in losses:
            history.append(
                {
                    "epoch": s / 32,
                    "grad_norm": 2.0,
                    "learning_rate": 1e-3,
                    "loss": losses[s],
                    "num_input_tokens_seen": 512 * s,
                    "step": s,
                    "train_runtime": 2.0 * s,
                    "train_tokens_per_second": 256.0,
                }
            )
        if s in evals:
            history.append(
                {
                    "epoch": s / 32,
                    "eval_loss": evals[s],
                    "eval_runtime": 1.0,
                    "num_input_tokens_seen": 512 * s,
                    "step": s,
                }
            )
    return {
        "best_global_step": None,
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": step / 32,
        "eval_steps": 2,
        "global_step": step,
        "log_history": history,
        "logging_steps": 1,
        "max_steps": max_steps,
        "num_input_tokens_seen": 512 * step,
        "save_steps": 2,
        "train_batch_size": 1,
    }


def write_checkpoint(
    run_dir: Path,
    step: int,
    losses: dict[int, float],
    evals: dict[int, float],
    max_steps: int,
    complete: bool = True,
) -> Path:
    path = run_dir / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps(state(step, losses, evals, max_steps), indent=2))
    if complete:
        (path / "model.safetensors").write_bytes(b"weights")
        (path / "optimizer.pt").write_bytes(b"optim")
    return path


def add_entry(root: Path, run_dir: Path, status: str = "running", **fields: Any) -> str:
    rel = os.path.relpath(run_dir, root)
    return run_index.append_entry(
        root / "artifacts" / "index.yaml",
        {"status": status, "run_dir": rel, "started_at": utc_now(), "data_name": "demo_sft", **fields},
    )


def write_run_record(run_dir: Path, run_id: str, pid: int, host: str | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "run_name": run_dir.name,
                "started_at": utc_now(),
                "pid": pid,
                "host": host or socket.gethostname(),
                "console_log": "artifacts/logs/x.log",
            }
        )
    )
