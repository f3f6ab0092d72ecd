"""Cross-field rules and warnings (sftpipe.config.rules)."""

from __future__ import annotations

from sftpipe.config import rules as bc


def test_rotation_guard():
    args, problems = bc.rotation_guard(
        {"save_steps": 4, "eval_steps": 2, "val_size": 0.1, "eval_strategy": "steps", "save_total_limit": 2}
    )
    assert (
        args["metric_for_best_model"] == "eval_loss" and args["greater_is_better"] is False and problems == []
    )
    _, problems = bc.rotation_guard(
        {"save_steps": 3, "eval_steps": 2, "val_size": 0.1, "eval_strategy": "steps", "save_total_limit": 2}
    )
    assert "not a multiple of eval_steps" in problems[0]
    args, problems = bc.rotation_guard({"save_total_limit": 1, "save_steps": 2})
    assert "without evaluation" in problems[0] and "metric_for_best_model" not in args
    assert bc.rotation_guard({"save_steps": 2}) == ({"save_steps": 2}, [])
