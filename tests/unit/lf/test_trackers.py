"""experiment.tracker -> report_to / LF args / environment (the training runs are in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sftpipe.lf.trackers import report_to, tracker_env, tracker_lf_args


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        ({}, "wandb"),  # the default: nothing changes for existing configs
        ({"tracker": "wandb", "wandb_mode": "offline"}, "wandb"),
        ({"tracker": "wandb", "wandb_mode": "disabled"}, "none"),
        ({"tracker": "tensorboard", "wandb_mode": "disabled"}, "tensorboard"),
        ({"tracker": "mlflow"}, "mlflow"),
        ({"tracker": "none", "wandb_mode": "online"}, "none"),
    ],
)
def test_report_to(experiment, expected):
    assert report_to(experiment) == expected


def test_unknown_tracker_is_a_clear_error():
    with pytest.raises(ValueError, match="experiment.tracker: 'comet'"):
        report_to({"tracker": "comet"})


def test_files_go_under_the_run_dir_and_the_environment_wins():
    run = Path("/runs/demo")
    assert tracker_lf_args({"tracker": "tensorboard"}, run) == {"logging_dir": "/runs/demo/tensorboard"}
    assert tracker_lf_args({"tracker": "mlflow"}, run) == {}
    env = tracker_env({"tracker": "mlflow", "wandb_project": "p"}, run, {})
    assert env == {"MLFLOW_TRACKING_URI": "sqlite:////runs/demo/mlflow.db", "MLFLOW_EXPERIMENT_NAME": "p"}
    assert tracker_env({"tracker": "mlflow"}, run, {"MLFLOW_TRACKING_URI": "http://server"}) == {
        "MLFLOW_EXPERIMENT_NAME": "sftpipe"
    }
    assert tracker_env({"tracker": "tensorboard"}, run, {}) == {}
