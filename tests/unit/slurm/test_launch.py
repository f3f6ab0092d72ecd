"""sftpipe.slurm.launch pieces that need no cluster (the real-cluster tests: tests/cluster/test_pipeline_slurm.py)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from sftpipe.config import load
from sftpipe.slurm import launch as slurm_launch
from sftpipe.training import run_dir as launch

from tests.project import make_project


def test_guard_fires_once_at_the_margin():
    lefts = iter([300.0, 200.0, 119.0, 50.0])
    fired: list[float] = []
    done = threading.Event()

    def on_limit(left: float) -> None:
        fired.append(left)
        done.set()

    guard = slurm_launch.TimeLimitGuard("1", 120.0, on_limit, poll_s=0.01, time_left=lambda _j: next(lefts))
    guard.start()
    assert done.wait(5)
    time.sleep(0.05)
    assert fired == [119.0] and guard.fired_at_left == 119.0


def test_guard_without_a_limit_never_fires():
    fired: list[float] = []
    guard = slurm_launch.TimeLimitGuard(
        "1", 120.0, fired.append, poll_s=0.01, time_left=lambda _j: None
    ).start()
    time.sleep(0.1)
    guard.cancel()
    assert fired == []


def test_node_exec_adds_rank_before_the_module_and_finds_loopback():
    env = {
        "NODE_RANK": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "15001",
        "SFT_NETWORK_INTERFACE": "",
        "SFT_ACCELERATOR": "cuda",
    }
    cmd = slurm_launch.node_exec(
        ["torchrun", "--nnodes=2", "--nproc_per_node=4", "-m", "sftpipe.training.lf_entry", "c.yaml"], env
    )
    assert cmd == [
        "torchrun",
        "--nnodes=2",
        "--nproc_per_node=4",
        "--node_rank=1",
        "-m",
        "sftpipe.training.lf_entry",
        "c.yaml",
    ]
    assert env["GLOO_SOCKET_IFNAME"] == "lo" and env["NCCL_SOCKET_IFNAME"] == "lo"


def test_node_exec_rank_goes_before_the_training_module_not_pythons_own_m():
    cmd = slurm_launch.node_exec(
        ["python", "-m", "torch.distributed.run", "--nnodes=2", "-m", "sftpipe.training.lf_entry", "c.yaml"],
        {"NODE_RANK": "0", "SFT_NETWORK_INTERFACE": "eth0"},
    )
    assert cmd == [
        "python",
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--node_rank=0",
        "-m",
        "sftpipe.training.lf_entry",
        "c.yaml",
    ]


def test_node_exec_configured_interface_and_user_values_win():
    env = {
        "SLURM_NODEID": "0",
        "MASTER_ADDR": "10.0.0.1",
        "SFT_NETWORK_INTERFACE": "ib0",
        "SFT_ACCELERATOR": "cpu",
        "GLOO_SOCKET_IFNAME": "eth9",
    }
    slurm_launch.node_exec(["torchrun", "-m", "x"], env)
    assert env["GLOO_SOCKET_IFNAME"] == "eth9" and "NCCL_SOCKET_IFNAME" not in env


def test_node_exec_needs_a_rank():
    with pytest.raises(slurm_launch.slurm_env.SlurmEnvError, match="NODE_RANK"):
        slurm_launch.node_exec(["torchrun"], {})


def _job(nodes: tuple[str, ...], restarts: int = 0) -> slurm_launch.SlurmJob:
    return slurm_launch.SlurmJob(
        job_id="42",
        nodes=nodes,
        master_addr="10.0.0.2",
        master_port=15555,
        restart_count=restarts,
        time_limit="01:00:00",
    )


def test_launch_command_one_node_is_plain_torchrun_several_use_srun():
    torchrun = ["torchrun", "--nnodes=2", "-m", "sftpipe.training.lf_entry", "c.yaml"]
    assert slurm_launch.launch_command(torchrun, _job(("n1",))) == torchrun
    cmd = slurm_launch.launch_command(torchrun, _job(("n1", "n2")))
    assert cmd[:4] == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1"]
    assert "--overlap" in cmd and cmd[cmd.index("node-exec") - 2 : cmd.index("node-exec")] == [
        "-m",
        "sftpipe.slurm.launch",
    ]
    assert cmd[cmd.index("node-exec") + 1 :] == ["--", *torchrun]


def test_launch_environment(tmp_path):
    cfg = load("config/config.yaml", make_project(tmp_path / "p"))
    base = {"PATH": "/bin", "SLURM_JOB_ID": "42", "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "n1"}
    one = slurm_launch.launch_environment(cfg, _job(("n1",)), base)
    assert (one["MASTER_PORT"], one["NNODES"], one["NODE_RANK"], one["SLURM_NNODES"]) == (
        "15555",
        "1",
        "0",
        "1",
    )
    two = slurm_launch.launch_environment(cfg, _job(("n1", "n2")), base)
    assert two["MASTER_ADDR"] == "10.0.0.2" and two["NNODES"] == "2" and two["SLURM_JOB_ID"] == "42"
    assert "SLURM_NNODES" not in two and "SLURM_JOB_NODELIST" not in two  # srun must see the job, not step 0


def test_requeue_cap_is_checked_before_asking_slurm():
    ok, why = slurm_launch.requeue(_job(("n1",), restarts=3), max_requeues=3)
    assert not ok and "already restarted 3 time(s)" in why


def _zero_checkpoint(path: Path, ranks: int) -> Path:
    """The layout DeepSpeed writes: `latest` names the tag dir holding one optimizer shard per rank."""
    (path / "global_step4").mkdir(parents=True)
    (path / "latest").write_text("global_step4")
    for r in range(ranks):
        (path / "global_step4" / f"bf16_zero_pp_rank_{r}_mp_rank_00_optim_states.pt").write_bytes(b"")
    return path


def test_world_change_error(tmp_path):
    root = make_project(tmp_path / "p")
    cfg = load("config/config.yaml", root)  # demo: 1 node x 2 ranks, DeepSpeed ZeRO-3
    ckpt = _zero_checkpoint(tmp_path / "ckpt", ranks=4)
    assert slurm_launch.checkpoint_world_size(ckpt) == 4
    msg = slurm_launch.world_change_error(cfg, {}, ckpt)
    assert msg and "trained on 4 ranks" in msg and "this config has 2 ranks" in msg and "zero_to_fp32" in msg
    assert slurm_launch.world_change_error(cfg, {"world_size": 2}, ckpt) is None  # run.json's record wins
    assert slurm_launch.world_change_error(cfg, {}, _zero_checkpoint(tmp_path / "c2", ranks=2)) is None


def test_world_change_detected_from_run_record(tmp_path):
    root = make_project(tmp_path / "p")
    cfg = load("config/config.yaml", root)
    run_dir = root / cfg.run_dir
    _zero_checkpoint(run_dir / "checkpoint-4", ranks=4)
    (run_dir / "checkpoint-4" / "trainer_state.json").write_text("{}")
    cfg.inp["infrastructure"]["n_gpus_per_node"] = 4  # the run was trained on 1 x 4 ...
    prior = {"training_hash": cfg.training_hash(), "world": slurm_launch.world_record(cfg)}
    (run_dir / "run.json").write_text(json.dumps(prior))
    cfg.inp["infrastructure"]["n_gpus_per_node"] = 2  # ... and is now resumed on 1 x 2
    assert slurm_launch.same_training_except_world(cfg, prior)
    with pytest.raises(launch.RunDirError, match="trained on 4 ranks"):
        launch.prepare_run_dir(cfg)


def test_job_id_without_slurm_client_launches_locally_but_not_multi_node(tmp_path, monkeypatch, capsys):
    cfg = load("config/config.yaml", make_project(tmp_path / "p"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # a container that inherited SLURM_JOB_ID only
    assert slurm_launch.current_job(cfg, {"SLURM_JOB_ID": "7"}) is None
    assert "not on PATH" in capsys.readouterr().out
    cfg.inp["infrastructure"]["n_nodes"] = 2
    with pytest.raises(slurm_launch.slurm_env.SlurmEnvError, match="needs scontrol and srun"):
        slurm_launch.current_job(cfg, {"SLURM_JOB_ID": "7"})
    assert slurm_launch.current_job(cfg, {}) is None  # outside SLURM: unchanged
