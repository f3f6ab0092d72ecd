"""OpenAI and Anthropic request shapes -> canonical messages (ids, order, errors, system placement)."""

from __future__ import annotations

from reader_logs import call, openai_response, roles
from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.normalize_call import normalize_call
from sftpipe.data.conversion.proxy_log import ProxyCall


def _normalize(request: dict, response: dict | None) -> tuple[list, IssueLog, bool]:
    issues = IssueLog()
    out = normalize_call(ProxyCall(line_no=1, request_time=1.0, request=request, response=response), issues)
    return out.messages, issues, out.subagent_flag


def test_openai_parts_reasoning_and_parallel_results_in_call_order() -> None:
    request = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "sys"}]},
            {"role": "user", "content": [{"type": "text", "text": "do it"}]},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "think",
                "tool_calls": [call("a", "bash", {"command": "ls"}), call("b", "bash", '{"command": "pwd"}')],
            },
            # completion order: b finished first
            {
                "role": "tool",
                "tool_call_id": "b",
                "name": "bash",
                "content": [{"type": "text", "text": "/app"}],
            },
            {"role": "tool", "tool_call_id": "a", "content": "x\n[An error occurred during execution.]"},
        ],
        "tools": [{"name": "bash", "description": "d", "input_schema": {"type": "object"}}],
    }
    messages, issues, _ = _normalize(request, openai_response("done", reasoning="why"))
    assert roles(messages) == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assistant = messages[2]
    assert assistant.content == "" and assistant.reasoning_content == "think"
    assert [(c.id, c.arguments) for c in assistant.tool_calls] == [
        ("a", {"command": "ls"}),
        ("b", {"command": "pwd"}),
    ]
    assert [m.tool_call_id for m in messages[3:5]] == ["a", "b"]
    assert messages[3].is_error and not messages[4].is_error
    assert messages[5].content == "done" and messages[5].reasoning_content == "why"
    assert not list(issues.to_list())


def test_openai_orphans_missing_results_and_bad_arguments() -> None:
    request = {
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [call("a", "bash", {}), call("b", "bash", {})],
            },
            {"role": "tool", "tool_call_id": "zzz", "content": "stray"},
            {"role": "tool", "tool_call_id": "a", "content": "ok"},
            {"role": "user", "content": "next"},
            {"role": "assistant", "content": "", "tool_calls": [call("c", "bash", "{broken")]},
            {
                "role": "tool",
                "tool_call_id": "c",
                "content": "The arguments provided to the tool are invalid",
            },
        ],
    }
    messages, issues, _ = _normalize(request, openai_response("end"))
    # The turn with malformed arguments and everything after it is cut; the history before it stands,
    # ending on the last assistant turn (its result and the next user turn are trailing, so removed).
    assert roles(messages) == ["user", "assistant"]
    assert [c.id for c in messages[1].tool_calls] == ["a"]
    for code in (
        "orphan_tool_result",
        "tool_call_without_result",
        "bad_tool_arguments",
        "conversation_cut",
        "trailing_turns_removed",
    ):
        assert issues.count(code) == 1, code


def test_anthropic_blocks_billing_line_reminders_and_error_flags() -> None:
    request = {
        "system": [
            {
                "type": "text",
                "text": "x-anthropic-billing-header: cc_version=2.1; cc_entrypoint=sdk-cli; "
                "cch=abc12; cc_is_subagent=true;",
            },
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Env info."},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>r1</system-reminder>"},
                    {"type": "text", "text": "fix it"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "plan", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "xx"},
                    {"type": "text", "text": "Looking."},
                    {"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "/a"}},
                    {"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": "false"}},
                    {"type": "mystery", "x": 1},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t2", "content": "Exit code 1", "is_error": True},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [
                            {"type": "text", "text": "<tool_use_error>File does not exist.</tool_use_error>"}
                        ],
                    },
                    {"type": "text", "text": "<system-reminder>r2</system-reminder>"},
                ],
            },
            {"role": "system", "content": "mid-run reminder"},
            {"role": "user", "content": "continue"},
        ],
    }
    response = {"content": [{"type": "text", "text": "All fixed."}]}
    messages, issues, subagent = _normalize(request, response)
    assert subagent
    assert roles(messages) == ["system", "user", "assistant", "tool", "tool", "user", "assistant"]
    assert messages[0].content == "You are Claude Code.\n\nEnv info."
    assert messages[1].content == "<system-reminder>r1</system-reminder>\nfix it"
    assistant = messages[2]
    assert (assistant.content, assistant.reasoning_content) == ("Looking.", "plan")
    assert [c.name for c in assistant.tool_calls] == ["Read", "Bash"]
    read_result, bash_result = messages[3], messages[4]
    assert (read_result.tool_call_id, bash_result.tool_call_id) == ("t1", "t2")
    assert read_result.is_error and bash_result.is_error
    # Text sent with the results goes after the last result in call order.
    assert bash_result.content == "Exit code 1\n<system-reminder>r2</system-reminder>"
    # A mid-conversation system message is folded, verbatim, into the front of the next user turn.
    assert messages[5].content == "mid-run reminder\n\ncontinue"
    assert issues.count("redacted_thinking") == 1 and issues.count("unknown_block_type") == 1
    assert issues.count("mid_system_folded") == 1


def test_anthropic_orphan_result_and_first_request_without_blocks() -> None:
    request = {
        "messages": [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "x-anthropic-billing-header: cch=1;"},
                    {"type": "text", "text": "sys"},
                ],
            },
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "nope", "content": "x"},
                    {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                ],
            },
        ],
    }
    messages, issues, subagent = _normalize(request, openai_response("bye"))
    assert not subagent
    assert roles(messages) == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[0].content == "sys"
    assert issues.count("orphan_tool_result") == 1


def test_unusable_response_falls_back_to_last_assistant_turn_in_history() -> None:
    request = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ]
    }
    messages, issues, _ = _normalize(request, {"raw_response": "garbled"})
    assert [m.content for m in messages] == ["a", "b"]
    assert issues.count("unusable_response") == 1 and issues.count("trailing_turns_removed") == 1
