"""`sft stop RUN`: ask a run to save a complete checkpoint and exit (status `stopped`).

The mechanism is the run directory's stop file (RunStore.request_stop, reason "stopped"): every rank
of sftpipe.training.lf_entry polls it, agrees on a step, checkpoints and exits; it works for local and SLURM
runs alike because the run directory is on the shared filesystem. A SLURM job still PENDING has no
process to read a file, so it is cancelled with scancel and recorded `stopped` right away.
`signal_slurm_job` is the one place that sends SLURM signals (`scancel --signal=SIG --batch`).
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from typing import Any

from sftpipe.paths import INDEX_PATH
from sftpipe.runs import index as run_index
from sftpipe.runs.ending import ACTIVE_STATUSES
from sftpipe.runs.status import RunRef, derive_status
from sftpipe.runs.store import RunStore


class StopError(RuntimeError):
    """The run cannot be stopped (not active, or SLURM refused)."""


def signal_slurm_job(job_id: str, signal: str | None = None, batch_only: bool = True) -> None:
    """`scancel [--signal=SIG [--batch]] JOB`: without a signal the job is cancelled."""
    exe = shutil.which("scancel")
    if exe is None:
        raise StopError("scancel not found on PATH: cannot reach SLURM from this host")
    cmd = [exe]
    if signal:
        cmd.append(f"--signal={signal}")
        if batch_only:
            cmd.append("--batch")  # only the batch step's launcher; it turns the signal into a stop request
    cmd.append(str(job_id))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise StopError(f"{' '.join(cmd)} failed (rc={proc.returncode}): {proc.stderr.strip()}")


def request_run_stop(ref: RunRef, detail: str | None = None, **derive_kw: Any) -> dict[str, Any]:
    """Write the stop request for an active run (or cancel a queued SLURM job); return what was done."""
    derived = derive_status(ref, **derive_kw)
    if derived.status not in ACTIVE_STATUSES:
        raise StopError(f"run {ref.name} is {derived.status} ({derived.reason}); nothing to stop")
    detail = detail or f"sft stop by {getpass.getuser()}@{socket.gethostname()}"
    job = (ref.entry or {}).get("slurm_job_id")
    action: dict[str, Any] = {
        "run_id": ref.run_id,
        "run_dir": str(ref.run_dir),
        "status_before": derived.status,
    }
    if job and derived.status == "queued":
        signal_slurm_job(job)
        if ref.run_id:
            run_index.update_entry(
                ref.root / INDEX_PATH,
                ref.run_id,
                status="stopped",
                error=f"cancelled while queued ({detail})",
            )
        action.update(action="cancelled queued SLURM job", slurm_job_id=job)
        return action
    store = RunStore(ref.run_dir)
    store.request_stop("stopped", detail)
    action.update(action="stop requested", stop_file=str(store.stop_request_path))
    if job:
        action["slurm_job_id"] = job
    return action


def wait_for_end(ref: RunRef, timeout_s: float | None = None, poll_s: float = 2.0, **derive_kw: Any) -> str:
    """Poll until the run is no longer queued/running; return its final status (or 'running' on timeout)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        entry = run_index.find_entry(ref.root / INDEX_PATH, ref.run_id) if ref.run_id else None
        current = RunRef(ref.run_dir, entry, ref.root)
        status = derive_status(current, **derive_kw).status
        if status not in ACTIVE_STATUSES:
            return status
        if deadline is not None and time.monotonic() >= deadline:
            return status
        time.sleep(poll_s)
