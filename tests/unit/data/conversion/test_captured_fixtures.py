"""Well-formedness of the Harbor job fixtures captured from real agent clients.

The fixtures under tests/fixtures/harbor_jobs/ were recorded by tools/capture/
(real Claude Code, OpenCode and OpenHands SDK runs against a scripted local model
server). These tests pin them to the proxy log format of specs/inputs.md §2 and the
Harbor job layout of §1, so the converter tests built on them rest on valid input.
"""

from __future__ import annotations

import filecmp
import json
import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[4]
JOBS = REPO / "tests" / "fixtures" / "harbor_jobs"
DEMO_JOB = REPO / "config" / "demo" / "harbor_job"

# scaffold dir → (Harbor agent name, API protocol of its proxy log)
SCAFFOLDS = {
    "claude-code": ("claude-code", "anthropic"),
    "opencode": ("opencode", "openai"),
    "openhands-sdk": ("openhands-sdk", "openai"),
}
INSTANCE_ID = re.compile(r"^[A-Za-z0-9_.-]+__[A-Za-z0-9_.-]+-\d+(__.+)?$")
RECORD_FIELDS = {
    "session_id",
    "success",
    "request_time",
    "timestamp",
    "duration_ms",
    "request_body",
    "response_body",
    "usage",
}


def _trial_dirs(scaffold: str) -> list[Path]:
    return sorted(p.parent for p in (JOBS / scaffold).glob("*/result.json"))


def _records(trial: Path) -> list[dict[str, Any]]:
    lines = (trial / "agent" / "litellm-trajectory.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


ALL_TRIALS = [(s, t) for s in SCAFFOLDS for t in _trial_dirs(s)]


def test_every_scaffold_has_resolved_unresolved_and_exception_trials() -> None:
    for scaffold in SCAFFOLDS:
        results = [json.loads((t / "result.json").read_text()) for t in _trial_dirs(scaffold)]
        rewards = [r["verifier_result"]["rewards"]["reward"] for r in results]
        assert 1.0 in rewards and 0.0 in rewards, scaffold
        assert any(r["exception_info"] for r in results), scaffold


@pytest.mark.parametrize("scaffold", sorted(SCAFFOLDS))
def test_job_result_matches_trials(scaffold: str) -> None:
    job = JOBS / scaffold
    config = json.loads((job / "config.json").read_text())
    result = json.loads((job / "result.json").read_text())
    assert config["agents"][0]["name"] == SCAFFOLDS[scaffold][0]
    trials = _trial_dirs(scaffold)
    assert result["n_total_trials"] == len(trials)
    (evals,) = result["stats"]["evals"].values()
    by_reward: dict[str, list[str]] = {}
    by_exception: dict[str, list[str]] = {}
    for trial in trials:
        reward = float((trial / "verifier" / "reward.txt").read_text())
        by_reward.setdefault(str(reward), []).append(trial.name)
        info = json.loads((trial / "result.json").read_text())["exception_info"]
        if info:
            by_exception.setdefault(info["exception_type"], []).append(trial.name)
    assert {k: sorted(v) for k, v in evals["reward_stats"]["reward"].items()} == by_reward
    assert {k: sorted(v) for k, v in evals["exception_stats"].items()} == by_exception
    assert evals["n_trials"] == len(trials)
    assert evals["n_errors"] == sum(len(v) for v in by_exception.values())


@pytest.mark.parametrize(("scaffold", "trial"), ALL_TRIALS, ids=lambda v: getattr(v, "name", v))
def test_trial_layout(scaffold: str, trial: Path) -> None:
    config = json.loads((trial / "config.json").read_text())
    result = json.loads((trial / "result.json").read_text())
    instance_id = Path(config["task"]["path"]).name
    assert INSTANCE_ID.match(instance_id), instance_id
    assert result["task_name"] == instance_id
    assert trial.name.startswith(instance_id + "__")
    assert config["trial_name"] == result["trial_name"] == trial.name
    assert config["agent"]["name"] == result["agent_info"]["name"] == SCAFFOLDS[scaffold][0]
    assert result["agent_info"]["version"]
    reward = float((trial / "verifier" / "reward.txt").read_text())
    assert result["verifier_result"]["rewards"]["reward"] == reward
    assert (trial / "exception.txt").exists() == (result["exception_info"] is not None)


def _check_openai_tools(tools: list[dict[str, Any]]) -> None:
    for tool in tools:
        assert tool["type"] == "function"
        function = tool["function"]
        assert set(function) >= {"name", "parameters"}
        assert function["parameters"].get("type") == "object"
        assert "input_schema" not in function and "input_schema" not in tool


def _check_response(body: dict[str, Any]) -> None:
    assert body["object"] == "chat.completion"
    assert {"id", "created", "model", "choices", "usage"} <= set(body)
    (choice,) = body["choices"]
    assert choice["finish_reason"] in ("stop", "tool_calls")
    message = choice["message"]
    assert message["role"] == "assistant"
    for call in message.get("tool_calls") or []:
        assert call["type"] == "function"
        assert isinstance(json.loads(call["function"]["arguments"]), dict)
    assert (choice["finish_reason"] == "tool_calls") == bool(message.get("tool_calls"))


def _check_anthropic_messages(messages: list[dict[str, Any]]) -> None:
    system = messages[0]
    assert system["role"] == "system"
    assert all(block["type"] == "text" for block in system["content"])
    assert system["content"][0]["text"].startswith("x-anthropic-billing-header:")
    seen_tool_uses: set[str] = set()
    for message in messages[1:]:
        content = message["content"]
        if isinstance(content, str):
            continue
        for block in content:
            if block["type"] == "tool_use":
                seen_tool_uses.add(block["id"])
            elif block["type"] == "tool_result":
                assert message["role"] == "user"
                assert block["tool_use_id"] in seen_tool_uses


def _check_openai_messages(messages: list[dict[str, Any]]) -> None:
    assert messages[0]["role"] == "system"
    seen_calls: set[str] = set()
    for message in messages:
        assert message["role"] in ("system", "user", "assistant", "tool")
        for call in message.get("tool_calls") or []:
            seen_calls.add(call["id"])
        if message["role"] == "tool":
            assert message["tool_call_id"] in seen_calls


@pytest.mark.parametrize(("scaffold", "trial"), ALL_TRIALS, ids=lambda v: getattr(v, "name", v))
def test_proxy_log_records(scaffold: str, trial: Path) -> None:
    protocol = SCAFFOLDS[scaffold][1]
    records = _records(trial)
    assert records, "empty log"
    assert len({r["session_id"] for r in records}) == 1
    for record in records:
        assert RECORD_FIELDS <= set(record)
        assert isinstance(record["request_time"], int) and record["request_time"] > 1e12
        body = record["request_body"]
        assert body["model"] and body["messages"]
        _check_openai_tools(body.get("tools") or [])
        if protocol == "anthropic":
            _check_anthropic_messages(body["messages"])
        else:
            _check_openai_messages(body["messages"])
        if record["success"] is False:
            assert record["response_body"] is None and record["failure"]
        else:
            assert record["success"] is True
            _check_response(record["response_body"])


@pytest.mark.parametrize(("scaffold", "trial"), ALL_TRIALS, ids=lambda v: getattr(v, "name", v))
def test_failed_call_is_retried_with_same_input(scaffold: str, trial: Path) -> None:
    records = _records(trial)
    failed = [i for i, r in enumerate(records) if r["success"] is False]
    assert failed, "every captured trial injects one failing call"
    for index in failed:
        # Claude Code's billing line changes per request; compare the conversation.
        messages = records[index]["request_body"]["messages"][1:]
        assert any(
            r["success"] and r["request_body"]["messages"][1:] == messages for r in records[index + 1 :]
        )


def test_claude_code_logs_include_subagent_calls() -> None:
    subagent = [
        r
        for t in _trial_dirs("claude-code")
        for r in _records(t)
        if "cc_is_subagent=true" in r["request_body"]["messages"][0]["content"][0]["text"]
    ]
    assert subagent
    names = {t["function"]["name"] for r in subagent for t in r["request_body"]["tools"]}
    assert "Edit" not in names and "Write" not in names  # Explore agent: read-only tools


def test_demo_job_is_the_claude_code_fixture() -> None:
    if not DEMO_JOB.exists():
        pytest.skip("config/demo/harbor_job not present")
    compare = filecmp.dircmp(JOBS / "claude-code", DEMO_JOB)
    pending = [compare]
    while pending:
        cmp = pending.pop()
        assert not cmp.left_only and not cmp.right_only and not cmp.diff_files, cmp.report()
        pending.extend(cmp.subdirs.values())
