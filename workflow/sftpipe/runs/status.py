"""A run's status and live progress, derived from its files; `sft status` and `sft runs`.

The index entry records what the launcher last wrote. When that says `running` (or `queued`) the
launcher may have died without its exit trap (SIGKILL, OOM killer, node failure), so the entry is
checked against evidence, in this order:
  * SLURM's job state when the entry has a slurm_job_id (queued / running / how it ended);
  * `stop_reason.json` (the training process stopped on request: stopped / timeout / interrupted);
  * run.json's pid when run.json's host is this host (a vanished or zombie pid = crashed);
  * heartbeat.json's age when the run lives on another host (stale = crashed, none = unknown).
Deriving never writes; `reconcile()` (`sft status --reconcile`) records the derived terminal state.

Progress comes from trainer_log.jsonl (deduplicated: a resume appends steps again).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sftpipe import paths
from sftpipe.paths import INDEX_PATH, MODEL_ROOT
from sftpipe.runs import checkpoints
from sftpipe.runs import index as run_index
from sftpipe.runs.ending import ACTIVE_STATUSES, TERMINAL_STATUSES, status_from_stop_reason
from sftpipe.runs.metrics import MetricsError, ema, read_trainer_log
from sftpipe.runs.store import RunStore
from sftpipe.slurm import env as slurm_env
from sftpipe.slurm.launch import time_left_s
from sftpipe.util.timefmt import format_duration, iso_of, parse_duration, unix_of

# A heartbeat is rewritten every ~15 s; four missed beats (shared filesystems lag) mean the writer is gone.
STALE_AFTER_S = float(os.environ.get("SFT_HEARTBEAT_STALE_S", "120"))
EMA_WEIGHT = 0.9
# slurm_env.JOB_STATES → our statuses (a job that ended while the index still says running).
_SLURM_END = {
    "completed": "unknown",
    "failed": "crashed",
    "timeout": "timeout",
    "preempted": "preempted",
    "node_fail": "crashed",
    "cancelled": "stopped",
    "oom": "crashed",
    "unknown": "unknown",
}


class RunNotFound(LookupError):
    """A RUN argument that names no run in the index and no run directory."""


@dataclass
class RunRef:
    """A run as the CLI commands see it: its index entry (if any) and its directory."""

    run_dir: Path
    entry: dict[str, Any] | None
    root: Path

    @property
    def run_id(self) -> str | None:
        return self.entry["id"] if self.entry else None

    @property
    def name(self) -> str:
        return self.run_id or self.run_dir.name


def entry_run_dir(root: Path, entry: dict[str, Any]) -> Path:
    path = Path(entry.get("run_dir") or "")
    return path if path.is_absolute() else root / path


def resolve_run(root: Path, ref: str | None, index_path: Path | None = None) -> RunRef:
    """RUN = run id (run_003), run name (directory basename), or a run directory; None = newest run."""
    root = Path(root)
    entries = run_index.read_entries(index_path or root / INDEX_PATH)
    if ref is None:
        if not entries:
            raise RunNotFound(f"no runs recorded in {index_path or root / INDEX_PATH}")
        return RunRef(entry_run_dir(root, entries[-1]), entries[-1], root)
    for entry in reversed(entries):
        if entry["id"] == ref:
            return RunRef(entry_run_dir(root, entry), entry, root)
    as_path = Path(ref) if Path(ref).is_absolute() else root / ref
    for entry in reversed(entries):
        run_dir = entry_run_dir(root, entry)
        if Path(str(entry.get("run_dir") or "")).name == ref or (
            as_path.exists() and _same(run_dir, as_path)
        ):
            return RunRef(run_dir, entry, root)
    for candidate in (as_path, root / MODEL_ROOT / ref):
        if (candidate / paths.RUN_RECORD).is_file() or (candidate / paths.TRAINER_LOG).is_file():
            return RunRef(candidate, None, root)
    raise RunNotFound(f"{ref!r} is neither a run id, a run name in the index, nor a run directory")


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def progress(run_dir: Path) -> dict[str, Any]:
    """Live progress from trainer_log.jsonl (empty values when nothing is logged yet)."""
    run_dir = Path(run_dir)
    out: dict[str, Any] = {
        "step": None,
        "total_steps": None,
        "percentage": None,
        "loss": None,
        "loss_ema": None,
        "eval_loss": None,
        "eval_step": None,
        "learning_rate": None,
        "epoch": None,
        "tokens_per_second": None,
        "tokens_per_second_per_gpu": None,
        "mfu": None,
        "total_tokens": None,
        "elapsed": None,
        "elapsed_s": None,
        "eta": None,
        "eta_s": None,
        "log_updated_at": None,
        "latest_checkpoint": None,
        "latest_checkpoint_step": None,
        "warnings": [],
    }
    good = checkpoints.latest_complete(run_dir)
    if good:
        out["latest_checkpoint"], out["latest_checkpoint_step"] = str(good.path), good.step
    log = RunStore(run_dir).trainer_log
    if not log.is_file():
        return out
    try:
        lines = read_trainer_log(log, out["warnings"])[0]
    except MetricsError as exc:
        out["warnings"].append(str(exc))
        return out
    out["log_updated_at"] = iso_of(log.stat().st_mtime)
    if not lines:
        return out
    last = lines[-1]
    train = [ln for ln in lines if isinstance(ln.get("loss"), (int, float))]
    evals = [ln for ln in lines if isinstance(ln.get("eval_loss"), (int, float))]
    step, total = last.get("current_steps"), last.get("total_steps")
    out.update(step=step, total_steps=total, epoch=last.get("epoch"))
    if isinstance(step, int) and isinstance(total, int) and total > 0:
        out["percentage"] = round(100.0 * step / total, 2)
    if train:
        out["loss"] = train[-1]["loss"]
        out["loss_ema"] = ema([float(ln["loss"]) for ln in train], EMA_WEIGHT)[-1]
        out["learning_rate"] = train[-1].get("lr")
    if evals:
        out["eval_loss"], out["eval_step"] = evals[-1]["eval_loss"], evals[-1]["current_steps"]
    elapsed = parse_duration(last.get("elapsed_time"))
    out["elapsed_s"], out["elapsed"] = elapsed, last.get("elapsed_time")
    tokens = last.get("total_tokens")
    out["total_tokens"] = tokens
    if isinstance(tokens, (int, float)) and elapsed:
        out["tokens_per_second"] = round(tokens / elapsed, 2)
    elif isinstance(last.get("throughput"), (int, float)):  # under a second elapsed: LF's own figure
        out["tokens_per_second"] = last["throughput"]
    if isinstance(tokens, (int, float)) and elapsed:
        from sftpipe.runs.throughput import rates, run_context

        perf = rates(run_context(run_dir), tokens, elapsed, step if isinstance(step, int) else None)
        out["tokens_per_second_per_gpu"], out["mfu"] = perf["tokens_per_second_per_gpu"], perf["mfu"]
    remaining = parse_duration(last.get("remaining_time"))
    if remaining is None and elapsed and isinstance(step, int) and step > 0 and isinstance(total, int):
        remaining = elapsed / step * max(0, total - step)
    out["eta_s"], out["eta"] = remaining, format_duration(remaining)
    return out


def _process_start(stat_fields: list[str]) -> float | None:
    """Unix start time of a process from /proc/<pid>/stat fields (after the command name)."""
    try:
        btime = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return btime + int(stat_fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def pid_alive(pid: int, started_at: float | None = None) -> bool:
    """True for a running (not zombie) process with this pid on this host.

    With `started_at` (when the run began), a process that started later is a reused pid: not alive.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return True  # no procfs: kill(0) is all we can know
    if fields[0] in ("Z", "X"):
        return False
    began = _process_start(fields)
    return not (started_at is not None and began is not None and began > started_at + 5)


@dataclass
class Derived:
    status: str
    recorded_status: str | None
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def derive_status(
    ref: RunRef,
    now: float | None = None,
    stale_after_s: float = STALE_AFTER_S,
    slurm_state: str | None = None,
) -> Derived:
    """The run's status from its files (never writes). `slurm_state` overrides asking SLURM (tests)."""
    now = time.time() if now is None else now
    entry, run_dir = ref.entry, ref.run_dir
    recorded = entry.get("status") if entry else None
    store = RunStore(run_dir)
    record = store.read_run_record() or {}
    beat = store.read_heartbeat()
    stop = store.read_stop_reason()
    evidence: dict[str, Any] = {"pid": record.get("pid"), "host": record.get("host")}
    if beat and isinstance(beat.get("unix_time"), (int, float)):
        evidence["heartbeat_age_s"] = round(now - beat["unix_time"], 1)
    if recorded is None:
        recorded = record.get("status") or ("running" if record else None)
        if recorded is None:
            return Derived("unknown", None, "no index entry and no run.json", evidence)
    if recorded not in ACTIVE_STATUSES:
        return Derived(recorded, recorded, "recorded by the launcher", evidence)

    job = (entry or {}).get("slurm_job_id")
    if job:
        state = slurm_state
        if state is None:
            try:
                state = slurm_env.slurm_job_state(job)
            except slurm_env.SlurmEnvError as exc:
                evidence["slurm_error"] = str(exc)
                state = None
        evidence["slurm_state"] = state
        if state == "running" and slurm_state is None:  # live cluster: how long SLURM still gives it
            evidence["slurm_time_left_s"] = time_left_s(str(job))
        if state == "queued":
            return Derived("queued", recorded, f"SLURM job {job} is pending", evidence)
        if state is not None and state not in ("running",):
            status = status_from_stop_reason(stop) if stop else _SLURM_END.get(state, "unknown")
            return Derived(
                status,
                recorded,
                f"SLURM job {job} ended ({state}) but the index still says {recorded}",
                evidence,
            )

    pid, host = record.get("pid"), record.get("host")
    if isinstance(pid, int) and host == socket.gethostname():
        alive = pid_alive(pid, unix_of(record.get("started_at")))
        evidence["pid_alive"] = alive
        if alive:
            return Derived("running", recorded, f"launcher pid {pid} is alive", evidence)
        if stop:
            return Derived(
                status_from_stop_reason(stop),
                recorded,
                f"launcher pid {pid} is gone after a requested stop (stop_reason.json: {stop.get('reason')})",
                evidence,
            )
        return Derived(
            "crashed", recorded, f"launcher pid {pid} on {host} is gone and recorded no end", evidence
        )

    age = evidence.get("heartbeat_age_s")
    if age is not None:
        if age <= stale_after_s:
            return Derived("running", recorded, f"heartbeat {age:.0f}s old", evidence)
        if stop:
            return Derived(
                status_from_stop_reason(stop), recorded, "heartbeat stale after a requested stop", evidence
            )
        return Derived(
            "crashed",
            recorded,
            f"heartbeat is {age:.0f}s old (> {stale_after_s:.0f}s) and no end was recorded",
            evidence,
        )
    if recorded == "queued":
        return Derived("queued", recorded, "queued; no process yet", evidence)
    where = f"host {host}" if host else "an unknown host"
    return Derived(
        "unknown",
        recorded,
        f"recorded {recorded} on {where}; no pid to check here and no heartbeat",
        evidence,
    )


def run_report(ref: RunRef, **kw: Any) -> dict[str, Any]:
    """Everything `sft status` shows about one run."""
    derived = derive_status(ref, **kw)
    entry = ref.entry or {}
    out = {
        "run_id": ref.run_id,
        "run_dir": str(ref.run_dir),
        "variant": entry.get("variant"),
        "data_name": entry.get("data_name"),
        "started_at": entry.get("started_at"),
        "completed_at": entry.get("completed_at"),
        **asdict(derived),
        "progress": progress(ref.run_dir),
        "final_loss": entry.get("final_loss"),
        "checkpoint_path": entry.get("checkpoint_path"),
        "log": entry.get("log"),
        "slurm_job_id": entry.get("slurm_job_id"),
        "slurm_nodes": entry.get("slurm_nodes"),
        "error": entry.get("error"),
    }
    return out


def reconcile(root: Path, index_path: Path | None = None, **kw: Any) -> list[dict[str, Any]]:
    """Record derived terminal states (crashed, ...) for entries that still say queued/running."""
    index_path = index_path or Path(root) / INDEX_PATH
    changed = []
    for entry in run_index.read_entries(index_path):
        if entry.get("status") not in ACTIVE_STATUSES:
            continue
        ref = RunRef(entry_run_dir(Path(root), entry), entry, Path(root))
        derived = derive_status(ref, **kw)
        if derived.status in TERMINAL_STATUSES:
            run_index.update_entry(
                index_path,
                entry["id"],
                status=derived.status,
                error=f"reconciled by sft status: {derived.reason}",
            )
            changed.append(
                {"id": entry["id"], "from": entry["status"], "to": derived.status, "reason": derived.reason}
            )
    return changed


def list_runs(
    root: Path,
    status: str | None = None,
    variant: str | None = None,
    data: str | None = None,
    index_path: Path | None = None,
    **kw: Any,
) -> list[dict[str, Any]]:
    """Index entries newest first, each with its derived status, filtered."""
    rows = []
    for entry in reversed(run_index.read_entries(index_path or Path(root) / INDEX_PATH)):
        if variant is not None and (entry.get("variant") or "") != variant:
            continue
        if data is not None and entry.get("data_name") != data:
            continue
        ref = RunRef(entry_run_dir(Path(root), entry), entry, Path(root))
        derived = derive_status(ref, **kw)
        if status is not None and derived.status != status:
            continue
        prog = progress(ref.run_dir) if derived.status in ACTIVE_STATUSES else {}
        rows.append(
            {
                "id": entry["id"],
                "status": derived.status,
                "recorded_status": entry.get("status"),
                "variant": entry.get("variant"),
                "data_name": entry.get("data_name"),
                "run_dir": entry.get("run_dir"),
                "started_at": entry.get("started_at"),
                "completed_at": entry.get("completed_at"),
                "final_loss": entry.get("final_loss"),
                "step": prog.get("step"),
                "total_steps": prog.get("total_steps"),
                "eta": prog.get("eta"),
            }
        )
    return rows
