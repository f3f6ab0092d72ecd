"""The `train` stage: prepare the run directory, launch LLaMA-Factory under torchrun, record the end.

One training run = one call of `train()`. It
  * applies experiment.on_existing_run to whatever the run directory already holds, and resumes an
    interrupted run of the same training config from its last COMPLETE checkpoint (incomplete ones
    are renamed aside, never deleted);
  * renders the LLaMA-Factory YAML and the resolved (redacted) config into the run directory;
  * appends a `running` entry to artifacts/index.yaml, then launches torchrun with the console log
    tee'd to artifacts/logs/<run>_<timestamp>.log;
  * turns SIGTERM/SIGINT/SIGUSR1 into a stop request (a stop file every rank polls: a complete
    checkpoint, then a clean exit) instead of killing ranks mid-save; a second signal escalates;
  * inside a SLURM job (sftpipe.slurm.launch): one torchrun per node through srun, a job-derived
    MASTER_PORT, a stop (`timeout`) before the job's time limit followed by `scontrol requeue`,
    `preempted` when SLURM's SIGTERM comes from preemption;
  * records how it ended (completed / stopped / interrupted / timeout / failed) whatever happens,
    and writes the small manifest Snakemake tracks only when training completed.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sftpipe.runs import checkpoints
from sftpipe.lf import render as lf_config
from sftpipe import plan
from sftpipe.runs import provenance as records
from sftpipe.runs import index as run_index
from sftpipe.slurm import launch as slurm_launch
from sftpipe.training import fail_fast
from sftpipe.config import INDEX_PATH, LOGS_DIR, RunConfig, redacted
from sftpipe.util.fs import atomic_write_json, display_path
from sftpipe.util.git import git_commit

STOP_FILE = ".sft_stop.json"  # in the run dir; written by signals here and by `sft stop`
STOP_REASON = "stop_reason.json"  # written by sftpipe.training.lf_entry when it stopped on request
RUN_RECORD = "run.json"
LF_YAML = "llamafactory_config.yaml"
RESOLVED_CONFIG = "run_config.yaml"
ESCALATE_AFTER_S = float(os.environ.get("SFT_STOP_GRACE_S", "900"))
SIGNAL_REASONS = {signal.SIGTERM: "interrupted", signal.SIGINT: "interrupted", signal.SIGUSR1: "timeout"}


class RunDirError(RuntimeError):
    """The run directory holds something the configured policy will not touch."""


@dataclass
class Prepared:
    resume_from: Path | None
    archived_to: Path | None
    quarantined: list[tuple[Path, Path]]


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def prepare_run_dir(cfg: RunConfig) -> Prepared:
    """Decide fresh / resume / archive for cfg.run_dir according to experiment.on_existing_run."""
    run_dir = cfg.root / cfg.run_dir
    policy = cfg.experiment["on_existing_run"]
    model_only = bool(cfg.training.get("save_only_model"))
    explicit = cfg.training.get("resume_from_checkpoint")
    has_state = run_dir.is_dir() and (
        any(checkpoints.list_checkpoints(run_dir)) or (run_dir / "trainer_state.json").exists()
        or (run_dir / "train_results.json").exists())
    if explicit:
        why_not = slurm_launch.world_change_error(cfg, {}, cfg.root / explicit)
        if why_not:
            raise RunDirError(why_not)
    if not has_state or explicit:
        return Prepared(Path(explicit) if explicit else None, None, [])

    prior = _read_json(run_dir / RUN_RECORD) or {}
    finished = (run_dir / "train_results.json").exists()
    same_config = prior.get("training_hash") == cfg.training_hash()
    if not finished and not same_config and slurm_launch.same_training_except_world(cfg, prior):
        why_not = slurm_launch.world_change_error(cfg, prior["world"], None)
        if why_not:  # sharded checkpoints of another world size: neither resume nor archive silently
            raise RunDirError(why_not)
    if same_config and not finished:
        moved = checkpoints.quarantine_incomplete(run_dir, model_only)
        good = checkpoints.latest_complete(run_dir, model_only)
        return Prepared(good.path if good else None, None, moved)

    why = ("it holds a finished run" if finished and same_config else
           "it holds a run of a different training config" if prior else
           "it holds checkpoints of unknown provenance (no run.json)")
    if policy == "archive":
        target = run_dir.with_name(f"{run_dir.name}.archive-{utc_stamp()}")
        run_dir.rename(target)
        return Prepared(None, target, [])
    raise RunDirError(
        f"run directory {run_dir} {why}; experiment.on_existing_run is {policy!r}. Either set "
        "training.output_dir to a new run name, set experiment.on_existing_run: archive (moves the old run "
        "aside, nothing is deleted), or set training.resume_from_checkpoint to continue from a checkpoint.")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_executable(cfg: RunConfig) -> list[str]:
    env_bin = cfg.root / cfg.data["meta_info"]["environment"]["sft_uv"] / "bin" / "torchrun"
    if env_bin.exists():
        return [str(env_bin)]
    return [sys.executable, "-m", "torch.distributed.run"]


def launch_env(cfg: RunConfig, stop_file: Path) -> dict[str, str]:
    """Environment for the training processes: secrets only here, never in a file."""
    env = dict(os.environ)
    env["FORCE_TORCHRUN"] = "1"
    env["SFT_STOP_FILE"] = str(stop_file)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    mode = cfg.experiment["wandb_mode"]
    env["WANDB_MODE"] = mode
    if mode != "disabled":
        env["WANDB_PROJECT"] = cfg.experiment["wandb_project"]
        env["WANDB_DIR"] = str(cfg.root / cfg.run_dir)
        key = cfg.credential("wandb_api_key")
        if key:
            env["WANDB_API_KEY"] = key
    token = cfg.credential("hf_token")
    if token:
        env["HF_TOKEN"] = token
    env.update(fail_fast.probe_env(cfg.infrastructure, cfg.training))
    if cfg.infrastructure["accelerator"] == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        env.setdefault("DS_ACCELERATOR", "cpu")
    return env


def torchrun_command(cfg: RunConfig, lf_yaml: Path, master_addr: str, master_port: int,
                     node_rank: int | None = 0) -> list[str]:
    """node_rank None: left out, for sftpipe.slurm.launch node-exec to add per node."""
    infra = cfg.infrastructure
    rank = [] if node_rank is None else [f"--node_rank={node_rank}"]
    return [*torchrun_executable(cfg),
            f"--nnodes={infra['n_nodes']}", *rank,
            f"--nproc_per_node={infra['n_gpus_per_node']}",
            f"--master_addr={master_addr}", f"--master_port={master_port}",
            "-m", "sftpipe.training.lf_entry", str(lf_yaml)]


class _StopForwarder:
    """First signal → stop file (graceful, every rank checkpoints); second or timeout → SIGTERM the group."""

    def __init__(self, stop_file: Path, child: subprocess.Popen, slurm_job_id: str | None = None):
        self.stop_file, self.child, self.reason, self.count = stop_file, child, None, 0
        self.slurm_job_id = slurm_job_id
        self._timer: threading.Timer | None = None

    def handle(self, signum, _frame) -> None:
        self.count += 1
        if self.count == 1:
            self.reason = SIGNAL_REASONS.get(signum, "interrupted")
            if signum == signal.SIGTERM and self.slurm_job_id:  # SLURM's SIGTERM: preemption or scancel
                self.reason = slurm_launch.signal_reason(self.slurm_job_id)
            request_stop(self.stop_file, self.reason, f"signal {signal.Signals(signum).name}")
            self._timer = threading.Timer(ESCALATE_AFTER_S, self._escalate)
            self._timer.daemon = True
            self._timer.start()
        else:
            self._escalate()

    def _escalate(self) -> None:
        if self.child.poll() is None:
            try:
                os.killpg(self.child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def cancel(self) -> None:
        if self._timer:
            self._timer.cancel()


def request_stop(stop_file: Path, reason: str, detail: str = "") -> None:
    """Ask a running training to checkpoint and exit (used by signals here and by `sft stop`)."""
    atomic_write_json(stop_file, {"reason": reason, "detail": detail, "requested_at": run_index.utc_now()})


def _tee(proc: subprocess.Popen, console_log: Path) -> None:
    with open(console_log, "ab") as log:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            log.write(line)
            log.flush()
            sys.stdout.buffer.write(line)
            sys.stdout.flush()


def _last_error_lines(console_log: Path, n: int = 15) -> str:
    try:
        lines = console_log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    markers = ("Error", "error:", "Traceback", "Exception", "Killed", "OOM", "exitcode")
    hits = [i for i, line in enumerate(lines) if any(m in line for m in markers)]
    end = (hits[-1] + 1) if hits else len(lines)
    return "\n".join(lines[max(0, end - n):end])


def final_status(exit_code: int, run_dir: Path, signal_reason: str | None) -> str:
    """How the run ended: stop_reason.json (sftpipe.training.lf_entry) says a requested stop happened."""
    stop = _read_json(run_dir / STOP_REASON)
    if stop is not None and stop.get("reason") == fail_fast.OOM_REASON:  # the max-length probe failed
        return fail_fast.OOM_REASON
    if stop is not None:
        if signal_reason:  # this launcher was signalled and wrote the stop file itself
            return signal_reason
        if stop.get("reason") == "stop_file":  # `sft stop` ("stopped"), or the time-limit guard ("timeout")
            requested = (stop.get("requested") or {}).get("reason")
            return requested if requested in ("timeout", "preempted", "interrupted") else "stopped"
        return "timeout" if stop.get("signal") == "SIGUSR1" else "interrupted"
    if signal_reason:
        return signal_reason
    if exit_code == 0:
        return "completed" if (run_dir / "train_results.json").exists() else "failed"
    return run_index.status_from_exit_code(exit_code)


def _archive_stale(path: Path, stamp: str) -> None:
    """A record from an earlier attempt is kept under a new name, not deleted."""
    if path.exists():
        path.rename(path.with_name(f"{path.stem}.{stamp}{path.suffix}"))


def _start_time_limit_guard(cfg: RunConfig, job: slurm_launch.SlurmJob, stop_file: Path,
                            console_log: Path) -> slurm_launch.TimeLimitGuard:
    """Stop file with reason `timeout` stop_before_limit_minutes before SLURM's end of the job."""
    margin_s = float(cfg.infrastructure["stop_before_limit_minutes"]) * 60

    def on_limit(left: float) -> None:
        note = f"[sft] {left:.0f}s left in SLURM job {job.job_id}: checkpointing and stopping (timeout)"
        print(note, flush=True)
        with open(console_log, "a") as log:
            log.write(note + "\n")
        request_stop(stop_file, "timeout", f"{left:.0f}s before the time limit of SLURM job {job.job_id}")

    return slurm_launch.TimeLimitGuard(job.job_id, margin_s, on_limit).start()


def _requeue_after_timeout(cfg: RunConfig, job: slurm_launch.SlurmJob, index_path: Path, run_id: str) -> int:
    """Hand the job back to SLURM (the single owner of retries): it reruns under the same id and resumes.

    Everything is recorded BEFORE the requeue: SLURM kills this job as soon as it is requeued.
    """
    cap = cfg.infrastructure["max_requeues"]
    if job.restart_count >= cap:
        why = (f"not requeued: SLURM job {job.job_id} already restarted {job.restart_count} time(s) "
               f"(infrastructure.max_requeues: {cap}); rerun snakemake to continue from the checkpoint")
        run_index.update_entry(index_path, run_id, requeue=why)
        print(f"[sft] {why}", flush=True)
        return 1
    run_index.update_entry(index_path, run_id,
                           requeue=f"requeued SLURM job {job.job_id} (restart {job.restart_count + 1} of {cap})")
    print(f"[sft] requeueing SLURM job {job.job_id}; the next attempt resumes from the last checkpoint", flush=True)
    requeued, why = slurm_launch.requeue(job, cap)
    if not requeued:
        run_index.update_entry(index_path, run_id, requeue=why)
        print(f"[sft] {why}", flush=True)
    return 1


def train(cfg: RunConfig, manifest: Path, index_path: Path | None = None) -> int:
    """Run one training job: here, or inside a SLURM job on all of its nodes (sftpipe.slurm.launch)."""
    root = cfg.root
    index_path = index_path or root / INDEX_PATH
    run_dir = root / cfg.run_dir
    job = slurm_launch.current_job(cfg)  # None outside SLURM; checks the job's node count
    prepared = prepare_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    stamp = utc_stamp()
    console_log = root / LOGS_DIR / f"{cfg.run_name}_{stamp}.log"
    console_log.parent.mkdir(parents=True, exist_ok=True)
    stop_file = run_dir / STOP_FILE
    stop_file.unlink(missing_ok=True)  # a request aimed at an earlier attempt
    _archive_stale(run_dir / STOP_REASON, stamp)

    lf_yaml = run_dir / LF_YAML
    tokenized = plan.tokenized_path(cfg) if cfg.infrastructure["pretokenize"] else None
    lf_config.dump(lf_config.render(cfg, resume_from=prepared.resume_from, tokenized_path=tokenized), lf_yaml)
    lf_config.dump(redacted(cfg.data), run_dir / RESOLVED_CONFIG)

    run_id = run_index.append_entry(index_path, {
        "variant": cfg.variant or None, "status": "running", "run_dir": str(cfg.run_dir),
        "log": display_path(console_log, root), "started_at": run_index.utc_now(),
        "config_hash": cfg.config_hash(), "git_commit": git_commit(root), "data_name": cfg.data_name,
        "slurm_job_id": job.job_id if job else None,
        **({"slurm_nodes": ",".join(job.nodes), "slurm_restart_count": job.restart_count} if job else {}),
    })
    record = {"run_id": run_id, "run_name": cfg.run_name, "training_hash": cfg.training_hash(),
              "config_hash": cfg.config_hash(), "started_at": run_index.utc_now(),
              "resumed_from": str(prepared.resume_from) if prepared.resume_from else None,
              "archived_previous_to": str(prepared.archived_to) if prepared.archived_to else None,
              "quarantined": [[str(a), str(b)] for a, b in prepared.quarantined],
              "console_log": display_path(console_log, root), "pid": os.getpid(),
              "host": socket.gethostname(), "world": slurm_launch.world_record(cfg),
              "slurm": job.record() if job else None}
    atomic_write_json(run_dir / RUN_RECORD, record)
    records.write_start_records(cfg, run_dir)
    print(f"[sft] run {run_id}: {cfg.run_dir} (console log {console_log})", flush=True)
    if prepared.resume_from:
        print(f"[sft] resuming from {prepared.resume_from}", flush=True)
    for src, dst in prepared.quarantined:
        print(f"[sft] incomplete checkpoint {src.name} renamed to {dst.name}", flush=True)
    if prepared.archived_to:
        print(f"[sft] previous run moved to {prepared.archived_to}", flush=True)

    env = launch_env(cfg, stop_file)
    if job is None:
        cmd = torchrun_command(cfg, lf_yaml, "127.0.0.1", cfg.infrastructure["master_port"] or free_port())
    else:
        torchrun = torchrun_command(cfg, lf_yaml, job.master_addr, job.master_port,
                                    node_rank=0 if job.nnodes == 1 else None)
        cmd = slurm_launch.launch_command(torchrun, job)
        env = slurm_launch.launch_environment(cfg, job, env)
    with open(console_log, "a") as log:
        log.write(f"[sft] {run_id} command: {' '.join(cmd)}\n")
    exit_code, forwarder, guard = 1, None, None
    old_handlers = {}
    try:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        forwarder = _StopForwarder(stop_file, proc, job.job_id if job else None)
        for sig in SIGNAL_REASONS:
            old_handlers[sig] = signal.signal(sig, forwarder.handle)
        if job is not None:
            guard = _start_time_limit_guard(cfg, job, stop_file, console_log)
        with records.heartbeat(run_dir, run_id=run_id):
            _tee(proc, console_log)
            exit_code = proc.wait()
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        if forwarder:
            forwarder.cancel()
        if guard:
            guard.cancel()
        status = final_status(exit_code, run_dir, forwarder.reason if forwarder else None)
        if status == "interrupted" and job and job.nnodes > 1 and not (forwarder and forwarder.reason):
            status = "failed"  # srun --kill-on-bad-exit terminated the other nodes after one failed
        good = checkpoints.latest_complete(run_dir, bool(cfg.training.get("save_only_model")))
        results = _read_json(run_dir / "train_results.json") or {}
        fields: dict[str, Any] = {"status": status, "exit_code": exit_code,
                                  "checkpoint_path": display_path(good.path, root) if good else None,
                                  "final_loss": results.get("train_loss") if status == "completed" else None}
        if status == "failed":
            fields["error"] = _last_error_lines(console_log) or f"exit code {exit_code}"
        elif status == fail_fast.OOM_REASON:
            fields["error"] = fail_fast.oom_error(_read_json(run_dir / STOP_REASON))
        run_index.update_entry(index_path, run_id, **fields)
        records.write_end_records(run_dir, status, exit_code, bool(cfg.training.get("save_only_model")))
        record.update({"status": status, "exit_code": exit_code, "ended_at": run_index.utc_now()})
        atomic_write_json(run_dir / RUN_RECORD, record)
        stop_file.unlink(missing_ok=True)
    print(f"[sft] run {run_id} ended: {status} (exit code {exit_code})", flush=True)
    if status == "timeout" and job is not None:
        return _requeue_after_timeout(cfg, job, index_path, run_id)
    if status != "completed":
        return exit_code or 1
    atomic_write_json(manifest, {
        "run_id": run_id, "run_dir": str(cfg.run_dir), "status": status,
        "checkpoint_path": fields["checkpoint_path"], "final_loss": fields["final_loss"],
        "config_hash": cfg.config_hash(), "training_hash": cfg.training_hash(),
        "console_log": display_path(console_log, root),
    })
    return 0
