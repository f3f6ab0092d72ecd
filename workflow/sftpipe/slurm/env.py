"""What a process running inside a SLURM job needs to launch torchrun on every node of it.

(Long module: the facts below and the code they justify are kept together on purpose.)

Facts this module is built on (verified with snakemake-executor-plugin-slurm 2.8.0 / jobstep 0.6.1,
Slurm 22.05, see tests/cluster/):
  * A rule runs inside the plugin's own `srun -n1` step (step 0). Before that srun the plugin
    strips every SLURM_* variable but the job identity (SLURM_JOB_ID, SLURM_SUBMIT_DIR, ...);
    srun then sets fresh STEP-level ones. So inside the rule SLURM_NNODES/SLURM_NODEID/
    SLURM_STEP_NODELIST describe step 0 (ONE node), not the job; even SLURM_JOB_NODELIST names only
    step 0's node (while SLURM_NODELIST has the job's list); SLURM_JOB_NUM_NODES, SLURM_GPUS,
    SLURM_JOB_GPUS, SLURM_MEM_PER_NODE are gone. Hence: the node list comes from
    `scontrol show job`, the node count is its length, and this node's index is SLURMD_NODENAME's
    position in it.
  * Node names need not resolve (NodeAddr may differ from NodeName): MASTER_ADDR is the first
    node's NodeAddr from `scontrol show node` when the name does not resolve.
  * A requeued job keeps its job id, so a port derived from the id stays the same.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

SCONTROL_TIMEOUT_S = 30
# Ports 15000-29999: unprivileged and below Linux's ephemeral range (32768-60999), so a port picked
# here does not collide with an outgoing connection's local port.
PORT_BASE = 15000
PORT_SPAN = 15000

JOB_STATES = (
    "queued",
    "running",
    "completed",
    "failed",
    "timeout",
    "preempted",
    "node_fail",
    "cancelled",
    "oom",
    "unknown",
)
# SLURM job state (squeue/scontrol spelling, without "+" suffixes) -> our status word.
_STATE_MAP = {
    "PENDING": "queued",
    "CONFIGURING": "queued",
    "REQUEUED": "queued",
    "REQUEUE_FED": "queued",
    "REQUEUE_HOLD": "queued",
    "RESV_DEL_HOLD": "queued",
    "SUSPENDED": "queued",
    "RESIZING": "running",
    "RUNNING": "running",
    "COMPLETING": "running",
    "STAGE_OUT": "running",
    "SIGNALING": "running",
    "STOPPED": "running",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "BOOT_FAIL": "failed",
    "DEADLINE": "timeout",
    "SPECIAL_EXIT": "failed",
    "REVOKED": "cancelled",
    "TIMEOUT": "timeout",
    "PREEMPTED": "preempted",
    "NODE_FAIL": "node_fail",
    "CANCELLED": "cancelled",
    "OUT_OF_MEMORY": "oom",
}


class SlurmEnvError(RuntimeError):
    """The SLURM environment does not provide what a launch needs (message says what and why)."""


@dataclass(frozen=True)
class AllocationInfo:
    """The SLURM allocation this process runs in, as seen from this host."""

    job_id: str
    nodes: tuple[str, ...]  # the job's hosts, in SLURM order (node 0 first)
    node_name: str | None  # this host's SLURM node name, None outside a job step
    node_id: int | None  # index of node_name in nodes
    gpus_on_node: int  # GPUs visible to this process (CUDA_VISIBLE_DEVICES / SLURM_GPUS_ON_NODE)
    cpus_on_node: int | None

    @property
    def nnodes(self) -> int:
        return len(self.nodes)


def _run(cmd: Sequence[str]) -> str:
    """Run a SLURM client command; any failure becomes a SlurmEnvError naming the command."""
    exe = shutil.which(cmd[0])
    if exe is None:
        raise SlurmEnvError(f"{cmd[0]} not found on PATH")
    try:
        proc = subprocess.run(
            [exe, *cmd[1:]], capture_output=True, text=True, timeout=SCONTROL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise SlurmEnvError(f"{shlex.join(cmd)} did not answer within {SCONTROL_TIMEOUT_S}s") from e
    if proc.returncode != 0:
        raise SlurmEnvError(f"{shlex.join(cmd)} failed (rc={proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def in_allocation(env: Mapping[str, str] | None = None) -> bool:
    """True inside an sbatch/salloc/srun allocation (the plugin keeps SLURM_JOB_ID for the rule)."""
    env = os.environ if env is None else env
    return bool(env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID"))


def _job_id(env: Mapping[str, str]) -> str:
    job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not job_id:
        raise SlurmEnvError("not inside a SLURM allocation (SLURM_JOB_ID is unset)")
    return job_id


def parse_scontrol_record(text: str) -> dict[str, str]:
    """Parse one `scontrol show … -o` record (Key=Value pairs separated by spaces)."""
    fields: dict[str, str] = {}
    # Values may contain spaces only in a few free-text keys (Reason, Comment, Command...): a key
    # starts where a space is followed by `Word=`; everything up to the next key is its value.
    for m in re.finditer(r"(?:^|\s)([A-Za-z][\w:/.]*)=(.*?)(?=\s+[A-Za-z][\w:/.]*=|\s*$)", text.strip()):
        fields[m.group(1)] = m.group(2)
    return fields


def expand_hostlist_pure(hostlist: str) -> list[str]:
    """Expand a SLURM hostlist expression ("gpu[01-03,07],login1") without scontrol."""
    hosts: list[str] = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\][^,\[]*)*", hostlist):
        hosts.extend(_expand_one(part))
    return hosts


def _expand_one(expr: str) -> list[str]:
    m = re.search(r"\[([^\]]*)\]", expr)
    if m is None:
        return [expr]
    prefix, rest = expr[: m.start()], expr[m.end() :]
    out: list[str] = []
    for rng in m.group(1).split(","):
        lo, _, hi = rng.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise SlurmEnvError(f"bad hostlist range {rng!r} in {expr!r}")
        width = len(lo)
        for i in range(int(lo), int(hi or lo) + 1):
            out.extend(prefix + str(i).zfill(width) + tail for tail in _expand_one(rest))
    return out


def expand_hostlist(hostlist: str) -> list[str]:
    """Expand a hostlist via `scontrol show hostnames` (authoritative), or in Python without it."""
    if shutil.which("scontrol") is None:
        return expand_hostlist_pure(hostlist)
    return _run(["scontrol", "show", "hostnames", hostlist]).split()


def job_record(job_id: str) -> dict[str, str]:
    """`scontrol show job` as Key -> Value; SlurmEnvError when scontrol fails or has no such job."""
    out = _run(["scontrol", "show", "job", "-o", job_id]).strip()
    if not out:
        raise SlurmEnvError(f"scontrol knows no job {job_id}")
    return parse_scontrol_record(out.splitlines()[0])


def _count_visible_gpus(env: Mapping[str, str]) -> int:
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        return len([d for d in cvd.split(",") if d.strip() and d.strip() != "-1"])
    for var in ("SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE"):
        value = env.get(var, "")
        if value.isdigit():
            return int(value)
    return 0


def allocation_info(env: Mapping[str, str] | None = None) -> AllocationInfo:
    """Describe the allocation this process runs in (see the module docstring for the sources)."""
    env = os.environ if env is None else env
    job_id = _job_id(env)
    # Always ask slurmctld: inside the plugin's step 0, SLURM_JOB_NODELIST holds the STEP's single
    # node (the plugin strips the job-level value and srun refills it) while SLURM_NODELIST holds
    # the job's list; without scontrol (never the case on a real node) fall back to SLURM_NODELIST.
    if shutil.which("scontrol") is not None:
        nodelist = job_record(job_id).get("NodeList", "")
    else:
        nodelist = env.get("SLURM_NODELIST") or env.get("SLURM_JOB_NODELIST") or ""
    if not nodelist or nodelist == "(null)":
        raise SlurmEnvError(f"job {job_id} has no nodes yet (NodeList={nodelist!r})")
    nodes = tuple(expand_hostlist(nodelist))
    node_name = env.get("SLURMD_NODENAME") or None
    node_id = nodes.index(node_name) if node_name in nodes else None
    cpus = env.get("SLURM_CPUS_ON_NODE", "")
    return AllocationInfo(
        job_id=job_id,
        nodes=nodes,
        node_name=node_name,
        node_id=node_id,
        gpus_on_node=_count_visible_gpus(env),
        cpus_on_node=int(cpus) if cpus.isdigit() else None,
    )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def node_address(node: str) -> str:
    """An address other nodes can reach `node` at: its name if that resolves, else its NodeAddr."""
    try:
        socket.getaddrinfo(node, None)
        resolves = True
    except socket.gaierror:
        resolves = False
    if resolves and not _is_loopback_name(node):
        return node
    if shutil.which("scontrol") is None:
        if resolves:
            return node
        raise SlurmEnvError(f"node {node!r} does not resolve and scontrol is not available")
    addr = parse_scontrol_record(_run(["scontrol", "show", "node", "-o", node]).strip()).get("NodeAddr")
    if not addr:
        raise SlurmEnvError(f"scontrol show node {node} reports no NodeAddr")
    if not _is_ip(addr):
        try:
            socket.getaddrinfo(addr, None)
        except socket.gaierror as e:
            raise SlurmEnvError(f"node {node!r}: neither it nor its NodeAddr {addr!r} resolves") from e
    return addr


def _is_loopback_name(name: str) -> bool:
    """True when `name` resolves only to loopback (then it means 'this host', useless to peers)."""
    try:
        infos = socket.getaddrinfo(name, None)
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def master_addr(info: AllocationInfo | None = None) -> str:
    """MASTER_ADDR for torch.distributed: the first node of the job, as peers can reach it."""
    info = allocation_info() if info is None else info
    return node_address(info.nodes[0])


def job_master_port(job_id: str | int) -> int:
    """MASTER_PORT derived from the job id: the same after a requeue, spread across jobs."""
    text = str(job_id).strip()
    if not text:
        raise SlurmEnvError("empty job id")
    return PORT_BASE + zlib.crc32(text.encode()) % PORT_SPAN


def node_launch_command(torchrun_cmd: Sequence[str], nnodes: int) -> list[str]:
    """Wrap a per-node command (torchrun …) in the srun that starts it once on each of `nnodes` nodes.

    Run the result with srun_environment() (see there why the rule's own environment fails).

    Each task exports NODE_RANK from its SLURM_NODEID (0 on the first node of the step, which is
    the job's first node because the step spans all of them). --overlap lets the step share the
    CPUs/GPUs that the plugin's own step 0 (running this rule) holds; --kill-on-bad-exit ends all
    nodes when one fails instead of leaving them hanging in a collective.
    """
    if nnodes < 1:
        raise SlurmEnvError(f"nnodes must be >= 1, got {nnodes}")
    if not torchrun_cmd:
        raise SlurmEnvError("empty command")
    per_task = 'export NODE_RANK="$SLURM_NODEID"; exec "$@"'
    return [
        "srun",
        f"--nodes={nnodes}",
        f"--ntasks={nnodes}",
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=1",
        "--overlap",
        "--export=ALL",
        "bash",
        "-c",
        per_task,
        "sftpipe-node-task",
        *torchrun_cmd,
    ]


# Job identity: the only SLURM variables an inner srun may inherit (the plugin keeps the same set).
_KEEP_FOR_SRUN = frozenset(
    {
        "SLURM_JOB_ID",
        "SLURM_JOBID",
        "SLURM_CLUSTER_NAME",
        "SLURM_CONF",
        "SLURM_SUBMIT_DIR",
        "SLURM_SUBMIT_HOST",
        "SLURM_ARRAY_JOB_ID",
        "SLURM_ARRAY_TASK_ID",
    }
)


def srun_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to run node_launch_command's srun with.

    Inside a rule the plugin's step 0 has set step-level variables (SLURM_NNODES=1,
    SLURM_JOB_NODELIST=<one node>, SLURM_NTASKS=1, ...); an srun inheriting them believes the job
    has one node and fails with "Only allocated 1 nodes asked for 2". Drop all SLURM_*/SRUN_*/
    SBATCH_* variables except the job identity, as the plugin does before its own srun.
    """
    env = os.environ if env is None else env
    return {
        k: v
        for k, v in env.items()
        if k in _KEEP_FOR_SRUN or not k.startswith(("SLURM_", "SRUN_", "SBATCH_"))
    }


def parse_state(raw: str) -> str:
    """Map a SLURM job state ("CANCELLED by 0", "COMPLETED+", "PREEMPTED") to one of JOB_STATES."""
    word = raw.strip().split()[0].rstrip("+").upper() if raw.strip() else ""
    return _STATE_MAP.get(word, "unknown")


def slurm_job_state(job_id: str | int) -> str:
    """Current state of a job (one of JOB_STATES): squeue, then scontrol, then sacct.

    Returns "unknown" once SLURM has forgotten the job (after MinJobAge without accounting).
    """
    job = str(job_id)
    try:  # -t all: without it squeue hides finished jobs even when asked for their id
        out = _run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"]).strip()
    except SlurmEnvError:
        out = ""  # squeue errors for ids it no longer knows ("Invalid job id specified")
    if out:
        return parse_state(out.splitlines()[0])
    try:
        state = job_record(job).get("JobState", "")
    except SlurmEnvError:
        state = ""
    if state:
        return parse_state(state)
    # Forgotten by slurmctld (MinJobAge passed): only accounting still knows. Without slurmdbd
    # sacct fails at once ("accounting storage is disabled") and the answer is "unknown".
    try:
        out = _run(["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"]).strip()
    except SlurmEnvError:
        return "unknown"
    return parse_state(out.splitlines()[0]) if out else "unknown"


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sftpipe.slurm.env", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_info = sub.add_parser("info", help="describe the allocation this process runs in")
    p_info.add_argument("--json", action="store_true")
    p_state = sub.add_parser("state", help="print a job's state word")
    p_state.add_argument("job_id")
    p_run = sub.add_parser(
        "run-on-nodes", help="run CMD once per node with MASTER_ADDR/PORT/NNODES/NODE_RANK set"
    )
    p_run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "state":
            print(slurm_job_state(args.job_id))
            return 0
        info = allocation_info()
        if args.cmd == "info":
            data = {
                **asdict(info),
                "nnodes": info.nnodes,
                "master_addr": master_addr(info),
                "master_port": job_master_port(info.job_id),
            }
            print(json.dumps(data) if args.json else "\n".join(f"{k}={v}" for k, v in data.items()))
            return 0
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        env = {
            **srun_environment(),
            "MASTER_ADDR": master_addr(info),
            "MASTER_PORT": str(job_master_port(info.job_id)),
            "NNODES": str(info.nnodes),
        }
        return subprocess.run(node_launch_command(cmd, info.nnodes), env=env, check=False).returncode
    except SlurmEnvError as e:
        print(f"slurm_env: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_main())
