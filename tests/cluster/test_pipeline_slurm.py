"""The whole pipeline through profiles/slurm on a real 2-node SLURM cluster (tests/cluster/slurm_cluster.sh).

One demo project serves three scenarios, in order (each a real snakemake run of the shipped DAG):
  (a) the whole DAG: convert/tokenize as CPU jobs, train as a 2-rank ZeRO-3 run on CPU inside a
      GPU-requesting allocation (--set-resources train:gres=gpu:2);
  (b) a time limit: the launcher stops with a complete checkpoint before the job's limit, records
      `timeout`, requeues its own job; the same job id reruns and resumes to the end;
  (c) two nodes: n_nodes 2 × 1 CPU rank, one torchrun per node over the namespaces' addresses.
Run as root: `pytest -m cluster tests/cluster/test_pipeline_slurm.py -s`.
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
from sftpipe.config import RunConfig
from sftpipe.config import load as load_config
from sftpipe.runs import index as run_index
from sftpipe.slurm import env as slurm_env
from sftpipe.slurm import launch as slurm_launch
from sftpipe.training.run_dir import RunDirError, prepare_run_dir

from tests.integration.pipeline import demo_project
from tests.integration.pipeline import env as pipeline_env
from tests.project import edit_config

pytestmark = pytest.mark.cluster

SNAKEMAKE_TIMEOUT_S = 900
MAX_STEPS = 8


@dataclass
class DagRun:
    log: str
    seconds: float

    def sbatch_lines(self, rule: str) -> list[str]:
        return [
            ln.split(" --wrap=", 1)[0]
            for ln in self.log.splitlines()
            if ln.startswith("sbatch call:") and f"--comment rule_{rule}" in ln
        ]


def _snakemake(root: Path, *extra: str, on_running=None) -> DagRun:
    """snakemake --profile profiles/slurm with test-speed polling; `on_running(proc)` is polled meanwhile."""
    cmd = [
        str(Path(sys.executable).parent / "snakemake"),
        "--profile",
        "profiles/slurm",
        "--verbose",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "2",
        "--latency-wait",
        "5",
        *extra,
    ]
    env = {**pipeline_env(), "SFTPIPE_SLURM_PARTITION": "debug"}
    env.pop("SFTPIPE_SLURM_ACCOUNT", None)
    t0 = time.monotonic()
    out_path = root / f"snakemake-{int(t0)}.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        try:
            while proc.poll() is None:
                if time.monotonic() - t0 > SNAKEMAKE_TIMEOUT_S:
                    raise TimeoutError
                if on_running:
                    on_running()
                time.sleep(1)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)  # never leave a controller behind
            proc.wait()
            subprocess.run(["scancel", "--full", "-u", "root"], check=False)
            raise
    log = out_path.read_text()
    assert proc.returncode == 0, f"snakemake failed ({proc.returncode}):\n{log[-8000:]}"
    return DagRun(log, time.monotonic() - t0)


def _set_infra(root: Path, **infra) -> None:
    def edit(d):
        d["runtime_info"]["input"]["infrastructure"].update(infra)

    edit_config(root / "config/config.yaml", edit)


def _set_output_dir(root: Path, name: str) -> None:
    edit_config(
        root / "config/config.yaml",
        lambda d: d["runtime_info"]["input"]["training"].__setitem__("output_dir", name),
    )


def _entries(root: Path, run: str) -> list[dict]:
    return [
        e
        for e in run_index.read_entries(root / "artifacts/index.yaml")
        if e["run_dir"] == f"artifacts/model/{run}"
    ]


def _console_log(root: Path, entry: dict) -> str:
    return (root / entry["log"]).read_text()


def _trained_steps(run_dir: Path) -> list[int]:
    rows = [json.loads(ln) for ln in (run_dir / "trainer_log.jsonl").read_text().splitlines() if ln.strip()]
    return [r["current_steps"] for r in rows if "loss" in r]


@pytest.fixture(scope="module")
def project(slurm_cluster, tmp_path_factory, tiny_model_dir) -> Path:
    return demo_project(tmp_path_factory.mktemp("slurm_pipeline") / "proj", tiny_model_dir)


@pytest.fixture(scope="module")
def whole_dag(project: Path) -> DagRun:
    run = _snakemake(project, "--set-resources", "train:gres=gpu:2")
    print(f"\n[timing] (a) whole DAG through SLURM: {run.seconds:.1f}s")
    return run


# --- (a) the whole DAG ------------------------------------------------------------------------------------


def test_whole_dag_contract_artifacts(project: Path, whole_dag: DagRun) -> None:
    run = project / "artifacts/model/demo-run"
    for name in (
        "trainer_log.jsonl",
        "trainer_state.json",
        "train_results.json",
        "training_loss.png",
        "metrics.json",
        "llamafactory_config.yaml",
        "run_config.yaml",
        "run.json",
        "train_manifest.json",
        "record.json",
    ):
        assert (run / name).is_file(), name
    assert (run / f"checkpoint-{MAX_STEPS}" / "latest").is_file()
    assert (project / "artifacts/data/lf_data/dataset_info.json").is_file()
    assert _trained_steps(run) == list(range(1, MAX_STEPS + 1))


def test_whole_dag_cpu_rules_were_slurm_jobs(whole_dag: DagRun) -> None:
    for rule in ("convert", "tokenize", "train"):
        assert len(whole_dag.sbatch_lines(rule)) == 1, rule
    tokenize = whole_dag.sbatch_lines("tokenize")[0]
    assert "--gres" not in tokenize and "--gpus" not in tokenize


def test_train_sbatch_line(whole_dag: DagRun) -> None:
    (line,) = whole_dag.sbatch_lines("train")
    assert "--gres=gpu:2" in line and "--nodes=1" in line, line
    assert "--ntasks-per-gpu" not in line and "--gpus" not in line, line
    assert " -t 60" in line and "--cpus-per-task=2" in line and "--requeue" in line, line


def test_train_index_entry_and_run_record(project: Path, whole_dag: DagRun) -> None:
    (entry,) = _entries(project, "demo-run")
    assert entry["status"] == "completed"
    job = str(entry["slurm_job_id"])
    assert job.isdigit() and entry["slurm_nodes"] in ("node1", "node2") and entry["slurm_restart_count"] == 0
    record = json.loads((project / "artifacts/model/demo-run/run.json").read_text())
    assert record["slurm"]["job_id"] == job and record["slurm"]["nodes"] == [entry["slurm_nodes"]]
    assert record["slurm"]["master_port"] == slurm_env.job_master_port(job)
    assert record["world"] == {"n_nodes": 1, "n_gpus_per_node": 2, "world_size": 2}
    log = _console_log(project, entry)
    assert f"--master_port={slurm_env.job_master_port(job)}" in log and "srun" not in log.split("\n", 1)[0]
    ckpt = project / f"artifacts/model/demo-run/checkpoint-{MAX_STEPS}"
    assert slurm_launch.checkpoint_world_size(ckpt) == 2  # two ZeRO-3 ranks trained


def test_resume_on_another_world_size_is_refused(project: Path, whole_dag: DagRun) -> None:
    """A sharded ZeRO-3 checkpoint of 2 ranks cannot seed a 1-rank run: refused up front, clearly."""
    cfg = load_config("config/config.yaml", project)
    cfg.inp["infrastructure"]["n_gpus_per_node"] = 1
    cfg.inp["training"]["resume_from_checkpoint"] = f"artifacts/model/demo-run/checkpoint-{MAX_STEPS}"
    with pytest.raises(RunDirError, match=r"trained on 2 ranks.*zero_to_fp32"):
        prepare_run_dir(RunConfig(cfg.data, project))


# --- (b) time limit → timeout → requeue → resume → completed ---------------------------------------------


def test_time_limit_checkpoints_requeues_and_resumes(project: Path, whole_dag: DagRun) -> None:
    # 3-minute job, stop 3 minutes before its end: the guard fires at once, so the first attempt
    # stops after its first optimizer step with a complete checkpoint.
    _set_output_dir(project, "demo-timeout")
    _set_infra(project, runtime_minutes=3, stop_before_limit_minutes=3, max_requeues=2)
    seen: dict[str, str] = {}

    def speed_up_requeue() -> None:
        entries = _entries(project, "demo-timeout")
        if not entries or "job" in seen and "requeued" in seen:
            return
        seen["job"] = str(entries[0]["slurm_job_id"])
        if entries[0]["status"] == "timeout" and slurm_env.slurm_job_state(seen["job"]) == "queued":
            # A requeued job waits ~2 min (BeginTime); start it now, and give the second attempt a
            # longer limit (as an admin would) so its guard does not fire at once again.
            proc = subprocess.run(
                ["scontrol", "update", f"JobId={seen['job']}", "StartTime=now", "TimeLimit=15"],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode == 0:
                seen["requeued"] = "yes"

    run = _snakemake(project, "--set-resources", "train:gres=gpu:2", on_running=speed_up_requeue)
    print(f"\n[timing] (b) timeout + requeue + resume through SLURM: {run.seconds:.1f}s")
    first, second = _entries(project, "demo-timeout")
    assert first["status"] == "timeout" and first["requeue"].startswith("requeued SLURM job"), first
    assert second["status"] == "completed", second
    assert (
        first["slurm_job_id"] == second["slurm_job_id"] == int(seen["job"])
        or str(first["slurm_job_id"]) == str(second["slurm_job_id"]) == seen["job"]
    )
    assert (first["slurm_restart_count"], second["slurm_restart_count"]) == (0, 1)
    assert len(run.sbatch_lines("train")) == 1  # one submission: SLURM reran it, not snakemake
    assert " -t 3 " in run.sbatch_lines("train")[0] + " "

    run_dir = project / "artifacts/model/demo-timeout"
    stops = list(run_dir.glob("stop_reason.*.json"))  # the first attempt's, archived by the second
    assert len(stops) == 1
    stop = json.loads(stops[0].read_text())
    assert stop["requested"]["reason"] == "timeout" and stop["checkpoint_complete"] is True
    stopped_at = stop["step"]
    assert 1 <= stopped_at < MAX_STEPS
    record = json.loads((run_dir / "run.json").read_text())
    assert record["resumed_from"].endswith(f"checkpoint-{stopped_at}") and record["status"] == "completed"
    assert "checkpointing and stopping (timeout)" in _console_log(project, first)
    # no lost and no repeated steps across the two attempts
    assert _trained_steps(run_dir) == list(range(1, MAX_STEPS + 1))
    assert json.loads((run_dir / "trainer_state.json").read_text())["global_step"] == MAX_STEPS


# --- (c) two nodes ---------------------------------------------------------------------------------------


def test_two_node_training(project: Path, whole_dag: DagRun) -> None:
    _set_output_dir(project, "demo-2node")
    _set_infra(project, n_nodes=2, n_gpus_per_node=1, runtime_minutes=30, stop_before_limit_minutes=1)
    run = _snakemake(project)
    print(f"\n[timing] (c) 2-node training through SLURM: {run.seconds:.1f}s")
    (line,) = run.sbatch_lines("train")
    assert "--nodes=2" in line and "--ntasks-per-gpu" not in line and "--gres" not in line, line
    assert run.sbatch_lines("tokenize") == [] and run.sbatch_lines("convert") == []  # data reused

    (entry,) = _entries(project, "demo-2node")
    assert entry["status"] == "completed" and entry["slurm_nodes"] == "node1,node2", entry
    log = _console_log(project, entry)
    port = slurm_env.job_master_port(str(entry["slurm_job_id"]))
    assert re.search(r"command: srun --nodes=2 --ntasks=2 --ntasks-per-node=1", log), log[:2000]
    nodes = sorted(
        re.findall(
            r"^\[sft\] node (node\d) node_rank=(\d) master=10\.201\.0\.2:(\d+) "
            r"GLOO_SOCKET_IFNAME=sft0$",
            log,
            re.MULTILINE,
        )
    )
    assert nodes == [("node1", "0", str(port)), ("node2", "1", str(port))], log[-4000:]
    ranks = set(re.findall(r"Process rank: (\d), world size: 2", log))
    assert ranks == {"0", "1"}, log[-4000:]
    run_dir = project / "artifacts/model/demo-2node"
    assert slurm_launch.checkpoint_world_size(run_dir / f"checkpoint-{MAX_STEPS}") == 2  # one shard per node
    assert _trained_steps(run_dir) == list(range(1, MAX_STEPS + 1))


# --- why SLURM sent SIGTERM --------------------------------------------------------------------------------


def test_sigterm_reason_follows_the_job_state(slurm_cluster) -> None:
    """A running job's SIGTERM means scancel/interrupted; once SLURM has requeued it, preemption."""
    proc = subprocess.run(
        ["sbatch", "--parsable", "--requeue", "-t", "5", "-o", "/dev/null", "--wrap", "sleep 120"],
        capture_output=True,
        text=True,
        check=True,
    )
    job = proc.stdout.strip().split(";")[0]
    try:
        deadline = time.monotonic() + 60
        while slurm_env.slurm_job_state(job) != "running":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert slurm_launch.signal_reason(job) == "interrupted"
        assert 200 < (slurm_launch.time_left_s(job) or 0) <= 300  # what the time-limit guard reads
        subprocess.run(["scontrol", "requeue", job], check=True)
        deadline = time.monotonic() + 60
        while slurm_env.slurm_job_state(job) != "queued":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert slurm_launch.signal_reason(job) == "preempted"
    finally:
        subprocess.run(["scancel", job], check=False)
