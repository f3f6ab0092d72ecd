"""`sft stop`: the stop request for an active run, refusal for ended ones, --wait."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from sftpipe.cli import main
from sftpipe.paths import STOP_REQUEST as STOP_FILE
from sftpipe.runs import index as run_index
from sftpipe.runs.status import resolve_run
from sftpipe.training import stop

from tests.unit.runs.run_files import add_entry, write_run_record


@pytest.fixture
def running(tmp_path):
    run = tmp_path / "artifacts/model/r"
    rid = add_entry(tmp_path, run)
    write_run_record(run, rid, os.getpid())
    return tmp_path, rid, run


def test_stop_writes_the_request(running, capsys):
    root, rid, run = running
    assert main(["stop", rid, "--root", str(root), "--json"]) == 0
    action = json.loads(capsys.readouterr().out)
    request = json.loads((run / STOP_FILE).read_text())
    assert request["reason"] == "stopped" and "sft stop by" in request["detail"] and request["requested_at"]
    assert action["action"] == "stop requested" and action["stop_file"] == str(run / STOP_FILE)
    assert (
        run_index.find_entry(root / "artifacts/index.yaml", rid)["status"] == "running"
    )  # the run records its end


def test_stop_refuses_an_ended_run(tmp_path, capsys):
    rid = add_entry(tmp_path, tmp_path / "artifacts/model/done", status="completed")
    assert main(["stop", rid, "--root", str(tmp_path)]) == 1
    assert "is completed" in capsys.readouterr().err
    assert not (tmp_path / "artifacts/model/done" / STOP_FILE).exists()


def test_wait_returns_the_final_status(running):
    root, rid, _ = running
    ref = resolve_run(root, rid)
    stop.request_run_stop(ref)
    assert stop.wait_for_end(ref, timeout_s=0.3, poll_s=0.1) == "running"

    def launcher_records_end():
        time.sleep(0.3)
        run_index.update_entry(root / "artifacts/index.yaml", rid, status="stopped", exit_code=75)

    t = threading.Thread(target=launcher_records_end)
    t.start()
    assert stop.wait_for_end(ref, timeout_s=30, poll_s=0.05) == "stopped"
    t.join()


def test_slurm_signal_needs_scancel(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(stop.StopError, match="scancel not found"):
        stop.signal_slurm_job("123", "USR1")
