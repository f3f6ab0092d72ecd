"""Run status and `sft stop` against a real SLURM cluster (tests/cluster/slurm_cluster.sh)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from sftpipe.cli import main
from sftpipe.runs import index as run_index
from sftpipe.runs import status as run_status
from sftpipe.runs.store import Heartbeat, RunStore
from sftpipe.slurm import env as slurm_env

from tests.unit.runs.run_files import add_entry, write_run_record

pytestmark = pytest.mark.cluster


def _sbatch(*args: str) -> str:
    proc = subprocess.run(
        ["sbatch", "--parsable", "-o", "/dev/null", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def _wait_derived(root, rid, want: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = run_status.derive_status(run_status.resolve_run(root, rid)).status
        if status == want or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def test_queued_job_is_cancelled_by_stop(slurm_cluster, tmp_path, capsys):
    job = _sbatch("--begin=now+1hour", "--wrap", "true")
    try:
        rid = add_entry(tmp_path, tmp_path / "artifacts/model/q", status="queued", slurm_job_id=job)
        assert run_status.derive_status(run_status.resolve_run(tmp_path, rid)).status == "queued"
        assert main(["stop", rid, "--root", str(tmp_path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["action"] == "cancelled queued SLURM job"
        assert run_index.find_entry(tmp_path / "artifacts/index.yaml", rid)["status"] == "stopped"
        deadline = time.monotonic() + 60
        while slurm_env.slurm_job_state(job) != "cancelled":
            assert time.monotonic() < deadline
            time.sleep(0.5)
    finally:
        subprocess.run(["scancel", job], check=False)


def test_running_job_then_cancelled_and_failed_jobs(slurm_cluster, tmp_path):
    job = _sbatch("--wrap", "sleep 120")
    failing = _sbatch("--wrap", "exit 3")
    try:
        run = tmp_path / "artifacts/model/r"
        rid = add_entry(tmp_path, run, slurm_job_id=job)
        write_run_record(run, rid, 4242, host="node1")  # the launcher lives on a compute node
        Heartbeat(RunStore(run)).beat()
        assert _wait_derived(tmp_path, rid, "running") == "running"
        # the stop request goes to the run directory; the job keeps running until the launcher acts
        assert main(["stop", rid, "--root", str(tmp_path)]) == 0
        assert (run / ".sft_stop.json").is_file()
        assert slurm_env.slurm_job_state(job) == "running"
        subprocess.run(["scancel", job], check=True)  # ended outside the pipeline: nothing recorded
        assert _wait_derived(tmp_path, rid, "stopped") == "stopped"

        rid2 = add_entry(tmp_path, tmp_path / "artifacts/model/f", slurm_job_id=failing)
        assert _wait_derived(tmp_path, rid2, "crashed") == "crashed"
        changed = {c["id"]: c["to"] for c in run_status.reconcile(tmp_path)}
        assert changed == {rid: "stopped", rid2: "crashed"}
    finally:
        subprocess.run(["scancel", job, failing], check=False)
