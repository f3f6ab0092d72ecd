"""metrics/plotting on real LLaMA-Factory outputs: a tiny model trained on CPU, killed, resumed.

The first attempt is killed (SIGKILL, like a node failure) right after it logs step 3, so the last
checkpoint is 2 and step 3 is in trainer_log.jsonl; the resume (max_steps raised from 6 to 7)
restarts from checkpoint-2 and LF appends step 3 again. That is the duplicated-lines case the
metrics must deduplicate; the run directory's trainer_state.json is the reference.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sftpipe.report.plotting import plot_training
from sftpipe.runs.metrics import extract_metrics, read_trainer_log, write_metrics

pytestmark = pytest.mark.slow

LF_CLI = Path(sys.executable).with_name("llamafactory-cli")


def _lf_config(model_dir: Path, dataset_dir: Path, out_dir: Path, max_steps: int) -> str:
    return f"""\
model_name_or_path: {model_dir}
stage: sft
do_train: true
finetuning_type: full
dataset: lf_demo
dataset_dir: {dataset_dir}
template: qwen3_nothink
cutoff_len: 128
val_size: 0.1
output_dir: {out_dir}
overwrite_output_dir: false
per_device_train_batch_size: 2
per_device_eval_batch_size: 4
gradient_accumulation_steps: 1
learning_rate: 1.0e-3
lr_scheduler_type: cosine
warmup_steps: 1
max_steps: {max_steps}
logging_steps: 1
save_steps: 2
eval_strategy: steps
eval_steps: 2
report_to: none
include_num_input_tokens_seen: true
dataloader_num_workers: 0
seed: 1
"""


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HOME=str(tmp / "hf"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        WANDB_DISABLED="true",
        CUDA_VISIBLE_DEVICES="",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
    )
    return env


def _train_steps_logged(log: Path) -> list[int]:
    if not log.is_file():
        return []
    steps = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line being appended right now
            continue
        if "loss" in record:
            steps.append(record["current_steps"])
    return steps


def test_metrics_on_killed_and_resumed_run(
    tiny_model_dir: Path, demo_dataset_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    env = _env(tmp_path)
    (tmp_path / "first.yaml").write_text(_lf_config(tiny_model_dir, demo_dataset_dir, out, max_steps=6))
    with open(tmp_path / "first.log", "w") as console:
        proc = subprocess.Popen(
            [str(LF_CLI), "train", str(tmp_path / "first.yaml")],
            cwd=tmp_path,
            env=env,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while 3 not in _train_steps_logged(out / "trainer_log.jsonl"):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "LF did not reach step 3 in 300 s"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: nothing of the first attempt survives
        proc.wait(30)
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-2"], f"kill landed late: {checkpoints}"

    # Mid-run view: no trainer_state.json in the run dir yet, history from checkpoint-2 + the live log.
    live = extract_metrics(out)
    s = live["summary"]
    assert s["finished"] is False and s["final_loss"] is None and s["train_runtime"] is None
    assert s["total_steps"] == 3 and s["max_steps"] == 6
    assert s["sources"]["trainer_state"].endswith("checkpoint-2/trainer_state.json")
    assert [r["step"] for r in live["series"]] == [1, 2, 3]
    assert live["series"][0]["grad_norm"] is not None and live["series"][2]["grad_norm"] is None
    assert live["series"][1]["eval_loss"] is not None  # eval at step 2 came from the checkpoint's history

    # Resume with max_steps raised: LF restarts from checkpoint-2 and appends step 3 again.
    (tmp_path / "second.yaml").write_text(_lf_config(tiny_model_dir, demo_dataset_dir, out, max_steps=7))
    result = subprocess.run(
        [str(LF_CLI), "train", str(tmp_path / "second.yaml")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "checkpoint-2" in result.stdout  # it did resume

    raw_steps = _train_steps_logged(out / "trainer_log.jsonl")
    assert raw_steps.count(3) == 2 and raw_steps[-1] == 7
    lines, replaced, restarts = read_trainer_log(out / "trainer_log.jsonl", [])
    assert replaced >= 1 and restarts == 1
    assert [x["current_steps"] for x in lines if "loss" in x] == [1, 2, 3, 4, 5, 6, 7]

    metrics = write_metrics(out)
    s, series = metrics["summary"], metrics["series"]
    state = json.loads((out / "trainer_state.json").read_text())
    results = json.loads((out / "train_results.json").read_text())
    history = state["log_history"]
    train_hist = {h["step"]: h for h in history if "loss" in h}
    eval_hist = {h["step"]: h["eval_loss"] for h in history if "eval_loss" in h}

    assert [r["step"] for r in series] == sorted(train_hist) == [1, 2, 3, 4, 5, 6, 7]
    for row in series:  # the series is trainer_state's clean history, step for step
        h = train_hist[row["step"]]
        assert (row["loss"], row["learning_rate"], row["grad_norm"], row["epoch"]) == (
            h["loss"],
            h["learning_rate"],
            h["grad_norm"],
            h["epoch"],
        )
        assert row["eval_loss"] == eval_hist.get(row["step"])
    # ...and agrees with the deduplicated live log wherever both have the value.
    live_loss = {x["current_steps"]: x["loss"] for x in lines if "loss" in x}
    assert {r["step"]: r["loss"] for r in series} == live_loss

    assert s["finished"] is True and s["resumed"] is True
    assert s["train_runtime"] == results["train_runtime"]
    # transformers' train_loss after a resume: the loss summed over steps 3..7 divided by all 7 steps.
    assert results["train_loss"] * 7 / 5 == pytest.approx(
        sum(train_hist[i]["loss"] for i in range(3, 8)) / 5, abs=1e-3
    )
    assert s["train_results_train_loss"] == results["train_loss"]
    assert s["final_loss"] == pytest.approx(sum(h["loss"] for h in train_hist.values()) / 7)
    assert [w for w in s["warnings"] if "only sums the steps after the resume" not in w] == []
    assert s["total_steps"] == s["max_steps"] == state["global_step"] == 7
    assert s["resumed_duplicate_lines"] == replaced
    assert s["num_input_tokens_seen"] == results["num_input_tokens_seen"]
    assert sorted(eval_hist) == [2, 4, 6] and s["eval_points"] == 3
    assert s["best_eval_loss"] == min(eval_hist.values()) and s["eval_loss_last"] == eval_hist[6]
    assert s["last_loss"] == train_hist[7]["loss"]
    assert s["best_loss"] == min(h["loss"] for h in train_hist.values())
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 7

    png = plot_training(metrics, out / "training_loss.png", "tiny model, killed and resumed")
    assert png.stat().st_size > 10_000
