"""The `train` stage: prepare → start records → spawn → wait → finalize, for one training run.

* prepare: apply experiment.on_existing_run to the run directory (resume an interrupted run of the same
  training config from its last complete checkpoint; `training.run_dir`), render the LLaMA-Factory YAML and the
  resolved (redacted) config into it;
* start records: a `running` entry in the run history, run.json, provenance (code diff, environment, dataset);
* spawn: torchrun (inside a SLURM job: one per node through srun, `sftpipe.slurm.launch`) with the console log
  tee'd to artifacts/logs/<run>_<time>.log; signals become a stop request (`training.process`);
* wait: a heartbeat while it runs; inside SLURM a guard stops (`timeout`) before the job's time limit;
* finalize: record how it ended (completed / stopped / interrupted / timeout / preempted / failed), whatever
  happened, and write the small manifest Snakemake tracks only when training completed; a timeout inside SLURM
  requeues the job (SLURM owns retries) so it resumes from the checkpoint.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftpipe import paths
from sftpipe.config import RunConfig, redacted
from sftpipe.lf import render as lf_render
from sftpipe.runs import checkpoints
from sftpipe.runs import index as run_index
from sftpipe.runs.ending import OOM_AT_MAX_LENGTH, final_status
from sftpipe.runs.provenance import write_end_records, write_start_records
from sftpipe.runs.store import Manifest, RunStore, heartbeat, write_manifest
from sftpipe.slurm import launch as slurm_launch
from sftpipe.training import fail_fast, process
from sftpipe.training.run_dir import Prepared, link_run_dir, prepare_run_dir
from sftpipe.util.fs import display_path
from sftpipe.util.git import git_commit
from sftpipe.util.timefmt import utc_now, utc_stamp


@dataclass
class Attempt:
    """One launch of a run: what finalize needs to record its end."""

    cfg: RunConfig
    store: RunStore
    run_id: str
    record: dict[str, Any]
    console_log: Path
    index_path: Path
    job: slurm_launch.SlurmJob | None = None
    notes: list[str] = field(default_factory=list)


def prepare(cfg: RunConfig, tokenized: Path | None) -> tuple[RunStore, Prepared, Path]:
    """Run-dir policy, then the LF YAML (resume point, tokenized cache) and the resolved config. Returns the LF YAML."""
    link_run_dir(cfg)
    prepared = prepare_run_dir(cfg)
    store = RunStore(cfg.root / cfg.run_dir)
    store.dir.mkdir(parents=True, exist_ok=True)
    store.clear_stop_request()  # a request aimed at an earlier attempt
    store.archive_stop_reason(utc_stamp())
    lf_yaml = store.path(paths.LF_YAML)
    lf_render.dump(lf_render.render(cfg, resume_from=prepared.resume_from, tokenized_path=tokenized), lf_yaml)
    lf_render.dump(redacted(cfg.data), store.path(paths.RESOLVED_CONFIG))
    return store, prepared, lf_yaml


def start_records(
    cfg: RunConfig, store: RunStore, prepared: Prepared, index_path: Path, job: slurm_launch.SlurmJob | None
) -> Attempt:
    """The history entry (status running), run.json and the provenance records of this attempt."""
    root = cfg.root
    console_log = root / paths.LOGS_DIR / f"{cfg.run_name}_{utc_stamp()}.log"
    console_log.parent.mkdir(parents=True, exist_ok=True)
    run_id = run_index.append_entry(
        index_path,
        {
            "variant": cfg.variant or None,
            "status": "running",
            "run_dir": str(cfg.run_dir),
            "log": display_path(console_log, root),
            "started_at": utc_now(),
            "config_hash": cfg.config_hash(),
            "git_commit": git_commit(root),
            "data_name": cfg.data_name,
            "slurm_job_id": job.job_id if job else None,
            **({"slurm_nodes": ",".join(job.nodes), "slurm_restart_count": job.restart_count} if job else {}),
        },
    )
    record = {
        "run_id": run_id,
        "run_name": cfg.run_name,
        "training_hash": cfg.training_hash(),
        "config_hash": cfg.config_hash(),
        "started_at": utc_now(),
        "resumed_from": str(prepared.resume_from) if prepared.resume_from else None,
        "archived_previous_to": str(prepared.archived_to) if prepared.archived_to else None,
        "quarantined": [[str(a), str(b)] for a, b in prepared.quarantined],
        "console_log": display_path(console_log, root),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "world": slurm_launch.world_record(cfg),
        "slurm": job.record() if job else None,
    }
    store.write_run_record(record)
    write_start_records(cfg, store)
    attempt = Attempt(cfg, store, run_id, record, console_log, index_path, job)
    attempt.notes.append(f"run {run_id}: {cfg.run_dir} (console log {console_log})")
    if prepared.resume_from:
        attempt.notes.append(f"resuming from {prepared.resume_from}")
    attempt.notes += [
        f"incomplete checkpoint {src.name} renamed to {dst.name}" for src, dst in prepared.quarantined
    ]
    if prepared.archived_to:
        attempt.notes.append(f"previous run moved to {prepared.archived_to}")
    return attempt


def command_and_env(attempt: Attempt, lf_yaml: Path) -> tuple[list[str], dict[str, str]]:
    """torchrun here, or srun → one torchrun per node inside a SLURM job."""
    cfg, job = attempt.cfg, attempt.job
    env = process.launch_env(cfg, attempt.store.stop_request_path)
    if job is None:
        port = cfg.infrastructure["master_port"] or process.free_port()
        return process.torchrun_command(cfg, lf_yaml, "127.0.0.1", port), env
    torchrun = process.torchrun_command(
        cfg, lf_yaml, job.master_addr, job.master_port, node_rank=0 if job.nnodes == 1 else None
    )
    return slurm_launch.launch_command(torchrun, job), slurm_launch.launch_environment(cfg, job, env)


def spawn_and_wait(attempt: Attempt, cmd: list[str], env: dict[str, str]) -> tuple[int, str | None]:
    """Run the command to its end; returns (exit code, why this launcher was signalled or None)."""
    with open(attempt.console_log, "a") as log:
        log.write(f"[sft] {attempt.run_id} command: {' '.join(cmd)}\n")
    exit_code, forwarder, guard, old_handlers = 1, None, None, {}
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=attempt.cfg.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        forwarder = process.StopForwarder(attempt.store, proc, attempt.job.job_id if attempt.job else None)
        for sig in process.SIGNAL_REASONS:
            old_handlers[sig] = signal.signal(sig, forwarder.handle)
        if attempt.job is not None:
            guard = _start_time_limit_guard(attempt.cfg, attempt.job, attempt.store, attempt.console_log)
        with heartbeat(attempt.store, run_id=attempt.run_id):
            process.tee(proc, attempt.console_log)
            exit_code = proc.wait()
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        if forwarder:
            forwarder.cancel()
        if guard:
            guard.cancel()
    return exit_code, forwarder.reason if forwarder else None


def finalize(attempt: Attempt, exit_code: int, signal_reason: str | None) -> dict[str, Any]:
    """Record how the attempt ended in the history, run.json and the events; returns the recorded fields."""
    cfg, store = attempt.cfg, attempt.store
    multi_node = bool(attempt.job and attempt.job.nnodes > 1)
    status = final_status(exit_code, store.read_stop_reason(), signal_reason, store.finished(), multi_node)
    model_only = bool(cfg.training.get("save_only_model"))
    good = checkpoints.latest_complete(store.dir, model_only)
    fields: dict[str, Any] = {
        "status": status,
        "exit_code": exit_code,
        "checkpoint_path": display_path(good.path, cfg.root) if good else None,
        "final_loss": store.read_train_results().get("train_loss") if status == "completed" else None,
    }
    if status == "failed":
        fields["error"] = process.last_error_lines(attempt.console_log) or f"exit code {exit_code}"
    elif status == OOM_AT_MAX_LENGTH:
        fields["error"] = fail_fast.oom_error(store.read_stop_reason())
    run_index.update_entry(attempt.index_path, attempt.run_id, **fields)
    write_end_records(store, status, exit_code, model_only)
    attempt.record.update({"status": status, "exit_code": exit_code, "ended_at": utc_now()})
    store.write_run_record(attempt.record)
    store.clear_stop_request()
    return fields


def train(
    cfg: RunConfig, manifest: Path, tokenized: Path | None = None, index_path: Path | None = None
) -> int:
    """Run one training job: here, or inside a SLURM job on all of its nodes. Returns the exit code."""
    index_path = index_path or cfg.root / paths.INDEX_PATH
    job = slurm_launch.current_job(cfg)  # None outside SLURM; checks the job's node count
    store, prepared, lf_yaml = prepare(cfg, tokenized)
    attempt = start_records(cfg, store, prepared, index_path, job)
    for note in attempt.notes:
        print(f"[sft] {note}", flush=True)
    exit_code, signal_reason = 1, None
    try:
        cmd, env = command_and_env(attempt, lf_yaml)
        exit_code, signal_reason = spawn_and_wait(attempt, cmd, env)
    finally:  # whatever happened (even an exception here), the end is recorded
        fields = finalize(attempt, exit_code, signal_reason)
    status = fields["status"]
    print(f"[sft] run {attempt.run_id} ended: {status} (exit code {exit_code})", flush=True)
    if status == "timeout" and job is not None:
        return _requeue_after_timeout(cfg, job, index_path, attempt.run_id)
    if status != "completed":
        return exit_code or 1
    write_manifest(
        manifest,
        Manifest(
            run_id=attempt.run_id,
            run_dir=str(cfg.run_dir),
            status=status,
            checkpoint_path=fields["checkpoint_path"],
            final_loss=fields["final_loss"],
            config_hash=cfg.config_hash(),
            training_hash=cfg.training_hash(),
            console_log=display_path(attempt.console_log, cfg.root),
        ),
    )
    return 0


def _start_time_limit_guard(
    cfg: RunConfig, job: slurm_launch.SlurmJob, store: RunStore, console_log: Path
) -> slurm_launch.TimeLimitGuard:
    """A stop request with reason `timeout` stop_before_limit_minutes before SLURM's end of the job."""
    margin_s = float(cfg.infrastructure["stop_before_limit_minutes"]) * 60

    def on_limit(left: float) -> None:
        note = f"[sft] {left:.0f}s left in SLURM job {job.job_id}: checkpointing and stopping (timeout)"
        print(note, flush=True)
        with open(console_log, "a") as log:
            log.write(note + "\n")
        store.request_stop("timeout", f"{left:.0f}s before the time limit of SLURM job {job.job_id}")

    return slurm_launch.TimeLimitGuard(job.job_id, margin_s, on_limit).start()


def _requeue_after_timeout(cfg: RunConfig, job: slurm_launch.SlurmJob, index_path: Path, run_id: str) -> int:
    """Hand the job back to SLURM (the single owner of retries): it reruns under the same id and resumes.

    Everything is recorded BEFORE the requeue: SLURM kills this job as soon as it is requeued.
    """
    cap = cfg.infrastructure["max_requeues"]
    if job.restart_count >= cap:
        why = (
            f"not requeued: SLURM job {job.job_id} already restarted {job.restart_count} time(s) "
            f"(infrastructure.max_requeues: {cap}); rerun snakemake to continue from the checkpoint"
        )
        run_index.update_entry(index_path, run_id, requeue=why)
        print(f"[sft] {why}", flush=True)
        return 1
    run_index.update_entry(
        index_path,
        run_id,
        requeue=f"requeued SLURM job {job.job_id} (restart {job.restart_count + 1} of {cap})",
    )
    print(
        f"[sft] requeueing SLURM job {job.job_id}; the next attempt resumes from the last checkpoint",
        flush=True,
    )
    requeued, why = slurm_launch.requeue(job, cap)
    if not requeued:
        run_index.update_entry(index_path, run_id, requeue=why)
        print(f"[sft] {why}", flush=True)
    return 1
