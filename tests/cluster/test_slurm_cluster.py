"""The SLURM executor plugin and sftpipe.slurm.env on a real 2-node SLURM cluster.

Run: `pytest -m cluster tests/cluster -s` as root (about 3 minutes on 2 busy cores; the torch
all_reduce across nodes is most of it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sftpipe.slurm import env as slurm_env

from .conftest import Cluster

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = Path(__file__).with_name("workflow") / "Snakefile"
PROFILE = REPO / "profiles" / "slurm"
SNAKEMAKE_TIMEOUT_S = 900


def _run(cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw)


@dataclass(frozen=True)
class WorkflowRun:
    workdir: Path
    log: str
    seconds: float

    def sbatch_line(self, rule: str) -> str:
        lines = [
            ln
            for ln in self.log.splitlines()
            if ln.startswith("sbatch call:") and f"--comment rule_{rule} " in ln
        ]
        assert len(lines) == 1, f"expected one sbatch call for {rule}, got {lines}"
        return lines[0].split(" --wrap=", 1)[0]  # the resource flags; the wrapped command is noise

    def output(self, name: str) -> str:
        return (self.workdir / name).read_text()


@pytest.fixture(scope="module")
def workflow_run(slurm_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> WorkflowRun:
    """One snakemake run of all three probe rules through profiles/slurm (they run concurrently)."""
    workdir = tmp_path_factory.mktemp("slurm_wf")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(WORKFLOW),
        "--profile",
        str(PROFILE),
        "--directory",
        str(workdir),
        "--verbose",
        # test-speed polling; the profile's values are for real clusters
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "2",
        "--latency-wait",
        "5",
        "--config",
        'targets=["gpu_once.txt","gpu_tasks1.txt","two_nodes.txt"]',
        f"python={sys.executable}",
    ]
    env = {**os.environ, "SFTPIPE_SLURM_PARTITION": "debug"}
    env.pop("SFTPIPE_SLURM_ACCOUNT", None)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    try:
        log, _ = proc.communicate(timeout=SNAKEMAKE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # a hung controller: never leave it behind
        log, _ = proc.communicate()
        _run(["scancel", "--full", "-u", "root"])
        pytest.fail(f"snakemake did not finish in {SNAKEMAKE_TIMEOUT_S}s:\n{log[-5000:]}")
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, f"snakemake failed:\n{log[-8000:]}"
    print(f"\n[timing] cluster up {slurm_cluster.up_seconds:.1f}s; 3-job workflow {seconds:.1f}s")
    return WorkflowRun(workdir=workdir, log=log, seconds=seconds)


def _env_lines(text: str, prefix: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            key, _, value = line[len(prefix) + 1 :].partition("=")
            out[key] = value
    return out


# --- the cluster itself -------------------------------------------------------------------------


def test_srun_spans_both_nodes_with_distinct_addresses(slurm_cluster: Cluster) -> None:
    proc = _run(
        [
            "srun",
            "-N2",
            "--ntasks-per-node=1",
            "bash",
            "-c",
            "echo $SLURMD_NODENAME $(ip -4 -o addr show dev sft0 | awk '{print $4}')",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    rows = sorted(proc.stdout.split("\n")[:-1])
    assert rows == ["node1 10.201.0.2/24", "node2 10.201.0.3/24"]


TCP_SERVER = (
    "import socket; s = socket.create_server(('10.201.0.3', 29777)); s.settimeout(20); "
    "print('listening', flush=True); c, a = s.accept(); print(a[0], c.recv(16).decode(), flush=True)"
)


def test_tcp_between_node_namespaces(slurm_cluster: Cluster) -> None:
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            "sftpipe-node2",
            sys.executable,
            "-c",
            TCP_SERVER,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        client = _run(
            [
                "ip",
                "netns",
                "exec",
                "sftpipe-node1",
                sys.executable,
                "-c",
                "import socket; socket.create_connection(('10.201.0.3', 29777), timeout=10).send(b'ping')",
            ]
        )
        assert client.returncode == 0, client.stderr
        out, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert out.split() == ["10.201.0.2", "ping"]


# --- what the executor plugin submits and what the rule sees -------------------------------------


def test_gpu_rule_sbatch_line_has_no_ntasks_per_gpu(workflow_run: WorkflowRun) -> None:
    line = workflow_run.sbatch_line("gpu_once")
    for flag in ("-p debug", "-t 10", "--mem 2000", "--cpus-per-task=2", "--gpus=2", "--requeue"):
        assert f" {flag}" in line, f"{flag!r} missing from {line}"
    assert "--ntasks-per-gpu" not in line and " -A " not in line
    # `tasks` on a GPU rule becomes --ntasks-per-gpu (one task slot per GPU), hence tasks_per_gpu=0.
    assert "--ntasks-per-gpu=1" in workflow_run.sbatch_line("gpu_tasks1")


def test_gpu_rule_runs_once_and_sees_two_gpus(workflow_run: WorkflowRun) -> None:
    text = workflow_run.output("gpu_once.txt")
    rule, inner = _env_lines(text, "RULE"), _env_lines(text, "INNER")
    assert len(rule["CVD"].split(",")) == 2, text
    assert inner["CVD"] == rule["CVD"]  # an inner srun --overlap sees the same two GPUs
    assert text.count("RULE PID=") == 1
    # even with --ntasks-per-gpu=1 (two task slots) the plugin's `srun -n1` runs the rule once
    tasks1 = workflow_run.output("gpu_tasks1.txt")
    assert tasks1.count("RULE PID=") == 1, tasks1
    assert len(_env_lines(tasks1, "RULE")["CVD"].split(",")) == 2


def test_slurm_variables_inside_rule(workflow_run: WorkflowRun) -> None:
    rule_env = _env_lines(workflow_run.output("gpu_once.txt"), "RULE")
    inner_env = _env_lines(workflow_run.output("gpu_once.txt"), "INNER")
    for env in (rule_env, inner_env):
        assert env["SLURM_JOB_ID"] and env["SLURMD_NODENAME"] in ("node1", "node2")
        assert env["SLURM_STEP_NUM_NODES"] == "1" and env["SLURM_NNODES"] == "1"
        assert env["SLURM_CONF"] == "/etc/slurm/slurm.conf"
        # stripped by the plugin before its srun, and not re-set by srun inside the step
        for gone in ("SLURM_JOB_GPUS", "SLURM_GPUS", "SLURM_MEM_PER_NODE", "SLURM_JOB_NUM_NODES"):
            assert gone not in env, gone
    assert rule_env["SLURM_STEP_ID"] == "0" and inner_env["SLURM_STEP_ID"] == "1"
    # on the 2-node job, SLURM_JOB_NODELIST names only step 0's node: slurm_env asks scontrol instead
    two = _env_lines(workflow_run.output("two_nodes.txt"), "RULE")
    assert two["SLURM_JOB_NODELIST"] == "node1" and two["SLURM_NODELIST"] == "node[1-2]"
    assert two["SLURM_NNODES"] == "1"
    assert workflow_run.output("two_nodes.txt").count("RULE PID=") == 1  # the rule itself ran once


def test_two_node_rule_launches_one_rank_per_node(workflow_run: WorkflowRun) -> None:
    text = workflow_run.output("two_nodes.txt")
    assert "--nodes=2" in workflow_run.sbatch_line("two_nodes")
    assert "--gres=gpu:2" in workflow_run.sbatch_line("two_nodes")
    info = json.loads(re.search(r"^INFO (.*)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert info["nodes"] == ["node1", "node2"] and info["nnodes"] == 2 and info["node_id"] == 0
    assert info["master_addr"] == "10.201.0.2"  # node1 does not resolve: its NodeAddr
    assert info["master_port"] == slurm_env.job_master_port(info["job_id"])
    tasks = sorted(
        re.findall(
            r"^TASK node=(\S+) rank=(\d) nodeid=(\d) cvd=(\S+) master=(\S+) nnodes=(\d)", text, re.MULTILINE
        )
    )
    port = info["master_port"]
    assert [t[:3] for t in tasks] == [("node1", "0", "0"), ("node2", "1", "1")], text
    assert all(t[4] == f"10.201.0.2:{port}" and t[5] == "2" and len(t[3].split(",")) == 2 for t in tasks)
    sums = sorted(re.findall(r"^ALLREDUCE rank=(\d) world=2 sum=(\S+) node=(\S+)", text, re.MULTILINE))
    assert sums == [("0", "3", "node1"), ("1", "3", "node2")], text


def test_successful_logs_deleted(workflow_run: WorkflowRun) -> None:
    logs = list((workflow_run.workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert logs == [], logs
    assert "command=squeue" in workflow_run.log  # status queries never touch sacct


# --- sftpipe.slurm.env against the real controller -----------------------------------------------


def test_expand_hostlist_matches_scontrol(slurm_cluster: Cluster) -> None:
    expr = "node[1-2],gpu[08-11,20],login1"
    assert slurm_env.expand_hostlist(expr) == slurm_env.expand_hostlist_pure(expr)
    assert slurm_env.expand_hostlist(expr)[:3] == ["node1", "node2", "gpu08"]


def test_node_address_falls_back_to_nodeaddr(slurm_cluster: Cluster) -> None:
    assert slurm_env.node_address("node2") == "10.201.0.3"


def _wait_state(job_id: str, want: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    state = slurm_env.slurm_job_state(job_id)
    while state != want and time.monotonic() < deadline:
        time.sleep(0.5)
        state = slurm_env.slurm_job_state(job_id)
    return state


def _sbatch(*args: str) -> str:
    proc = _run(["sbatch", "--parsable", "-o", "/dev/null", *args])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def test_job_states(slurm_cluster: Cluster) -> None:
    running = _sbatch("--wrap", "sleep 120")
    failing = _sbatch("--wrap", "exit 3")
    impossible = _sbatch("--begin=now+1hour", "--wrap", "true")
    done = _sbatch("--wrap", "true")
    try:
        assert _wait_state(running, "running") == "running"
        assert _wait_state(failing, "failed") == "failed"
        assert _wait_state(done, "completed") == "completed"
        assert slurm_env.slurm_job_state(impossible) == "queued"
        _run(["scancel", running])
        assert _wait_state(running, "cancelled") == "cancelled"
    finally:
        _run(["scancel", running, impossible])
    assert slurm_env.slurm_job_state("999999") == "unknown"


def test_requeued_job_keeps_its_id_and_the_workflow_waits(
    slurm_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """SLURM owns retries (profile: slurm-requeue): a requeued job reruns under the same id."""
    workdir = tmp_path_factory.mktemp("slurm_requeue")
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(WORKFLOW), "--profile", str(PROFILE),
        "--directory", str(workdir), "--slurm-init-seconds-before-status-checks", "2",
        "--seconds-between-status-checks", "2", "--latency-wait", "5",
        "--config", 'targets=["requeued.txt"]',
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    started = workdir / "first_run.started"
    try:
        deadline = time.monotonic() + 300
        while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert started.exists(), "the first run never started"
        job_id = started.read_text().strip()
        assert _run(["scontrol", "requeue", job_id]).returncode == 0
        # A requeued job waits ~2 minutes (PENDING, reason BeginTime) before it may start again;
        # skip that wait once it is pending (an update during COMPLETING is overridden).
        deadline, was_queued = time.monotonic() + 120, False
        while (state := slurm_env.slurm_job_state(job_id)) == "queued" or not was_queued:
            if state == "queued":
                was_queued = True
                _run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"])
            assert time.monotonic() < deadline, f"requeued job {job_id} did not restart (state {state})"
            time.sleep(0.5)
        log, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            _run(["scancel", "--full", "-u", "root"])
    assert proc.returncode == 0, log[-5000:]
    assert (workdir / "requeued.txt").read_text().split() == ["runs=2", f"job={job_id}"]
    assert slurm_env.job_record(job_id)["Restarts"] == "1"


def test_failed_job_ends_the_run_and_keeps_its_log(
    slurm_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("slurm_fail")
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(WORKFLOW), "--profile", str(PROFILE),
        "--directory", str(workdir), "--slurm-init-seconds-before-status-checks", "2",
        "--seconds-between-status-checks", "2", "--latency-wait", "5", "--config", 'targets=["never.txt"]',
    ]  # fmt: skip
    proc = _run(cmd, timeout=SNAKEMAKE_TIMEOUT_S)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-5000:]
    assert "SLURM status is: 'FAILED'" in log
    kept = list((workdir / ".snakemake" / "slurm_logs" / "rule_fails").glob("*.log"))
    assert len(kept) == 1 and "about to fail on purpose" in kept[0].read_text()
    assert "about to fail on purpose" in log  # show-failed-logs printed it
