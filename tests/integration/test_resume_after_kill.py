"""SIGKILL the whole pipeline mid-training; the rerun resumes from the last complete checkpoint.

Runs through the `demo-local` variant, so it also proves a variant never touches config.yaml.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from sftpipe.runs import checkpoints
from sftpipe.runs import index as run_index

from tests.integration.pipeline import BIN, demo_project, env, snakemake
from tests.project import load_yaml

pytestmark = pytest.mark.slow
VARIANT = ["--config", "variant=demo-local"]


def wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"pipeline ended early with {proc.returncode}: {proc.stdout.read()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError("timed out waiting for the training to reach a checkpoint")


def test_sigkill_then_rerun_resumes(tmp_path, tiny_model_dir):
    root = demo_project(tmp_path / "proj", tiny_model_dir)
    variant = root / "config/variants/demo-local.yaml"
    variant.write_text(
        variant.read_text().replace(
            "      output_dir: demo-local-run",
            "      output_dir: demo-local-run\n      max_steps: 12\n      save_steps: 2\n      eval_steps: 6",
        )
    )
    config_before = (root / "config/config.yaml").read_bytes()
    run_dir = root / "artifacts/model/demo-local-run"

    proc = subprocess.Popen(
        [str(BIN / "snakemake"), "--profile", "profiles/default", "--cores", "2", *VARIANT],
        cwd=root,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(lambda: (c := checkpoints.latest_complete(run_dir)) is not None and c.step >= 4, 600, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # no handler runs: the hardest interruption
        proc.wait()
    killed_at = checkpoints.latest_complete(run_dir).step
    assert not (run_dir / "train_results.json").exists()

    snakemake(root, "--unlock", *VARIANT)
    snakemake(root, *VARIANT)

    record = json.loads((run_dir / "run.json").read_text())
    assert record["resumed_from"].endswith(f"checkpoint-{killed_at}")  # the last complete one
    state = json.loads((run_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 12
    metrics = json.loads((run_dir / "metrics.json").read_text())
    steps = [row["step"] for row in metrics["series"] if row.get("loss") is not None]
    assert steps == list(range(1, 13))  # duplicated trainer_log lines after the resume are collapsed

    entries = run_index.read_entries(root / "artifacts/index.yaml")
    assert [e["status"] for e in entries][-1] == "completed"
    assert len(entries) == 2  # the killed attempt is recorded too
    assert entries[0]["variant"] == entries[1]["variant"] == "demo-local"

    # The variant's results went to its own output file; config.yaml is byte-identical.
    assert (root / "config/config.yaml").read_bytes() == config_before
    output = load_yaml(root / "config/variants/demo-local.output.yaml")["runtime_info"]["output"]
    assert output["checkpoint_path"] == "artifacts/model/demo-local-run/checkpoint-12/"
