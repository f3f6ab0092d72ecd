"""The SLURM side of the train launcher (sftpipe.training.train): how to start torchrun inside an allocation,
when to stop before the time limit, and how to hand the job back to SLURM for a requeue.

* Launch: one node → plain torchrun with a job-derived MASTER_PORT; n_nodes > 1 → one torchrun per
  node through `srun` (slurm_env.node_launch_command), each started by `python -m sftpipe.slurm.launch
  node-exec`, which adds this node's --node_rank and the socket interface for gloo/NCCL.
* Time limit: SLURM's --signal cannot reach the launcher cleanly (it hits the executor plugin's
  step and torchrun too), so a guard thread reads the job's time left (`squeue -o %L`) and, at
  infrastructure.stop_before_limit_minutes before the end, writes the run's stop file with reason
  `timeout`: every rank saves a complete checkpoint and exits. The launcher then requeues the job
  (`scontrol requeue`, same job id) so the next attempt resumes from that checkpoint; SLURM is the
  single owner of retries and infrastructure.max_requeues caps them.
* World size: DeepSpeed ZeRO checkpoints are sharded per rank; resuming with another
  n_nodes × n_gpus_per_node cannot load them, so that is refused up front with the ways out.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftpipe.config import RunConfig
from sftpipe.slurm import env as slurm_env
from sftpipe.util.timefmt import parse_duration

NETWORK_INTERFACE_ENV = "SFT_NETWORK_INTERFACE"  # node-exec: configured interface ("" = auto)
ACCELERATOR_ENV = "SFT_ACCELERATOR"
GUARD_POLL_S = 60.0  # how often the guard re-reads the time left (a limit may be changed by an admin)


@dataclass(frozen=True)
class SlurmJob:
    """The allocation a training launch runs in."""

    job_id: str
    nodes: tuple[str, ...]
    master_addr: str
    master_port: int
    restart_count: int
    time_limit: str

    @property
    def nnodes(self) -> int:
        return len(self.nodes)

    def record(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "nodes": list(self.nodes),
            "master_addr": self.master_addr,
            "master_port": self.master_port,
            "restart_count": self.restart_count,
            "time_limit": self.time_limit,
        }


def current_job(cfg: RunConfig, env: Mapping[str, str] | None = None) -> SlurmJob | None:
    """The SLURM job this launcher runs in, or None outside SLURM. Checks the node count."""
    env = os.environ if env is None else env
    if not slurm_env.in_allocation(env):
        return None
    if shutil.which("scontrol") is None or shutil.which("srun") is None:
        # e.g. inside a container that inherited SLURM_JOB_ID but has no SLURM client
        if cfg.infrastructure["n_nodes"] > 1:
            raise slurm_env.SlurmEnvError("n_nodes > 1 needs scontrol and srun on PATH inside the SLURM job")
        print(
            "[sft] SLURM_JOB_ID is set but scontrol/srun are not on PATH: launching as outside SLURM "
            "(no time-limit guard, no requeue)",
            flush=True,
        )
        return None
    info = slurm_env.allocation_info(env)
    want = cfg.infrastructure["n_nodes"]
    if info.nnodes != want:
        raise slurm_env.SlurmEnvError(
            f"infrastructure.n_nodes is {want} but SLURM job {info.job_id} has {info.nnodes} node(s) "
            f"({','.join(info.nodes)}): submit with --nodes={want} (the train rule's `nodes` resource)"
        )
    record = slurm_env.job_record(info.job_id)
    port = cfg.infrastructure["master_port"] or slurm_env.job_master_port(info.job_id)
    addr = slurm_env.master_addr(info) if info.nnodes > 1 else "127.0.0.1"
    restarts = record.get("Restarts", "0")
    return SlurmJob(
        job_id=info.job_id,
        nodes=info.nodes,
        master_addr=addr,
        master_port=port,
        restart_count=int(restarts) if restarts.isdigit() else 0,
        time_limit=record.get("TimeLimit", ""),
    )


def launch_command(torchrun_cmd: Sequence[str], job: SlurmJob) -> list[str]:
    """torchrun as is on one node; on several, srun → node-exec → torchrun once per node.

    `torchrun_cmd` must not carry --node_rank: node-exec adds each node's own.
    """
    if job.nnodes == 1:
        return list(torchrun_cmd)
    per_node = [sys.executable, "-m", "sftpipe.slurm.launch", "node-exec", "--", *torchrun_cmd]
    return slurm_env.node_launch_command(per_node, job.nnodes)


def launch_environment(cfg: RunConfig, job: SlurmJob, base: Mapping[str, str]) -> dict[str, str]:
    """Environment for launch_command: rendezvous variables, and for srun the job-level SLURM view."""
    infra = cfg.infrastructure
    env = dict(base)
    env.update(
        MASTER_ADDR=job.master_addr,
        MASTER_PORT=str(job.master_port),
        NNODES=str(job.nnodes),
        NPROC_PER_NODE=str(infra["n_gpus_per_node"]),
    )
    env[NETWORK_INTERFACE_ENV] = infra["network_interface"]
    env[ACCELERATOR_ENV] = infra["accelerator"]
    if job.nnodes == 1:
        env["NODE_RANK"] = "0"
        if infra["network_interface"]:
            _set_interface(env, infra["network_interface"], infra["accelerator"])
        return env
    return slurm_env.srun_environment(env)


# --- per node: `python -m sftpipe.slurm.launch node-exec -- torchrun ...` --------------------------------


def _set_interface(env: dict[str, str], ifname: str, accelerator: str) -> None:
    """Socket interface for gloo (CPU ranks and DeepSpeed's CPU collectives) and NCCL; user values win."""
    env.setdefault("GLOO_SOCKET_IFNAME", ifname)
    if accelerator == "cuda":
        env.setdefault("NCCL_SOCKET_IFNAME", ifname)


def local_address_towards(addr: str) -> str:
    """This host's source address for traffic to `addr` (no packet is sent: UDP connect only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((addr, 9))
        return sock.getsockname()[0]


def interface_of(address: str) -> str | None:
    """The interface holding `address` (`ip -o addr`), None when unknown."""
    if ipaddress.ip_address(address).is_loopback:
        return "lo"
    try:
        out = subprocess.run(
            ["ip", "-o", "addr", "show"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        m = re.match(r"\d+:\s+(\S+)\s+inet6?\s+([^/\s]+)", line)
        if m and m.group(2) == address:
            return m.group(1).split("@")[0]
    return None


def node_exec(torchrun_cmd: Sequence[str], env: dict[str, str]) -> list[str]:
    """Complete one node's torchrun: --node_rank from NODE_RANK, interface variables in `env`."""
    rank = env.get("NODE_RANK") or env.get("SLURM_NODEID")
    if rank is None or not rank.isdigit():
        raise slurm_env.SlurmEnvError("node-exec needs NODE_RANK or SLURM_NODEID (run it under srun)")
    ifname = env.get(NETWORK_INTERFACE_ENV, "")
    if not ifname and "MASTER_ADDR" in env:
        try:
            ifname = interface_of(local_address_towards(env["MASTER_ADDR"])) or ""
        except (OSError, ValueError):
            ifname = ""
    if ifname:
        _set_interface(env, ifname, env.get(ACCELERATOR_ENV, "cuda"))
    cmd = list(torchrun_cmd)
    # before the training module's -m (the last one: torchrun may itself be `python -m torch.distributed.run`)
    at = len(cmd) - 1 - cmd[::-1].index("-m") if "-m" in cmd else len(cmd)
    cmd.insert(at, f"--node_rank={rank}")
    print(
        f"[sft] node {env.get('SLURMD_NODENAME', socket.gethostname())} node_rank={rank} "
        f"master={env.get('MASTER_ADDR')}:{env.get('MASTER_PORT')} "
        f"GLOO_SOCKET_IFNAME={env.get('GLOO_SOCKET_IFNAME', '')}",
        flush=True,
    )
    return cmd


# --- time limit ----------------------------------------------------------------------------------------


def time_left_s(job_id: str) -> float | None:
    """Seconds until SLURM ends the job (None: no limit, or squeue did not answer)."""
    try:
        out = slurm_env._run(["squeue", "-h", "-j", str(job_id), "-o", "%L"]).strip()
    except slurm_env.SlurmEnvError:
        return None
    return parse_duration(out.splitlines()[0]) if out else None


class TimeLimitGuard:
    """Calls `on_limit(seconds_left)` once, `margin_s` before the job's time limit."""

    def __init__(
        self,
        job_id: str,
        margin_s: float,
        on_limit: Callable[[float], None],
        poll_s: float = GUARD_POLL_S,
        time_left: Callable[[str], float | None] = time_left_s,
    ):
        self.job_id, self.margin_s, self.on_limit, self.poll_s = job_id, margin_s, on_limit, poll_s
        self._time_left = time_left
        self._stop = threading.Event()
        self.fired_at_left: float | None = None
        self._thread = threading.Thread(target=self._loop, name="sft-time-limit-guard", daemon=True)

    def start(self) -> TimeLimitGuard:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            left = self._time_left(self.job_id)
            if left is not None and left <= self.margin_s:
                self.fired_at_left = left
                self.on_limit(left)
                return
            wait = self.poll_s if left is None else max(1.0, min(self.poll_s, left - self.margin_s))
            self._stop.wait(wait)


# --- after a timeout: requeue ------------------------------------------------------------------------


def requeue(job: SlurmJob, max_requeues: int) -> tuple[bool, str]:
    """Ask SLURM to rerun this job (same id) unless the cap is reached. Returns (requeued, why)."""
    if job.restart_count >= max_requeues:
        return False, (
            f"not requeued: job {job.job_id} already restarted {job.restart_count} time(s) "
            f"(infrastructure.max_requeues is {max_requeues})"
        )
    try:
        slurm_env._run(["scontrol", "requeue", job.job_id])
    except slurm_env.SlurmEnvError as e:
        return False, f"requeue failed: {e}"
    return True, f"requeued job {job.job_id} (restart {job.restart_count + 1} of at most {max_requeues})"


def signal_reason(job_id: str) -> str:
    """Why SLURM sent SIGTERM: preempted (state PREEMPTED, or already requeued) or plain interrupted."""
    state = slurm_env.slurm_job_state(job_id)
    return "preempted" if state in ("preempted", "queued") else "interrupted"


# --- world size of a resume --------------------------------------------------------------------------


def world_size(cfg: RunConfig) -> int:
    """Total ranks of the run: nodes x GPUs per node."""
    return cfg.infrastructure["n_nodes"] * cfg.infrastructure["n_gpus_per_node"]


def checkpoint_world_size(ckpt: Path) -> int | None:
    """Ranks that wrote a DeepSpeed checkpoint (its ZeRO optimizer shards), None without DeepSpeed."""
    latest = ckpt / "latest"
    if not latest.is_file():
        return None
    shards = list((ckpt / latest.read_text().strip()).glob("*optim_states.pt"))
    return len(shards) or None


def world_change_error(cfg: RunConfig, old_world: Mapping[str, Any], resume_from: Path | None) -> str | None:
    """A clear message when a DeepSpeed run would resume on another world size; None when fine.

    `old_world` is run.json's `world` (written by the launcher; may be empty for older records),
    the checkpoint's shard count is the fallback.
    """
    now = world_size(cfg)
    old = old_world.get("world_size")
    if old is None and resume_from is not None:
        old = checkpoint_world_size(resume_from)
    if old is None or old == now or not cfg.training.get("deepspeed"):
        return None
    return (
        f"run directory {cfg.root / cfg.run_dir} holds an unfinished DeepSpeed run trained on {old} ranks "
        f"(n_nodes={old_world.get('n_nodes', '?')}, n_gpus_per_node={old_world.get('n_gpus_per_node', '?')}); "
        f"this config has {now} ranks (n_nodes={cfg.infrastructure['n_nodes']}, "
        f"n_gpus_per_node={cfg.infrastructure['n_gpus_per_node']}). Its ZeRO checkpoints are sharded per rank "
        "and cannot be resumed on another world size. Either set infrastructure.n_nodes/n_gpus_per_node back "
        "to resume, or start a new run with training.output_dir set to a new name: from the base model, or "
        "from this run's weights after consolidating its last checkpoint (python <checkpoint>/zero_to_fp32.py "
        "<checkpoint> <dir>, then model.model_name_or_path: <dir>; optimizer state and step count start "
        "afresh). The old run directory is left untouched. See docs/slurm.md."
    )


def same_training_except_world(cfg: RunConfig, prior: Mapping[str, Any]) -> bool:
    """True when run.json's training_hash matches this config with the prior world size put back."""
    old_world = prior.get("world") or {}
    if not old_world or "training_hash" not in prior:
        return False
    data = copy.deepcopy(cfg.data)
    infra = data["runtime_info"]["input"]["infrastructure"]
    infra["n_nodes"], infra["n_gpus_per_node"] = old_world["n_nodes"], old_world["n_gpus_per_node"]
    return RunConfig(data, cfg.root).training_hash() == prior["training_hash"]


def world_record(cfg: RunConfig) -> dict[str, int]:
    """The run's world shape as recorded per attempt (compared on resume by `world_change_error`)."""
    infra = cfg.infrastructure
    return {
        "n_nodes": infra["n_nodes"],
        "n_gpus_per_node": infra["n_gpus_per_node"],
        "world_size": world_size(cfg),
    }


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sftpipe.slurm.launch", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_node = sub.add_parser("node-exec", help="run one node's torchrun (started by the launcher's srun)")
    p_node.add_argument("torchrun", nargs=argparse.REMAINDER)
    p_left = sub.add_parser("time-left", help="print the seconds this job has left")
    p_left.add_argument("job_id", nargs="?", default=os.environ.get("SLURM_JOB_ID", ""))
    args = parser.parse_args(argv)
    try:
        if args.cmd == "time-left":
            print(time_left_s(args.job_id))
            return 0
        cmd = args.torchrun[1:] if args.torchrun[:1] == ["--"] else args.torchrun
        env = dict(os.environ)
        full = node_exec(cmd, env)
    except slurm_env.SlurmEnvError as e:
        print(f"slurm_launch: {e}", file=sys.stderr)
        return 2
    os.execvpe(full[0], full, env)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(_main())
