"""sftpipe.slurm.env pure parts (the real-cluster behaviour is in tests/cluster/)."""

from __future__ import annotations

import subprocess

import pytest
from sftpipe.slurm import env as slurm_env
from sftpipe.slurm.env import SlurmEnvError

# Captured from `scontrol show job -o 2` / `scontrol show node -o node2` on the test cluster.
JOB_LINE = (
    "JobId=2 JobName=my job UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901758 Nice=0 "
    "Account=(null) QOS=(null) JobState=RUNNING Reason=None Dependency=(null) Requeue=1 Restarts=0 "
    "BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:01 TimeLimit=UNLIMITED TimeMin=N/A "
    "AllocNode:Sid=localhost:4169 ReqNodeList=(null) ExcNodeList=(null) NodeList=node[1-2] "
    "BatchHost=node1 NumNodes=2 NumCPUs=2 NumTasks=2 CPUs/Task=1 ReqB:S:C:T=0:0:*:* "
    "TRES=cpu=2,mem=2000M,node=2,billing=2 Comment=rule_train x  StdErr=/tmp/sfttest/slurm-2.out "
    "Power= TresPerNode=gres:gpu:2 "
)
NODE_LINE = (
    "NodeName=node2 Arch=x86_64 CoresPerSocket=1  CPUAlloc=1 CPUEfctv=16 CPUTot=16 CPULoad=5.59 "
    "Gres=gpu:fake:4 NodeAddr=10.201.0.3 NodeHostName=vm Version=22.05.8 "
    "OS=Linux 6.18.44-fc-v595 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=64000 State=MIXED"
)


def test_parse_scontrol_record_handles_spaces_colons_and_empty_values() -> None:
    job = slurm_env.parse_scontrol_record(JOB_LINE)
    assert job["JobName"] == "my job"
    assert job["NodeList"] == "node[1-2]" and job["NumNodes"] == "2"
    assert job["AllocNode:Sid"] == "localhost:4169"
    assert job["TRES"] == "cpu=2,mem=2000M,node=2,billing=2"
    assert job["Comment"] == "rule_train x" and job["Power"] == ""
    assert job["TresPerNode"] == "gres:gpu:2"
    node = slurm_env.parse_scontrol_record(NODE_LINE)
    assert node["NodeAddr"] == "10.201.0.3"
    assert node["OS"] == "Linux 6.18.44-fc-v595 #1 SMP PREEMPT_DYNAMIC @0"


@pytest.mark.parametrize(
    ("expr", "hosts"),
    [
        ("node1", ["node1"]),
        ("node[1-3]", ["node1", "node2", "node3"]),
        ("gpu[08-10,15],login1", ["gpu08", "gpu09", "gpu10", "gpu15", "login1"]),
        ("rack[1-2]-n[1-2]", ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]),
        ("a[9-10]", ["a9", "a10"]),
    ],
)
def test_expand_hostlist_pure(expr: str, hosts: list[str]) -> None:
    assert slurm_env.expand_hostlist_pure(expr) == hosts


def test_expand_hostlist_pure_rejects_garbage() -> None:
    with pytest.raises(SlurmEnvError, match="bad hostlist range"):
        slurm_env.expand_hostlist_pure("node[a-b]")


def test_job_master_port_is_stable_and_unprivileged() -> None:
    ports = {slurm_env.job_master_port(j) for j in range(1000, 1200)}
    assert all(15000 <= p < 30000 for p in ports)
    assert len(ports) > 190  # spread: neighbouring job ids rarely collide
    assert slurm_env.job_master_port("1234") == slurm_env.job_master_port(1234)
    assert slurm_env.job_master_port("1234_7") != slurm_env.job_master_port("1234_8")
    with pytest.raises(SlurmEnvError):
        slurm_env.job_master_port(" ")


def test_node_launch_command_flags_and_per_task_rank() -> None:
    cmd = slurm_env.node_launch_command(["torchrun", "--nnodes=2", "arg with space", "$HOME"], 2)
    assert cmd[0] == "srun"
    for flag in ("--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "--overlap"):
        assert flag in cmd
    # Run the per-task part (what srun executes on each node) with real bash: NODE_RANK comes from
    # SLURM_NODEID and the wrapped arguments arrive verbatim (no re-splitting, no expansion).
    task = cmd[cmd.index("bash") :]
    task = [
        *task[:4],
        "python3",
        "-c",
        "import os, sys; print(os.environ['NODE_RANK'], sys.argv[1:])",
        *task[5:],
    ]
    out = subprocess.run(
        task, env={"SLURM_NODEID": "1", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "1 ['--nnodes=2', 'arg with space', '$HOME']"


def test_node_launch_command_rejects_bad_input() -> None:
    with pytest.raises(SlurmEnvError):
        slurm_env.node_launch_command(["torchrun"], 0)
    with pytest.raises(SlurmEnvError):
        slurm_env.node_launch_command([], 2)


def test_srun_environment_keeps_only_job_identity() -> None:
    env = {
        "SLURM_JOB_ID": "7",
        "SLURM_NNODES": "1",
        "SLURM_JOB_NODELIST": "node1",
        "SRUN_CPUS_PER_TASK": "2",
        "SBATCH_PARTITION": "x",
        "SLURM_CONF": "/etc/slurm/slurm.conf",
        "SLURMD_NODENAME": "node1",
        "PATH": "/bin",
        "CUDA_VISIBLE_DEVICES": "0,1",
    }
    assert slurm_env.srun_environment(env) == {
        "SLURM_JOB_ID": "7",
        "SLURM_CONF": "/etc/slurm/slurm.conf",
        "SLURMD_NODENAME": "node1",
        "PATH": "/bin",
        "CUDA_VISIBLE_DEVICES": "0,1",
    }


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("PENDING", "queued"),
        ("REQUEUED", "queued"),
        ("RUNNING", "running"),
        ("COMPLETING", "running"),
        ("COMPLETED", "completed"),
        ("FAILED", "failed"),
        ("TIMEOUT", "timeout"),
        ("PREEMPTED", "preempted"),
        ("NODE_FAIL", "node_fail"),
        ("CANCELLED by 0", "cancelled"),
        ("CANCELLED+", "cancelled"),
        ("OUT_OF_MEMORY", "oom"),
        ("BOOT_FAIL", "failed"),
        ("WEIRD", "unknown"),
        ("", "unknown"),
    ],
)
def test_parse_state(raw: str, state: str) -> None:
    assert slurm_env.parse_state(raw) == state
    assert state in slurm_env.JOB_STATES


def test_outside_allocation() -> None:
    assert not slurm_env.in_allocation({"PATH": "/bin"})
    assert slurm_env.in_allocation({"SLURM_JOB_ID": "12"})
    with pytest.raises(SlurmEnvError, match="SLURM_JOB_ID is unset"):
        slurm_env.allocation_info({"PATH": "/bin"})


def test_node_address_of_an_ip_literal_or_resolvable_name() -> None:
    assert slurm_env.node_address("10.1.2.3") == "10.1.2.3"
