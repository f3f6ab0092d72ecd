"""profiles/slurm on a cluster WITH accounting (slurmdbd), single node in the host network."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from sftpipe.slurm import env as slurm_env

from .conftest import Cluster
from .test_slurm_cluster import PROFILE, WORKFLOW

# Opt-in (installs MariaDB + slurmdbd): `make test-accounting`. The default suite proves the profile never
# hangs WITHOUT accounting, which is what clusters lacking slurmdbd need.
pytestmark = [pytest.mark.cluster, pytest.mark.accounting]


def test_profile_with_account_on_accounting_cluster(
    slurm_cluster_accounting: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("slurm_acct")
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(WORKFLOW), "--profile", str(PROFILE),
        "--directory", str(workdir), "--verbose", "--slurm-init-seconds-before-status-checks", "2",
        "--seconds-between-status-checks", "2", "--latency-wait", "5", "--config", 'targets=["gpu_once.txt"]',
    ]  # fmt: skip
    env = {**os.environ, "SFTPIPE_SLURM_ACCOUNT": "sftpipe", "SFTPIPE_SLURM_PARTITION": "debug"}
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    print(f"\n[timing] accounting cluster up {slurm_cluster_accounting.up_seconds:.1f}s; "
          f"1-job workflow {time.monotonic() - t0:.1f}s")  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    sbatch = next(ln for ln in log.splitlines() if ln.startswith("sbatch call:"))
    assert " -A sftpipe " in sbatch and " -p debug " in sbatch
    assert "command=squeue" in log and "command=sacct" not in log
    cvd = next(ln for ln in (workdir / "gpu_once.txt").read_text().splitlines() if ln.startswith("RULE CVD="))
    assert len(cvd.split("=", 1)[1].split(",")) == 2


def test_sacct_knows_finished_jobs(slurm_cluster_accounting: Cluster) -> None:
    proc = subprocess.run(
        ["sbatch", "--parsable", "--wait", "-A", "sftpipe", "-o", "/dev/null", "--wrap", "exit 4"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    job_id = proc.stdout.strip()
    assert job_id.isdigit(), proc.stderr
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "Account,State,ExitCode"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert out == ["sftpipe|FAILED|4:0"]
    assert slurm_env.slurm_job_state(job_id) == "failed"
