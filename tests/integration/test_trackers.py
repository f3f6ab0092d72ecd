"""experiment.tracker: a real (tiny, CPU, 1 rank) LLaMA-Factory run per tracker through the pipeline's own
render + launch_env + torchrun command; each tracker leaves its offline files in the run dir, and only its own."""

from __future__ import annotations

import json
import subprocess

import pytest
from sftpipe.config import RunConfig, read_yaml, resolve
from sftpipe.data.registration import register
from sftpipe.lf import render as lf_render
from sftpipe.paths import LF_DATA_DIR
from sftpipe.training.process import free_port, launch_env, torchrun_command

from tests.integration.pipeline import demo_project

pytestmark = pytest.mark.slow
STEPS = 2


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_model_dir):
    return demo_project(tmp_path_factory.mktemp("trackers") / "proj", tiny_model_dir)


def tiny_run_cfg(root, tracker: str) -> RunConfig:
    raw = read_yaml(root / "config/config.yaml")
    inp = raw["runtime_info"]["input"]
    inp["source"].update(type="local_lf", lf_path="config/demo/lf_demo.json")
    inp["conversion"].update(data_name="demo_local", max_instances=8)
    inp["training"].update(
        deepspeed="",
        cutoff_len=256,
        max_steps=STEPS,
        save_steps=100,
        eval_steps=100,
        output_dir=f"tracker-{tracker}",
        gradient_accumulation_steps=1,
    )
    inp["infrastructure"].update(n_gpus_per_node=1)
    inp["experiment"].update(tracker=tracker)
    return RunConfig(resolve(raw, root), root)


def train(cfg: RunConfig) -> None:
    root = cfg.root
    register(cfg, root / LF_DATA_DIR / "dataset_info.json", root / "registered.json")
    run_dir = root / cfg.run_dir
    run_dir.mkdir(parents=True)
    lf_yaml = run_dir.parent / f"{run_dir.name}.lf.yaml"
    lf_render.dump(lf_render.render(cfg), lf_yaml)
    env = launch_env(cfg, run_dir / "STOP")
    assert ("MLFLOW_TRACKING_URI" in env) == (cfg.experiment["tracker"] == "mlflow")
    proc = subprocess.run(
        torchrun_command(cfg, lf_yaml, "127.0.0.1", free_port()),
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert json.loads((run_dir / "trainer_state.json").read_text())["global_step"] == STEPS


def tracker_files(run_dir) -> dict[str, list]:
    return {
        "wandb": sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")),
        "tensorboard": sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*")),
        "mlflow": sorted(run_dir.glob("mlflow.db")),
    }


@pytest.mark.parametrize("tracker", ["wandb", "tensorboard", "mlflow", "none"])
def test_tracker_writes_offline_files_in_the_run_dir(root, tracker, monkeypatch):
    for var in ("MLFLOW_TRACKING_URI", "WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    cfg = tiny_run_cfg(root, tracker)
    assert lf_render.render(cfg)["report_to"] == tracker
    train(cfg)
    run_dir = root / cfg.run_dir
    files = tracker_files(run_dir)
    assert {name for name, found in files.items() if found} == ({tracker} - {"none"}), files
    if tracker == "tensorboard":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(files["tensorboard"][0].parent))
        events.Reload()
        assert len(events.Scalars("train/loss")) == STEPS
    if tracker == "mlflow":
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{files['mlflow'][0]}")
        runs = client.search_runs([client.get_experiment_by_name("sftpipe").experiment_id])
        # LF's evaluation after training reopens a run (generated name) for the final eval metrics
        (run,) = [r for r in runs if r.info.run_name == cfg.tracking_name]
        assert run.info.status == "FINISHED" and "eval_loss" in {m for r in runs for m in r.data.metrics}
        assert len(client.get_metric_history(run.info.run_id, "loss")) == STEPS
        assert not (root / "mlartifacts").exists()  # nothing written outside the run dir


def test_wandb_disabled_still_reports_nowhere(root):
    cfg = tiny_run_cfg(root, "wandb")
    cfg.experiment["wandb_mode"] = "disabled"
    assert lf_render.render(cfg)["report_to"] == "none"
    assert launch_env(cfg, root / "STOP")["WANDB_MODE"] == "disabled"
