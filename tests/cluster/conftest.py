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


def _up(*args: str) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(CLUSTER_SH), "up", *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"cluster did not come up:\n{proc.stdout}\n{proc.stderr}"
    return time.monotonic() - t0


@pytest.fixture(scope="session")
def cluster_session() -> Iterator[None]:
    """Skips without root/apt; at the end takes down the cluster unless it ran before the session."""
    reason = _unavailable_reason()
    if reason:
        pytest.skip(reason)
    was_running = _ctld_running()
    yield
    if not was_running:  # leave a cluster someone else started alone
        down = subprocess.run(
            ["bash", str(CLUSTER_SH), "down"], capture_output=True, text=True, timeout=120, check=False
        )
        assert down.returncode == 0, down.stderr


# Module-scoped: `up` restarts the cluster when the requested shape differs, so each test module
# gets its own shape whatever ran before it.
@pytest.fixture(scope="module")
def slurm_cluster(cluster_session: None) -> Cluster:
    """Two nodes in their own network namespaces, 4 fake GPUs each, no accounting."""
    return Cluster(nodes=2, gpus_per_node=4, up_seconds=_up("--nodes", "2", "--gpus", "4"))


@pytest.fixture(scope="module")
def slurm_cluster_accounting(cluster_session: None) -> Cluster:
    """One node in the host network, slurmdbd + MariaDB accounting with account `sftpipe`."""
    return Cluster(nodes=1, gpus_per_node=4, up_seconds=_up("--nodes", "1", "--gpus", "4", "--accounting"))
