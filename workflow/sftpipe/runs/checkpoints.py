"""Checkpoint discovery and completeness.

LLaMA-Factory/HF resume from the highest `checkpoint-N` without checking it; a job killed while
saving leaves a partial one. A checkpoint counts as complete only when its trainer_state.json
parses and names step N, model weights exist, and the optimizer state is there (DeepSpeed: the
`latest` tag points at an existing global_stepN directory; otherwise optimizer.pt), unless the run
saves model-only checkpoints, which cannot be resumed anyway.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sftpipe import paths

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_PATTERNS = (
    "model*.safetensors",
    "pytorch_model*.bin",
    "adapter_model.*",
    "model.safetensors.index.json",
)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint-<step> directory and whether it can be resumed from (`problem` says why not)."""

    path: Path
    step: int
    complete: bool
    problem: str = ""  # why it is incomplete


def check(path: Path, step: int, model_only: bool = False) -> Checkpoint:
    """Whether the checkpoint is complete: trainer state at `step`, weights, and (unless `model_only`)
    resumable optimizer state (optimizer.pt, or the DeepSpeed shards named by `latest`)."""
    state_file = path / paths.TRAINER_STATE
    try:
        state = json.loads(state_file.read_text())
    except FileNotFoundError:
        return Checkpoint(path, step, False, "no trainer_state.json")
    except (OSError, json.JSONDecodeError) as exc:
        return Checkpoint(path, step, False, f"unreadable trainer_state.json: {exc}")
    if state.get("global_step") != step:
        return Checkpoint(
            path, step, False, f"trainer_state.json global_step {state.get('global_step')} != {step}"
        )
    has_weights = any(any(path.glob(p)) for p in WEIGHT_PATTERNS)
    # ZeRO-3 with stage3_gather_16bit_weights_on_model_save false: the weights are the shards only.
    has_weights = has_weights or any(path.glob("global_step*/*model_states.pt"))
    if not has_weights:
        return Checkpoint(path, step, False, "no model weights")
    if model_only:
        return Checkpoint(path, step, True)
    latest = path / "latest"
    if latest.exists():
        tag = latest.read_text().strip()
        tag_dir = path / tag
        if not tag or not tag_dir.is_dir() or not any(tag_dir.iterdir()):
            return Checkpoint(
                path, step, False, f"DeepSpeed tag {tag!r} named by `latest` is missing or empty"
            )
        return Checkpoint(path, step, True)
    if any(path.glob("global_step*")):
        return Checkpoint(path, step, False, "DeepSpeed shards without a `latest` tag (save interrupted)")
    if not (path / "optimizer.pt").exists():
        return Checkpoint(path, step, False, "no optimizer state (optimizer.pt)")
    return Checkpoint(path, step, True)


def list_checkpoints(run_dir: Path, model_only: bool = False) -> list[Checkpoint]:
    """Every checkpoint-<step> directory of the run, checked, by step; [] when the directory is missing."""
    found = []
    if not Path(run_dir).is_dir():
        return found
    for child in Path(run_dir).iterdir():
        match = CHECKPOINT_RE.match(child.name)
        if match and child.is_dir():
            found.append(check(child, int(match.group(1)), model_only))
    return sorted(found, key=lambda c: c.step)


def latest_complete(run_dir: Path, model_only: bool = False) -> Checkpoint | None:
    """The complete checkpoint with the highest step, None when there is none."""
    complete = [c for c in list_checkpoints(run_dir, model_only) if c.complete]
    return complete[-1] if complete else None


def quarantine_incomplete(run_dir: Path, model_only: bool = False) -> list[tuple[Path, Path]]:
    """Rename incomplete checkpoints newer than the last complete one so HF never resumes from them.

    Renamed (not deleted): the user may still want to inspect them.
    """
    good = latest_complete(run_dir, model_only)
    floor = good.step if good else -1
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for ckpt in list_checkpoints(run_dir, model_only):
        if not ckpt.complete and ckpt.step > floor:
            target = ckpt.path.with_name(f"{ckpt.path.name}.incomplete-{stamp}")
            ckpt.path.rename(target)
            moved.append((ckpt.path, target))
    return moved
