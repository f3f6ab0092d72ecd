"""How the launcher records the end of a run, for every way a run ends (training.train.finalize), and how
`sft status` derives the end of a run whose launcher vanished without recording it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sftpipe import paths
from sftpipe.config import load
from sftpipe.runs import index as run_index
from sftpipe.runs.status import RunRef, derive_status
from sftpipe.runs.store import RunStore
from sftpipe.training.run_dir import Prepared
from sftpipe.training.train import finalize, start_records

from tests.project import make_project


@pytest.fixture
def attempt(tmp_path):
    root = make_project(tmp_path / "p")
    cfg = load("config/config.yaml", root)
    store = RunStore(root / cfg.run_dir)
    store.dir.mkdir(parents=True)
    return start_records(cfg, store, Prepared(), root / paths.INDEX_PATH, None)


def _stop_reason(store: RunStore, requested: str | None = None, signal: str | None = None) -> None:
    reason = (
        {"reason": "signal", "signal": signal}
        if signal
        else {"reason": "stop_file", "requested": {"reason": requested}}
    )
    store.write_stop_reason({**reason, "step": 2, "checkpoint": str(store.dir / "checkpoint-2")})


@pytest.mark.parametrize(
    ("case", "exit_code", "signal_reason", "status"),
    [
        ("exit 0 after LF finished", 0, None, "completed"),
        ("exit 0 without train_results.json", 0, None, "failed"),
        ("non-zero exit", 1, None, "failed"),
        ("SIGTERM to the launcher", 75, "interrupted", "interrupted"),
        ("sft stop (stop request honoured)", 75, None, "stopped"),
        ("SLURM time-limit guard", 75, None, "timeout"),
        ("SLURM preemption", 75, "preempted", "preempted"),
        ("SIGUSR1 straight to the ranks", 75, None, "timeout"),
    ],
)
def test_finalize_records_every_ending(attempt, case, exit_code, signal_reason, status):
    store = attempt.store
    if case == "exit 0 after LF finished":
        (store.dir / paths.TRAIN_RESULTS).write_text(json.dumps({"train_loss": 1.25}))
    elif case == "sft stop (stop request honoured)":
        _stop_reason(store, "stopped")
    elif case == "SLURM time-limit guard":
        _stop_reason(store, "timeout")
    elif case == "SIGUSR1 straight to the ranks":
        _stop_reason(store, signal="SIGUSR1")
    elif signal_reason:
        _stop_reason(store, signal_reason)
    store.request_stop("stopped", "left over")
    attempt.console_log.write_text("step 1\nTraceback (most recent call last):\nRuntimeError: boom\n")

    fields = finalize(attempt, exit_code, signal_reason)

    assert fields["status"] == status, case
    entry = run_index.find_entry(attempt.index_path, attempt.run_id)
    assert entry["status"] == status and entry["exit_code"] == exit_code and entry["completed_at"]
    assert entry["final_loss"] == (1.25 if status == "completed" else None)
    if status == "failed":
        assert "RuntimeError: boom" in entry["error"]
    record = store.read_run_record()
    assert record["status"] == status and record["ended_at"]
    ended = store.read_events()[-1]
    assert ended["message"] == "run ended" and ended["data"]["status"] == status
    assert store.read_stop_request() is None  # a request never outlives the attempt it was aimed at
    assert (store.dir / paths.CHECKPOINT_INDEX).is_file()


def test_a_vanished_launcher_is_derived_as_crashed(attempt):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = attempt.store.read_run_record()
    attempt.store.write_run_record({**record, "pid": dead.pid})
    entry = run_index.find_entry(attempt.index_path, attempt.run_id)
    derived = derive_status(RunRef(attempt.store.dir, entry, attempt.cfg.root))
    assert entry["status"] == "running" and derived.status == "crashed"
    _stop_reason(attempt.store, "stopped")  # ... unless it had stopped on request
    assert derive_status(RunRef(attempt.store.dir, entry, attempt.cfg.root)).status == "stopped"
