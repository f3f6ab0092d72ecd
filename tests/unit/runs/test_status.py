"""Status derivation, live progress, run resolution, reconcile, `sft status` / `sft runs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sftpipe.cli import main
from sftpipe.cli.runs import format_report
from sftpipe.runs import index as run_index
from sftpipe.runs import status as run_status
from sftpipe.runs.store import Heartbeat, RunStore

from tests.unit.runs.run_files import add_entry, log_lines, write_checkpoint, write_log, write_run_record

LOSSES = {1: 3.0, 2: 2.8, 3: 2.5, 4: 2.4, 5: 2.2}
EVALS = {2: 2.9, 4: 2.6}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def root(tmp_path):
    (tmp_path / "artifacts" / "model").mkdir(parents=True)
    return tmp_path


def test_parse_duration():
    assert run_status.parse_duration("0:12:34") == 754
    assert run_status.parse_duration("1 day, 2:00:01") == 93601
    assert run_status.parse_duration("2 days, 0:00:00") == 172800
    assert run_status.parse_duration("soon") is None and run_status.parse_duration(None) is None


def test_progress_dedupes_resumed_steps_and_computes_rates(root):
    run = root / "artifacts/model/r"
    write_log(run, log_lines({k: v for k, v in LOSSES.items() if k <= 3}, {2: 2.9}, total=10))
    # resumed from checkpoint-2: step 3 logged again (different loss), then 4 and 5
    write_log(run, log_lines({3: 2.45, 4: 2.4, 5: 2.2}, {4: 2.6}, total=10), append=True)
    write_checkpoint(run, 2, LOSSES, EVALS, 10)
    write_checkpoint(run, 4, LOSSES, EVALS, 10, complete=False)
    p = run_status.progress(run)
    assert (p["step"], p["total_steps"], p["percentage"]) == (5, 10, 50.0)
    assert p["loss"] == 2.2 and p["eval_loss"] == 2.6 and p["eval_step"] == 4
    assert p["elapsed_s"] == 10 and p["eta_s"] == 10 and p["eta"] == "0:00:10"
    assert p["tokens_per_second"] == 256.0  # 5 * 512 tokens / 10 s
    # EMA over the deduplicated losses 3.0, 2.8, 2.45 (the resumed value), 2.4, 2.2
    from sftpipe.runs.metrics import ema

    assert p["loss_ema"] == pytest.approx(ema([3.0, 2.8, 2.45, 2.4, 2.2], run_status.EMA_WEIGHT)[-1])
    assert p["latest_checkpoint_step"] == 2  # checkpoint-4 is incomplete


def test_progress_of_a_run_without_log(root):
    p = run_status.progress(root / "artifacts/model/none")
    assert p["step"] is None and p["latest_checkpoint"] is None and p["warnings"] == []


def test_running_with_live_pid_and_crashed_with_dead_pid(root):
    live = root / "artifacts/model/live"
    rid = add_entry(root, live)
    write_run_record(live, rid, os.getpid())
    dead = root / "artifacts/model/dead"
    rid2 = add_entry(root, dead)
    write_run_record(dead, rid2, dead_pid())
    assert run_status.derive_status(run_status.resolve_run(root, rid)).status == "running"
    d = run_status.derive_status(run_status.resolve_run(root, rid2))
    assert d.status == "crashed" and d.recorded_status == "running" and "is gone" in d.reason


def test_zombie_and_reused_pids_are_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    stat = Path(f"/proc/{proc.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert run_status.pid_alive(proc.pid) is False  # exited, not yet reaped
    proc.wait()
    assert run_status.pid_alive(os.getpid()) is True
    assert run_status.pid_alive(os.getpid(), started_at=time.time() - 3600) is False  # started after the run


def test_requested_stop_then_gone_is_stopped(root):
    run = root / "artifacts/model/s"
    rid = add_entry(root, run)
    write_run_record(run, rid, dead_pid())
    (run / "stop_reason.json").write_text(json.dumps({"reason": "stop_file", "signal": None, "step": 4}))
    assert run_status.derive_status(run_status.resolve_run(root, rid)).status == "stopped"
    (run / "stop_reason.json").write_text(json.dumps({"reason": "signal", "signal": "SIGUSR1", "step": 4}))
    assert run_status.derive_status(run_status.resolve_run(root, rid)).status == "timeout"


def test_other_host_uses_heartbeat(root):
    run = root / "artifacts/model/remote"
    rid = add_entry(root, run)
    write_run_record(run, rid, 12345, host="gpu-node-17")
    ref = run_status.resolve_run(root, rid)
    assert run_status.derive_status(ref).status == "unknown"  # no heartbeat: cannot tell
    Heartbeat(RunStore(run), interval_s=15).beat()
    assert run_status.derive_status(ref).status == "running"
    later = time.time() + run_status.STALE_AFTER_S + 1
    d = run_status.derive_status(ref, now=later)
    assert d.status == "crashed" and "old" in d.reason


def test_slurm_state_decides_for_slurm_runs(root):
    run = root / "artifacts/model/slurm"
    rid = add_entry(root, run, status="queued", slurm_job_id="4242")
    ref = run_status.resolve_run(root, rid)
    assert run_status.derive_status(ref, slurm_state="queued").status == "queued"
    assert run_status.derive_status(ref, slurm_state="timeout").status == "timeout"
    assert run_status.derive_status(ref, slurm_state="preempted").status == "preempted"
    assert run_status.derive_status(ref, slurm_state="oom").status == "crashed"


def test_status_of_a_slurm_run_names_its_job_and_nodes(root):
    run = root / "artifacts/model/slurm2"
    rid = add_entry(root, run, status="running", slurm_job_id="77", slurm_nodes="node1,node2")
    report = run_status.run_report(run_status.resolve_run(root, rid), slurm_state="queued")
    assert report["slurm_nodes"] == "node1,node2" and report["status"] == "queued"
    assert "slurm      job 77 queued on node1,node2" in format_report(report)


def test_terminal_entries_are_reported_as_recorded(root):
    run = root / "artifacts/model/done"
    rid = add_entry(root, run, status="completed", final_loss=1.5)
    write_run_record(run, rid, dead_pid())
    assert run_status.derive_status(run_status.resolve_run(root, rid)).status == "completed"


def test_derivation_never_writes_and_reconcile_records_crashed(root):
    run = root / "artifacts/model/dead"
    rid = add_entry(root, run)
    write_run_record(run, rid, dead_pid())
    index = root / "artifacts/index.yaml"
    before = index.read_bytes()
    assert main(["status", rid, "--root", str(root), "--json"]) == 0
    assert main(["runs", "--root", str(root)]) == 0
    assert index.read_bytes() == before
    changed = run_status.reconcile(root)
    assert changed == [{"id": rid, "from": "running", "to": "crashed", "reason": changed[0]["reason"]}]
    entry = run_index.find_entry(index, rid)
    assert entry["status"] == "crashed" and entry["completed_at"] and "reconciled" in entry["error"]
    assert run_status.reconcile(root) == []


def test_resolve_run_by_id_name_dir_and_default(root):
    a, b = root / "artifacts/model/alpha", root / "artifacts/model/beta"
    ida, idb = add_entry(root, a, status="completed"), add_entry(root, b, status="failed")
    assert run_status.resolve_run(root, None).run_id == idb
    assert run_status.resolve_run(root, ida).run_dir == a
    assert run_status.resolve_run(root, "alpha").run_id == ida
    a.mkdir()
    assert run_status.resolve_run(root, str(a)).run_id == ida
    assert run_status.resolve_run(root, "artifacts/model/alpha").run_id == ida
    with pytest.raises(run_status.RunNotFound, match="neither a run id"):
        run_status.resolve_run(root, "gamma")


def test_runs_newest_first_with_filters(root, capsys):
    add_entry(root, root / "artifacts/model/a", status="completed", variant="lr_low")
    add_entry(root, root / "artifacts/model/b", status="failed", data_name="other")
    run = root / "artifacts/model/c"
    rid = add_entry(root, run)
    write_run_record(run, rid, os.getpid())
    write_log(run, log_lines(LOSSES, EVALS, total=10))
    rows = run_status.list_runs(root)
    assert [r["id"] for r in rows] == ["run_003", "run_002", "run_001"]
    assert rows[0]["status"] == "running" and rows[0]["step"] == 5 and rows[0]["total_steps"] == 10
    assert [r["id"] for r in run_status.list_runs(root, status="failed")] == ["run_002"]
    assert [r["id"] for r in run_status.list_runs(root, variant="lr_low")] == ["run_001"]
    assert [r["id"] for r in run_status.list_runs(root, data="other")] == ["run_002"]
    capsys.readouterr()
    assert main(["runs", "--root", str(root), "--status", "running", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["run_003"]
    assert main(["status", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "step 5/10 (50.0%)" in out and "running" in out and "ETA 0:00:10" in out


def test_status_of_unknown_run_is_an_error(root, capsys):
    add_entry(root, root / "artifacts/model/a", status="completed")
    assert main(["status", "nope", "--root", str(root), "--json"]) == 1
    assert "neither a run id" in json.loads(capsys.readouterr().out)["error"]
