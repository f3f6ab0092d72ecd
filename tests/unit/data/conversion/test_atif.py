"""ATIF trajectories: terminus-2 raw answers, continuation + copied context, other-scaffold fallback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from reader_logs import FIXTURES, roles
from sftpipe.data.conversion.read_trial import read_trial

T2 = FIXTURES / "harbor" / "atif-terminus2"


def _trial(tmp_path: Path, sample_dir: Path, stem: str) -> Path:
    agent = tmp_path / "trial" / "agent"
    agent.mkdir(parents=True)
    for path in sample_dir.glob(f"{stem}.trajectory*.json"):
        shutil.copy(path, agent / path.name[len(stem) + 1 :])
    return agent.parent


def _write_atif(tmp_path: Path, document: dict[str, Any]) -> Path:
    agent = tmp_path / "trial" / "agent"
    agent.mkdir(parents=True)
    (agent / "trajectory.json").write_text(json.dumps(document))
    return agent.parent


def _strictly_alternating(messages: list[Any]) -> bool:
    return [m.role for m in messages] == ["user", "assistant"] * (len(messages) // 2)


def test_terminus2_linear_history_with_continuation_and_copied_context(tmp_path: Path) -> None:
    conversations, issues = read_trial(
        _trial(tmp_path, T2, "hello-world-context-summarization-linear-history"), "terminus2"
    )
    assert len(conversations) == 2
    before, after = conversations
    assert all(_strictly_alternating(c.messages) for c in conversations)
    assert before.tools == [] and before.source == "atif" and before.agent_type == "main"
    # Newer Harbor stores the raw JSON answer: kept verbatim.
    assert json.loads(before.messages[1].content)["commands"][0]["keystrokes"] == "mkdir test_dir\n"
    assert len(before.messages) == 6  # steps 2-4; the last observation is not followed by a turn
    # The continuation opens with its copied user context (task prompt, handoff, answers) as one turn;
    # the copied agent step (questions) is not trained again.
    opening = after.messages[0].content
    assert opening.startswith("You are an AI assistant") and "Here are the answers" in opening
    assert "I have the following questions" not in opening
    assert json.loads(after.messages[-1].content)["task_complete"] is True
    assert {i.code: i.count for i in issues}["copied_context_skipped"] == 1


def test_terminus2_inline_summarization_rebuilds_json_answers(tmp_path: Path) -> None:
    conversations, _ = read_trial(_trial(tmp_path, T2, "hello-world-context-summarization"), "terminus2")
    assert len(conversations) == 2
    first, second = conversations
    answer = json.loads(first.messages[1].content)
    assert answer == {
        "analysis": "Terminal is ready. Let me create a test directory first.",
        "plan": "Create test_dir to set up some context.",
        "commands": [{"keystrokes": "mkdir test_dir\n", "duration": 0.1}],
        "task_complete": False,
    }
    assert first.messages[1].content.startswith('{\n  "analysis"')
    # After the handoff the agent gets the original task prompt plus the answers.
    assert second.messages[0].content.startswith("You are an AI assistant")
    assert second.messages[0].content.endswith("Please follow the spec to interact with the terminal.")
    final = json.loads(second.messages[-1].content)
    assert final["task_complete"] is True and final["commands"] == []
    assert all(_strictly_alternating(c.messages) for c in conversations)


def test_terminus2_unparseable_answer_kept_verbatim_with_reasoning(tmp_path: Path) -> None:
    conversations, _ = read_trial(_trial(tmp_path, T2, "hello-world-invalid-json"), "terminus2")
    (conv,) = conversations
    first = conv.messages[1]
    assert first.content.startswith("I need to create a file") and first.content.endswith("This should work!")
    assert first.reasoning_content.startswith("The task is straightforward")
    assert conv.messages[2].content.startswith("Previous response had parsing errors")
    assert json.loads(conv.messages[3].content)["commands"][0]["duration"] == 0.1
    assert all(m.reasoning_content for m in conv.messages if m.role == "assistant")


def test_openhands_atif_is_the_fallback_without_a_proxy_log(tmp_path: Path) -> None:
    conversations, issues = read_trial(
        _trial(tmp_path, FIXTURES / "harbor" / "atif-openhands", "hello-world"), "openhands-sdk"
    )
    (conv,) = conversations
    assert roles(conv.messages) == ["system", "user", "assistant", "tool", "assistant"]
    assert conv.messages[3].tool_call_id == "call_fake_1"
    assert conv.messages[-1].tool_calls[0].name == "finish"
    assert [t["function"]["name"] for t in conv.tools][:1] == ["execute_bash"]
    codes = {i.code for i in issues}
    assert "atif_fallback" in codes and "atif_system_step_dropped" in codes


def test_claude_code_atif_uses_raw_tool_result_and_merges_block_steps(tmp_path: Path) -> None:
    document = {
        "schema_version": "ATIF-v1.2",
        "session_id": "s",
        "agent": {"name": "claude-code", "version": "2.0"},
        "steps": [
            {"step_id": 1, "source": "user", "message": "fix"},
            {
                "step_id": 2,
                "source": "agent",
                "message": "Reading.",
                "reasoning_content": "think",
                "extra": {"is_sidechain": False},
            },
            {
                "step_id": 3,
                "source": "agent",
                "message": "Executed Read toolu_1",
                "tool_calls": [{"tool_call_id": "toolu_1", "function_name": "Read", "arguments": {"p": "a"}}],
                "observation": {
                    "results": [
                        {
                            "source_call_id": "toolu_1",
                            "content": "decorated\n[metadata] x",
                            "extra": {
                                "tool_result_metadata": {
                                    "raw_tool_result": {
                                        "content": "<tool_use_error>no file</tool_use_error>",
                                        "is_error": True,
                                    }
                                }
                            },
                        }
                    ]
                },
            },
            {"step_id": 4, "source": "agent", "message": "side", "extra": {"is_sidechain": True}},
            {"step_id": 5, "source": "agent", "message": "Done."},
        ],
    }
    conversations, issues = read_trial(_write_atif(tmp_path, document), "claude-code")
    (conv,) = conversations
    assert roles(conv.messages) == ["user", "assistant", "tool", "assistant"]
    merged = conv.messages[1]
    assert (merged.content, merged.reasoning_content) == ("Reading.", "think")
    assert merged.tool_calls[0].arguments == {"p": "a"}
    assert (
        conv.messages[2].content == "<tool_use_error>no file</tool_use_error>" and conv.messages[2].is_error
    )
    assert "sidechain_step_skipped" in {i.code for i in issues}


def test_broken_atif_documents_are_issues_not_crashes(tmp_path: Path) -> None:
    trial = _write_atif(tmp_path, {"steps": "nope"})
    conversations, issues = read_trial(trial, "terminus2")
    assert conversations == [] and "invalid_atif" in {i.code for i in issues}

    document = {
        "schema_version": "ATIF-v1.7",
        "agent": {"name": "terminus-2"},
        "steps": [
            {"step_id": 1, "source": "user", "message": "task"},
            {"step_id": 2, "source": "agent", "message": "{}"},
        ],
        "continued_trajectory_ref": "trajectory.cont-1.json",
    }
    (trial / "agent" / "trajectory.json").write_text(json.dumps(document))
    conversations, issues = read_trial(trial, "terminus2")
    assert len(conversations) == 1 and "missing_continuation" in {i.code for i in issues}


def test_terminus2_xml_parser_answers_are_rebuilt_as_xml(tmp_path: Path) -> None:
    document = {
        "schema_version": "ATIF-v1.6",
        "agent": {"name": "terminus-2", "extra": {"parser": "xml"}},
        "steps": [
            {"step_id": 1, "source": "user", "message": "task"},
            {
                "step_id": 2,
                "source": "agent",
                "message": "Analysis: Empty dir.\nPlan: List it.",
                "tool_calls": [
                    {
                        "tool_call_id": "call_0_1",
                        "function_name": "bash_command",
                        "arguments": {"keystrokes": "ls -la\n", "duration": 0.1},
                    },
                    {
                        "tool_call_id": "call_0_task_complete",
                        "function_name": "mark_task_complete",
                        "arguments": {},
                    },
                ],
                "observation": {"results": [{"content": "total 0"}]},
            },
        ],
    }
    (conv,), _ = read_trial(_write_atif(tmp_path, document), "terminus2")
    assert conv.messages[1].content == (
        "<response>\n<analysis>Empty dir.</analysis>\n<plan>List it.</plan>\n<commands>\n"
        '<keystrokes duration="0.1">ls -la\n</keystrokes>\n</commands>\n'
        "<task_complete>true</task_complete>\n</response>"
    )
