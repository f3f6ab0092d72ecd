"""What to do with whatever the run directory already holds: fresh start, resume, archive, or refuse.

An interrupted run of the same training config resumes from its last COMPLETE checkpoint (incomplete ones are
renamed aside, never deleted); anything else follows `experiment.on_existing_run` (archive: moved aside).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sftpipe import paths
from sftpipe.config import RunConfig
from sftpipe.runs import checkpoints
from sftpipe.runs.store import RunStore
from sftpipe.slurm import launch as slurm_launch
from sftpipe.util.timefmt import utc_stamp


class RunDirError(RuntimeError):
    """The run directory holds something the configured policy will not touch."""


@dataclass
class Prepared:
    """The decision for this attempt."""

    resume_from: Path | None = None
    archived_to: Path | None = None
    quarantined: list[tuple[Path, Path]] = field(default_factory=list)


def link_run_dir(cfg: RunConfig) -> None:
    """An absolute training.output_dir: create it and point artifacts/model/<run> at it.

    Snakemake creates the (empty) parent of the declared manifest before the job starts; an empty real
    directory there is replaced by the link, anything else is refused.
    """
    if not cfg.run_dir.is_absolute():
        return
    link = cfg.root / paths.MODEL_ROOT / cfg.run_name
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        if Path(os.readlink(link)) != cfg.run_dir:
            raise RunDirError(
                f"{link} links to {os.readlink(link)}, not to training.output_dir {cfg.run_dir}"
            )
        return
    if link.is_dir() and not any(link.iterdir()):
        link.rmdir()
    elif link.exists():
        raise RunDirError(
            f"{link} exists and is not a link to training.output_dir {cfg.run_dir}; move it or rename the run"
        )
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(cfg.run_dir, target_is_directory=True)


def prepare_run_dir(cfg: RunConfig) -> Prepared:
    """Decide fresh / resume / archive for cfg.run_dir according to experiment.on_existing_run."""
    store = RunStore(cfg.root / cfg.run_dir)
    run_dir = store.dir
    policy = cfg.experiment["on_existing_run"]
    model_only = bool(cfg.training.get("save_only_model"))
    explicit = cfg.training.get("resume_from_checkpoint")
    has_state = run_dir.is_dir() and (
        any(checkpoints.list_checkpoints(run_dir)) or store.trainer_state.exists() or store.finished()
    )
    if explicit:
        why_not = slurm_launch.world_change_error(cfg, {}, cfg.root / explicit)
        if why_not:
            raise RunDirError(why_not)
    if not has_state or explicit:
        return Prepared(Path(explicit) if explicit else None)

    prior = store.read_run_record() or {}
    finished = store.finished()
    same_config = prior.get("training_hash") == cfg.training_hash()
    if not finished and not same_config and slurm_launch.same_training_except_world(cfg, prior):
        why_not = slurm_launch.world_change_error(cfg, prior["world"], None)
        if why_not:  # sharded checkpoints of another world size: neither resume nor archive silently
            raise RunDirError(why_not)
    if same_config and not finished:
        moved = checkpoints.quarantine_incomplete(run_dir, model_only)
        good = checkpoints.latest_complete(run_dir, model_only)
        return Prepared(good.path if good else None, None, moved)

    why = (
        "it holds a finished run"
        if finished and same_config
        else "it holds a run of a different training config"
        if prior
        else "it holds checkpoints of unknown provenance (no run.json)"
    )
    if policy == "archive":
        target = run_dir.with_name(f"{run_dir.name}.archive-{utc_stamp()}")
        run_dir.rename(target)
        return Prepared(None, target)
    raise RunDirError(
        f"run directory {run_dir} {why}; experiment.on_existing_run is {policy!r}. Either set "
        "training.output_dir to a new run name, set experiment.on_existing_run: archive (moves the old run "
        "aside, nothing is deleted), or set training.resume_from_checkpoint to continue from a checkpoint."
    )
