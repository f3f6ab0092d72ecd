"""The readers on proxy logs captured from the real clients (Claude Code, OpenCode, OpenHands SDK).

The captures in tests/fixtures/harbor_jobs/<scaffold>/<trial>/ come from running each client against a
scripted model server. Checked here: structure the LF writer relies on, and that nothing the model
said is lost (every successful response outside side calls is a turn of some conversation, with its
reasoning).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sftpipe.data.conversion.model import Conversation
from sftpipe.data.conversion.read_trial import read_trial

JOBS = Path(__file__).resolve().parents[3] / "fixtures" / "harbor_jobs"
SCAFFOLD_OF_DIR = {"claude-code": "claude-code", "opencode": "open-code", "openhands-sdk": "openhands-sdk"}
TRIALS = sorted(
    p.parent.parent for p in JOBS.glob("*/*/agent/litellm-trajectory.jsonl") if p.parts[-4] in SCAFFOLD_OF_DIR
)


def test_captures_are_present() -> None:
    assert {t.parent.name for t in TRIALS} == set(SCAFFOLD_OF_DIR)


def _check_structure(conv: Conversation) -> None:
    roles = [m.role for m in conv.messages]
    assert "system" not in roles[1:]
    assert roles[-1] == "assistant"
    assert not any("x-anthropic-billing-header" in m.content for m in conv.messages)
    pending: list[str] = []
    for message in conv.messages:
        if message.role == "tool":
            assert pending and message.tool_call_id == pending.pop(0)  # results in call order
        else:
            assert not pending, "a call without its result"
        if message.role == "assistant":
            pending = [c.id for c in message.tool_calls]
            assert all(isinstance(c.arguments, dict) for c in message.tool_calls)


def _responses(trial: Path) -> list[tuple[int, dict]]:
    out = []
    for line_no, line in enumerate(
        (trial / "agent" / "litellm-trajectory.jsonl").read_text().splitlines(), 1
    ):
        record = json.loads(line)
        choices = (record.get("response_body") or {}).get("choices")
        if record.get("success") is not False and choices:
            out.append((line_no, choices[0]["message"]))
    return out


@pytest.mark.parametrize("trial", TRIALS, ids=[f"{t.parent.name}/{t.name}" for t in TRIALS])
def test_captured_trial(trial: Path) -> None:
    conversations, issues = read_trial(trial, SCAFFOLD_OF_DIR[trial.parent.name])
    codes = {i.code: i for i in issues}
    assert "reader_error" not in codes
    responses = _responses(trial)
    if not responses:
        assert conversations == [] and "empty_log" in codes
        return
    assert [c.agent_type for c in conversations].count("main") == 1
    for conv in conversations:
        _check_structure(conv)
    side_lines = (
        {int(d.split()[1]) for d in codes["side_call"].detail.split("; ")} if "side_call" in codes else set()
    )
    turns = [m for c in conversations for m in c.messages if m.role == "assistant"]
    for line_no, response in responses:
        if line_no in side_lines:
            continue
        ids = [c["id"] for c in response.get("tool_calls") or []]
        matches = [
            t
            for t in turns
            if [c.id for c in t.tool_calls] == ids and (ids or t.content == response["content"])
        ]
        assert matches, f"response of line {line_no} is in no conversation"
        if response.get("reasoning_content"):
            assert any(t.reasoning_content == response["reasoning_content"] for t in matches)


def test_claude_code_subagent_and_opencode_title_call() -> None:
    by_scaffold: dict[str, list[tuple[list[Conversation], dict]]] = {}
    for trial in TRIALS:
        conversations, issues = read_trial(trial, SCAFFOLD_OF_DIR[trial.parent.name])
        by_scaffold.setdefault(trial.parent.name, []).append(
            (conversations, {i.code: i.count for i in issues})
        )
    for scaffold in ("claude-code", "opencode"):
        spawned = [
            c
            for convs, _ in by_scaffold[scaffold]
            for c in convs
            if any(m.role == "user" and "SUBAGENT-" in m.content for m in c.messages)
        ]
        assert spawned and all(c.agent_type == "subagent" for c in spawned)
    # Every OpenCode run starts with a title-generator call (no tools): never a training sample.
    assert all(codes.get("side_call") == 1 for convs, codes in by_scaffold["opencode"] if convs)
