"""Checkpoint completeness and the run-directory policy of the train stage."""

from __future__ import annotations

import json

import pytest
from sftpipe import config as sc
from sftpipe.paths import RUN_RECORD
from sftpipe.runs import checkpoints
from sftpipe.training.run_dir import RunDirError, prepare_run_dir

from tests.project import make_project


def make_ckpt(run_dir, step, *, deepspeed=True, latest=True, weights=True, state_step=None):
    path = run_dir / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": state_step or step}))
    if weights:
        (path / "model.safetensors").write_bytes(b"w")
    if deepspeed:
        (path / f"global_step{step}").mkdir()
        (path / f"global_step{step}" / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(b"o")
        if latest:
            (path / "latest").write_text(f"global_step{step}")
    else:
        (path / "optimizer.pt").write_bytes(b"o")
    return path


def test_completeness_rules(tmp_path):
    run = tmp_path / "run"
    make_ckpt(run, 2)
    make_ckpt(run, 4, deepspeed=False)
    make_ckpt(run, 6, latest=False)  # killed while saving shards
    make_ckpt(run, 8, weights=False)
    make_ckpt(run, 10, state_step=9)
    (run / "checkpoint-12").mkdir()
    found = {c.step: c for c in checkpoints.list_checkpoints(run)}
    assert [s for s, c in found.items() if c.complete] == [2, 4]
    assert "without a `latest` tag" in found[6].problem
    assert found[8].problem == "no model weights"
    assert "global_step 9 != 10" in found[10].problem
    assert found[12].problem == "no trainer_state.json"
    assert checkpoints.latest_complete(run).step == 4


def test_quarantine_renames_only_newer_incomplete(tmp_path):
    run = tmp_path / "run"
    make_ckpt(run, 2)
    make_ckpt(run, 4, latest=False)
    moved = checkpoints.quarantine_incomplete(run)
    assert [src.name for src, _ in moved] == ["checkpoint-4"]
    assert moved[0][1].exists() and moved[0][1].name.startswith("checkpoint-4.incomplete-")
    assert [c.step for c in checkpoints.list_checkpoints(run)] == [2]


@pytest.fixture
def cfg(tmp_path):
    root = make_project(tmp_path / "proj")
    return sc.load(root=root)


def test_fresh_run_dir(cfg):
    prepared = prepare_run_dir(cfg)
    assert prepared.resume_from is None and prepared.archived_to is None


def test_interrupted_same_config_resumes_from_last_complete(cfg):
    run = cfg.root / cfg.run_dir
    make_ckpt(run, 4)
    make_ckpt(run, 8, latest=False)
    (run / RUN_RECORD).write_text(json.dumps({"training_hash": cfg.training_hash()}))
    prepared = prepare_run_dir(cfg)
    assert prepared.resume_from == run / "checkpoint-4"
    assert [s.name for s, _ in prepared.quarantined] == ["checkpoint-8"]


@pytest.mark.parametrize("finished,same", [(True, True), (False, False)])
def test_finished_or_different_run_is_archived_not_deleted(cfg, finished, same):
    run = cfg.root / cfg.run_dir
    make_ckpt(run, 4)
    (run / RUN_RECORD).write_text(json.dumps({"training_hash": cfg.training_hash() if same else "other"}))
    if finished:
        (run / "train_results.json").write_text("{}")
    prepared = prepare_run_dir(cfg)
    assert prepared.resume_from is None
    assert (prepared.archived_to / "checkpoint-4" / "model.safetensors").exists()
    assert not run.exists()


def test_refuse_policy_explains_the_way_out(tmp_path):
    root = make_project(tmp_path / "proj")
    raw = sc.read_yaml(root / "config/config.yaml")
    raw["runtime_info"]["input"]["experiment"]["on_existing_run"] = "refuse"
    cfg = sc.RunConfig(sc.resolve(raw, root), root)
    make_ckpt(root / cfg.run_dir, 4)
    with pytest.raises(RunDirError, match="unknown provenance.*on_existing_run: archive"):
        prepare_run_dir(cfg)
    assert (root / cfg.run_dir / "checkpoint-4").exists()
