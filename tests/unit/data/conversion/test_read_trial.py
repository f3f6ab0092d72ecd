"""read_trial: source selection per scaffold and trials with nothing usable (issues, never exceptions)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from reader_logs import FIXTURES, openai_response, record, trial_with_log
from sftpipe.data.conversion.read_trial import read_trial


def _codes(issues: list) -> dict[str, int]:
    return {i.code: i.count for i in issues}


def test_missing_sources_and_unknown_scaffold(tmp_path: Path) -> None:
    (tmp_path / "agent").mkdir()
    conversations, issues = read_trial(tmp_path, "claude-code")
    assert conversations == [] and "no_trajectory" in _codes(issues)
    conversations, issues = read_trial(tmp_path, "codex")
    assert conversations == [] and "unknown_scaffold" in _codes(issues)


def test_empty_and_all_failed_logs(tmp_path: Path) -> None:
    conversations, issues = read_trial(trial_with_log(tmp_path / "a", []), "open-code")
    assert conversations == [] and "empty_log" in _codes(issues)
    failed = [record([{"role": "user", "content": "x"}], t=i, success=False) for i in range(2)]
    conversations, issues = read_trial(trial_with_log(tmp_path / "b", failed), "open-code")
    assert conversations == [] and _codes(issues)["all_calls_failed"] == 1


def test_empty_log_falls_back_to_atif(tmp_path: Path) -> None:
    trial = trial_with_log(tmp_path, [])
    shutil.copy(
        FIXTURES / "harbor" / "atif-openhands" / "hello-world.trajectory.json",
        trial / "agent" / "trajectory.json",
    )
    conversations, issues = read_trial(trial, "openhands-sdk")
    assert len(conversations) == 1 and conversations[0].source == "atif"
    assert {"empty_log", "atif_fallback"} <= set(_codes(issues))


def test_terminus2_prefers_atif_and_uses_the_log_without_it(tmp_path: Path) -> None:
    prompt = {"role": "user", "content": "task"}
    answer = '{"analysis": "a", "plan": "p", "commands": [], "task_complete": true}'
    trial = trial_with_log(tmp_path, [record([prompt], openai_response(answer), t=1)])
    conversations, _ = read_trial(trial, "terminus2")
    assert [(m.role, m.content) for m in conversations[0].messages] == [
        ("user", "task"),
        ("assistant", answer),
    ]
    assert conversations[0].source == "proxy_log"

    atif = {
        "schema_version": "ATIF-v1.7",
        "agent": {"name": "terminus-2"},
        "steps": [
            {"step_id": 1, "source": "user", "message": "task"},
            {"step_id": 2, "source": "agent", "message": answer},
        ],
    }
    (trial / "agent" / "trajectory.json").write_text(json.dumps(atif))
    conversations, _ = read_trial(trial, "terminus2")
    assert conversations[0].source == "atif"


def test_garbage_files_never_raise(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "litellm-trajectory.jsonl").write_bytes(b'\x00\xff garbage\n{"request_body": 1}\n')
    (agent / "trajectory.json").write_text('[{"steps": 1}]')
    for scaffold in ("claude-code", "open-code", "openhands-sdk", "terminus2"):
        conversations, issues = read_trial(tmp_path, scaffold)
        assert conversations == [] and issues
        assert "reader_error" not in _codes(issues)
