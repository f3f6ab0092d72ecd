"""The training processes: torchrun command line, their environment, console tee, and signal forwarding.

A first SIGTERM/SIGINT/SIGUSR1 to the launcher becomes a stop request (every rank checkpoints, then exits);
a second signal, or no exit within SFT_STOP_GRACE_S, escalates to SIGTERM of the process group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from sftpipe.config import RunConfig
from sftpipe.lf.trackers import tracker_env
from sftpipe.runs.store import RunStore
from sftpipe.slurm import launch as slurm_launch
from sftpipe.training import fail_fast

ESCALATE_AFTER_S = float(os.environ.get("SFT_STOP_GRACE_S", "900"))
SIGNAL_REASONS = {signal.SIGTERM: "interrupted", signal.SIGINT: "interrupted", signal.SIGUSR1: "timeout"}
STOP_FILE_ENV = "SFT_STOP_FILE"  # read by sftpipe.training.lf_entry in every rank
# Snakemake exports these as the job's `threads` (for the whole job); torchrun hands them to every rank unchanged.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def free_port() -> int:
    """A free local TCP port for a single-node rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_executable(cfg: RunConfig) -> list[str]:
    """torchrun of the locked environment, else this interpreter's torch.distributed.run."""
    env_bin = cfg.root / cfg.data["meta_info"]["environment"]["sft_uv"] / "bin" / "torchrun"
    if env_bin.exists():
        return [str(env_bin)]
    return [sys.executable, "-m", "torch.distributed.run"]


def launch_env(cfg: RunConfig, stop_file: Path) -> dict[str, str]:
    """Environment for the training processes: secrets only here, never in a file."""
    env = dict(os.environ)
    env["FORCE_TORCHRUN"] = "1"
    env[STOP_FILE_ENV] = str(stop_file)
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
    env.update(tracker_env(cfg.experiment, (cfg.root / cfg.run_dir).resolve(), env))  # e.g. MLflow's store
    env.update(fail_fast.probe_env(cfg.infrastructure, cfg.training))
    if cfg.infrastructure["accelerator"] == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        env.setdefault("DS_ACCELERATOR", "cpu")
    env.update(split_thread_budget(env, cfg.infrastructure["n_gpus_per_node"]))
    return env


def split_thread_budget(env: dict[str, str], ranks_per_node: int) -> dict[str, str]:
    """The job's thread count (THREAD_VARS, as Snakemake sets them) divided between the ranks of a node.

    Unsplit, each of N ranks ran the whole job's threads: 2 ranks x 2 threads on the 2-core CPU demo gave 0.7x
    the tokens/s of bare torchrun, which (variable unset) gives each rank 1 thread. Unset stays unset.
    """
    out = {}
    for var in THREAD_VARS:
        value = env.get(var, "")
        if value.isdigit():
            out[var] = str(max(1, int(value) // max(1, ranks_per_node)))
    return out


def torchrun_command(
    cfg: RunConfig, lf_yaml: Path, master_addr: str, master_port: int, node_rank: int | None = 0
) -> list[str]:
    """node_rank None: left out, for sftpipe.slurm.launch node-exec to add per node."""
    infra = cfg.infrastructure
    rank = [] if node_rank is None else [f"--node_rank={node_rank}"]
    return [
        *torchrun_executable(cfg),
        f"--nnodes={infra['n_nodes']}",
        *rank,
        f"--nproc_per_node={infra['n_gpus_per_node']}",
        f"--master_addr={master_addr}",
        f"--master_port={master_port}",
        "-m",
        "sftpipe.training.lf_entry",
        str(lf_yaml),
    ]


class StopForwarder:
    """First signal → stop file (graceful, every rank checkpoints); second or timeout → SIGTERM the group."""

    def __init__(self, store: RunStore, child: subprocess.Popen, slurm_job_id: str | None = None):
        self.store, self.child, self.reason, self.count = store, child, None, 0
        self.slurm_job_id = slurm_job_id
        self._timer: threading.Timer | None = None

    def handle(self, signum, _frame) -> None:
        self.count += 1
        if self.count == 1:
            self.reason = SIGNAL_REASONS.get(signum, "interrupted")
            if signum == signal.SIGTERM and self.slurm_job_id:  # SLURM's SIGTERM: preemption or scancel
                self.reason = slurm_launch.signal_reason(self.slurm_job_id)
            self.store.request_stop(self.reason, f"signal {signal.Signals(signum).name}")
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


def tee(proc: subprocess.Popen, console_log: Path) -> None:
    with open(console_log, "ab") as log:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            log.write(line)
            log.flush()
            sys.stdout.buffer.write(line)
            sys.stdout.flush()


def last_error_lines(console_log: Path, n: int = 15) -> str:
    try:
        lines = console_log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    markers = ("Error", "error:", "Traceback", "Exception", "Killed", "OOM", "exitcode")
    hits = [i for i, line in enumerate(lines) if any(m in line for m in markers)]
    end = (hits[-1] + 1) if hits else len(lines)
    return "\n".join(lines[max(0, end - n) : end])
