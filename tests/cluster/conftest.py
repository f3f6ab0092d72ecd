"""Session fixture: a real 2-node SLURM cluster (tests/cluster/slurm_cluster.sh) for @pytest.mark.cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CLUSTER_SH = Path(__file__).with_name("slurm_cluster.sh")
STATE_DIR = Path(os.environ.get("SFTPIPE_SLURM_DIR", "/tmp/sftpipe-slurm"))


@dataclass(frozen=True)
class Cluster:
    nodes: int
    gpus_per_node: int
    up_seconds: float


def _unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "cluster tests need root (they install slurm, write /etc/slurm and create network namespaces)"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "slurm is not installed and apt-get is unavailable to install it"
    return None


def _ctld_running() -> bool:
    pid_file = STATE_DIR / "run" / "slurmctld.pid"
    try:
        os.kill(int(pid_file.read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    reason = _unavailable_reason()
    if reason:
        pytest.skip(reason)
    was_running = _ctld_running()
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(CLUSTER_SH), "up", "--nodes", "2", "--gpus", "4"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"cluster did not come up:\n{proc.stdout}\n{proc.stderr}"
    yield Cluster(nodes=2, gpus_per_node=4, up_seconds=time.monotonic() - t0)
    if not was_running:  # leave a cluster someone else started alone
        down = subprocess.run(
            ["bash", str(CLUSTER_SH), "down"], capture_output=True, text=True, timeout=120, check=False
        )
        assert down.returncode == 0, down.stderr
