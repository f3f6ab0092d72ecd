"""Real LLaMA-Factory full SFT on CPU: 2 ranks, DeepSpeed ZeRO-3, through sftpipe.training.lf_entry.

One training run is stopped with SIGTERM sent to the torchrun process group mid-training; it must
leave a complete checkpoint and stop_reason.json. The same command is then re-run: it resumes from
that checkpoint and is stopped again through the stop file. (Resuming to completion is proven by
tests/integration/test_resume_after_kill.py and the SLURM time-limit test.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sftpipe.training.lf_entry import STOP_EXIT_CODE

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS = 6
RUN_TIMEOUT_S = 420  # first run on a fresh machine also JIT-builds DeepSpeed's CPU comm op


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(cfg: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [
        str(Path(sys.executable).with_name("torchrun")),
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "sftpipe.training.lf_entry",
        str(cfg),
    ]
    with open(log, "wb") as fh:  # child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cfg.parent, start_new_session=True
        )  # own process group, like a launcher


def _wait_for_logged_step(proc: subprocess.Popen, out: Path, step: int, log: Path) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    trainer_log = out / "trainer_log.jsonl"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training exited early ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if trainer_log.is_file():
            steps = [json.loads(x).get("current_steps", 0) for x in trainer_log.read_text().splitlines() if x]
            if steps and max(steps) >= step:
                return
        time.sleep(0.2)
    _kill(proc)
    pytest.fail("no training step logged in time")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait(proc: subprocess.Popen, log: Path) -> int:
    try:
        return proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill(proc)
        pytest.fail(f"training did not exit in time:\n{log.read_text()[-3000:]}")


def _assert_complete_zero3_checkpoint(ckpt: Path, step: int) -> None:
    assert (ckpt / "trainer_state.json").is_file()
    assert json.loads((ckpt / "trainer_state.json").read_text())["global_step"] == step
    assert (ckpt / "latest").read_text().strip() == f"global_step{step}"
    shards = sorted(p.name for p in (ckpt / f"global_step{step}").iterdir())
    assert shards == [
        f"zero_pp_rank_{r}_mp_rank_00_{kind}_states.pt" for r in (0, 1) for kind in ("model", "optim")
    ]
    assert {p.name for p in ckpt.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "scheduler.pt").is_file()


@pytest.fixture(scope="module")
def workdir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("lf_z3")
    out = d / "out"
    cfg = d / "train.yaml"
    cfg.write_text(
        "\n".join(
            [
                f"model_name_or_path: {tiny_model_dir}",
                "stage: sft",
                "do_train: true",
                "finetuning_type: full",
                "dataset: lf_demo",
                f"dataset_dir: {REPO / 'config' / 'demo'}",
                "template: qwen3_nothink",
                "cutoff_len: 512",
                f"output_dir: {out}",
                f"deepspeed: {REPO / 'artifacts/training_config/deepspeed/ds_z3_config.json'}",
                "per_device_train_batch_size: 1",
                "gradient_accumulation_steps: 1",
                "learning_rate: 1.0e-3",
                "lr_scheduler_type: cosine",
                "warmup_ratio: 0.1",
                f"max_steps: {MAX_STEPS}",
                "save_steps: 2",
                "logging_steps: 1",
                "report_to: none",
                "overwrite_output_dir: false",
                "",
            ]
        )
    )
    env = dict(
        os.environ, CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false", SFT_STOP_FILE=str(d / "STOP")
    )
    return {"dir": d, "out": out, "cfg": cfg, "env": env, "stop_file": d / "STOP"}


def test_sigterm_to_process_group_leaves_complete_checkpoint(workdir: dict) -> None:
    out, log = workdir["out"], workdir["dir"] / "run1.log"
    proc = _torchrun(workdir["cfg"], workdir["env"], log)
    _wait_for_logged_step(proc, out, 1, log)
    os.killpg(proc.pid, signal.SIGTERM)  # what SLURM / a launcher does: the whole group
    _wait(proc, log)  # torchrun itself exits non-zero on SIGTERM; the record is stop_reason.json
    reason = json.loads((out / "stop_reason.json").read_text())
    assert reason["reason"] == "signal" and reason["signal"] == "SIGTERM"
    step = reason["step"]
    assert 1 <= step < MAX_STEPS and reason["checkpoint_complete"] is True
    _assert_complete_zero3_checkpoint(out / f"checkpoint-{step}", step)
    assert not (out / "train_results.json").exists()  # LF's end-of-run outputs are skipped
    # The run log names the attention implementation the loaded model really used (LF falls back silently)
    assert '[sftpipe] kernels: {"attn_implementation": "sdpa", "liger_kernel": false' in log.read_text()
    workdir["first_stop"] = step


def test_rerun_resumes_and_stop_file_stops_it(workdir: dict) -> None:
    first = workdir.get("first_stop")
    if first is None:
        pytest.skip("needs the stopped run above")
    out, log = workdir["out"], workdir["dir"] / "run2.log"
    proc = _torchrun(workdir["cfg"], workdir["env"], log)
    _wait_for_logged_step(proc, out, first + 1, log)
    workdir["stop_file"].write_text(json.dumps({"reason": "stopped", "detail": "test"}))
    rc = _wait(proc, log)
    text = log.read_text()
    assert f"Resuming training from {out / f'checkpoint-{first}'}" in text
    assert f"Continuing training from global step {first}" in text
    assert rc != 0  # torchrun reports the workers' exit code 75 as a failure ...
    assert f"exitcode  : {STOP_EXIT_CODE}" in text  # ... naming it
    reason = json.loads((out / "stop_reason.json").read_text())
    assert reason["reason"] == "stop_file" and reason["requested"] == {"reason": "stopped", "detail": "test"}
    assert first < reason["step"] <= MAX_STEPS
    assert (out / f"stop_reason.step{first}.json").is_file()  # the earlier record is kept
    assert not workdir["stop_file"].exists()  # honoured once, so the next run is not stopped again
    _assert_complete_zero3_checkpoint(out / f"checkpoint-{reason['step']}", reason["step"])
    workdir["second_stop"] = reason["step"]
