"""Checkpoint table, best-checkpoint choice and the rotation guard (hand-written LF run files)."""

from __future__ import annotations

import json

import pytest
from sftpipe.cli import main
from sftpipe.runs import best as bc

from tests.unit.runs.run_files import log_lines, write_checkpoint, write_log

LOSSES = {1: 3.0, 2: 2.5, 3: 2.4, 4: 2.1, 5: 2.3, 6: 1.9, 7: 2.0, 8: 1.8}
EVALS = {2: 2.6, 4: 2.2, 6: 2.4, 8: 2.5}  # eval best at 4, train loss best at 8


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "run"
    write_log(run, log_lines(LOSSES, EVALS, total=8))
    for step in (2, 4, 6):
        write_checkpoint(run, step, LOSSES, EVALS, 8)
    write_checkpoint(run, 8, LOSSES, EVALS, 8, complete=False)  # killed while saving
    return run


def test_table_has_metrics_at_each_step(run):
    rows = bc.checkpoint_table(run)
    assert [(r["step"], r["complete"], r["loss"], r["eval_loss"]) for r in rows] == [
        (2, True, 2.5, 2.6),
        (4, True, 2.1, 2.2),
        (6, True, 1.9, 2.4),
        (8, False, 1.8, 2.5),
    ]
    assert rows[3]["problem"] == "no model weights" and rows[0]["time"].endswith("Z")


def test_best_by_eval_loss_else_train_loss(run):
    result = bc.best_checkpoint(run)
    assert result["metric"] == "eval_loss" and result["best"]["step"] == 4 and result["latest"]["step"] == 6
    assert bc.best_checkpoint(run, metric="loss")["best"]["step"] == 6  # 8 is better but incomplete
    no_eval = [r | {"eval_loss": None} for r in result["checkpoints"]]
    best, metric = bc.pick_best(no_eval)
    assert metric == "loss" and best["step"] == 6
    assert bc.pick_best([r | {"complete": False} for r in no_eval]) == (None, "loss")
    with pytest.raises(ValueError, match="metric 'acc'"):
        bc.pick_best(no_eval, "acc")


def test_best_ties_go_to_the_later_step():
    rows = [{"step": 2, "complete": True, "loss": 1.0}, {"step": 4, "complete": True, "loss": 1.0}]
    assert bc.pick_best(rows, "loss")[0]["step"] == 4


def test_cli_lists_and_marks(run, capsys):
    assert main(["checkpoints", str(run), "--root", str(run.parent)]) == 0
    out = capsys.readouterr().out
    assert "<- best" in out.splitlines()[2] and "<- latest" in out.splitlines()[3]
    assert "no model weights" in out and "best by eval_loss" in out
    assert main(["checkpoints", str(run), "--root", str(run.parent), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"]["step"] == 4
