"""Chain reconstruction: prefix supersession, duplicates, sub-agents, side calls, compaction, linear cost."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from reader_logs import (
    EDIT_TOOLS,
    FIXTURES,
    READ_ONLY_TOOLS,
    call,
    openai_response,
    record,
    roles,
    trial_with_log,
)
from sftpipe.data.conversion.chains import ChainStats, conversations_from_calls
from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.proxy_log import ProxyCall
from sftpipe.data.conversion.read_trial import read_proxy_conversations, read_trial


def _billing(cch: str, subagent: bool = False) -> dict[str, Any]:
    flag = " cc_is_subagent=true;" if subagent else ""
    return {"type": "text", "text": f"x-anthropic-billing-header: cc_version=2.1.3.{cch}; cch={cch};{flag}"}


def _system(cch: str, prompt: str, subagent: bool = False) -> list[dict[str, Any]]:
    return [_billing(cch, subagent), {"type": "text", "text": prompt, "cache_control": {"type": "ephemeral"}}]


def _claude_code_log() -> list[dict[str, Any]]:
    """Main chain (3 calls, one failed + retried), a sub-agent chain and a title side call, interleaved."""
    u1 = {"role": "user", "content": [{"type": "text", "text": "fix the bug"}]}
    a1 = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s1"},
            {"type": "tool_use", "id": "t1", "name": "Agent", "input": {"prompt": "find it"}},
        ],
    }
    r1 = {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "in a.py"}]}
        ],
    }
    a2 = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t2", "name": "Edit", "input": {"file_path": "a.py"}}],
    }
    r2 = {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "t2",
                "content": "ok",
                "cache_control": {"type": "ephemeral"},
            }
        ],
    }
    # Later requests resend the history without the thinking signature/cache markers they had before.
    a1_resent = copy.deepcopy(a1)
    del a1_resent["content"][0]["signature"]
    s1 = {"role": "user", "content": "find it"}
    sa1 = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "s1", "name": "Grep", "input": {"p": "x"}}],
    }
    sr1 = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "s1", "content": "a.py:1"}]}
    main_sys = lambda cch: _system(cch, "You are Claude Code.")
    sub_sys = lambda cch: _system(cch, "You are a search agent.", subagent=True)
    anthropic_text = lambda text: {"content": [{"type": "text", "text": text}]}
    return [
        record([u1], {"content": a1["content"]}, t=1, tools=EDIT_TOOLS, system=main_sys("aa")),
        record(
            [{"role": "user", "content": "Generate a title for: fix the bug"}],
            anthropic_text('{"title": "Fix"}'),
            t=2,
            system=[{"type": "text", "text": "title"}],
        ),
        record([s1], {"content": sa1["content"]}, t=3, tools=READ_ONLY_TOOLS, system=sub_sys("bb")),
        record([s1, sa1, sr1], anthropic_text("in a.py"), t=4, tools=READ_ONLY_TOOLS, system=sub_sys("cc")),
        record([u1, a1, r1], t=5, tools=EDIT_TOOLS, system=main_sys("dd"), success=False),
        record([u1, a1, r1], {"content": a2["content"]}, t=6, tools=EDIT_TOOLS, system=main_sys("ee")),
        record([u1, a1_resent, r1], {"content": a2["content"]}, t=7, tools=EDIT_TOOLS, system=main_sys("ff")),
        record(
            [u1, a1_resent, r1, a2, r2],
            anthropic_text("Fixed."),
            t=8,
            tools=EDIT_TOOLS,
            system=main_sys("gg"),
        ),
    ]


def test_main_subagent_and_side_calls_are_separated(tmp_path: Path) -> None:
    conversations, issues = read_trial(trial_with_log(tmp_path, _claude_code_log()), "claude-code")
    codes = {i.code: i.count for i in issues}
    assert len(conversations) == 2
    main, sub = conversations  # ordered by their first call
    assert sub.agent_type == "subagent" and main.agent_type == "main"
    assert roles(main.messages) == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert main.messages[0].content == "You are Claude Code."
    assert main.messages[2].reasoning_content == "hmm"
    assert main.messages[-1].content == "Fixed."
    assert main.n_calls == 4  # t=1, 6, 7 (duplicate of 6 after normalisation), 8
    assert main.usage == {} and main.gen_params == {"model": "m"}
    assert [m.content for m in sub.messages if m.role == "assistant"][-1] == "in a.py"
    assert sub.n_calls == 2
    assert codes["failed_call"] == 1 and codes["duplicate_request"] == 1 and codes["side_call"] == 1


def test_compaction_starts_a_new_chain(tmp_path: Path) -> None:
    sys_msg = {"role": "system", "content": "agent"}
    u = {"role": "user", "content": "task"}
    a = {"role": "assistant", "content": None, "tool_calls": [call("c1", "bash", {"command": "ls"})]}
    r = {"role": "tool", "tool_call_id": "c1", "content": "files"}
    summary = {"role": "user", "content": "Summary of the work so far: listed files. Continue."}
    records = [
        record([sys_msg, u], openai_response(tool_calls=a["tool_calls"]), t=1, tools=EDIT_TOOLS),
        record([sys_msg, u, a, r], openai_response("listed"), t=2, tools=EDIT_TOOLS),
        # The summary request extends the history but has no tools: not an agent turn.
        record(
            [
                sys_msg,
                u,
                a,
                r,
                {"role": "assistant", "content": "listed"},
                {"role": "user", "content": "Summarise the conversation."},
            ],
            openai_response("listed files"),
            t=3,
        ),
        record(
            [sys_msg, summary],
            openai_response(tool_calls=[call("c2", "edit", {"path": "x"})]),
            t=4,
            tools=EDIT_TOOLS,
        ),
        record(
            [
                sys_msg,
                summary,
                {"role": "assistant", "content": "", "tool_calls": [call("c2", "edit", {"path": "x"})]},
                {"role": "tool", "tool_call_id": "c2", "content": "edited"},
            ],
            openai_response("done"),
            t=5,
            tools=EDIT_TOOLS,
        ),
    ]
    conversations, issues = read_trial(trial_with_log(tmp_path, records), "openhands-sdk")
    assert [c.messages[-1].content for c in conversations] == ["listed", "done"]
    assert [c.chain_index for c in conversations] == [0, 1]
    assert [c.n_calls for c in conversations] == [2, 2]
    assert conversations[0].usage["total_tokens"] == 30
    assert {i.code for i in issues} >= {"toolless_chain_extension"}


def test_reference_dedup_sample() -> None:
    issues = IssueLog()
    conversations = read_proxy_conversations(FIXTURES / "litellm" / "dedup_litellm-trajectory.jsonl", issues)
    assert len(conversations) == 1
    # The failed line's "BAD" answer never appears; the last request had no response, so the
    # conversation ends at the last assistant turn of its history.
    assert [m.content for m in conversations[0].messages] == ["u1", "a1", "u2", "a2"]
    assert conversations[0].n_calls == 2
    assert issues.count("failed_call") == 1 and issues.count("unusable_response") == 1


def test_reference_anthropic_style_sample() -> None:
    issues = IssueLog()
    path = FIXTURES / "litellm" / "cc_anthropic_style_litellm-trajectory.jsonl"
    conversations = read_proxy_conversations(path, issues)
    assert len(conversations) == 1
    conv = conversations[0]
    assert roles(conv.messages) == ["user", "assistant", "tool", "assistant"]
    assert conv.messages[1].reasoning_content == "let me check"
    assert conv.messages[1].tool_calls[0].arguments == {"file_path": "/f.py"}
    assert conv.messages[2].tool_call_id == "c1" and conv.messages[-1].content == "Fixed!"
    assert conv.agent_type == "subagent"  # tools hold neither an edit nor a write tool
    assert issues.count("side_call") == 1  # the one-message call next to a tool-using chain


def test_reference_openhands_sdk_job() -> None:
    trial = FIXTURES / "litellm" / "oh-sdk-job" / "owner__repo-123__hash"
    conversations, _ = read_trial(trial, "openhands-sdk")
    assert len(conversations) == 1
    assert [(m.role, m.content) for m in conversations[0].messages] == [
        ("system", "You are an agent."),
        ("user", "Fix the bug."),
        ("assistant", "Done."),
    ]
    assert conversations[0].agent_type == "main"


def _synthetic_calls(n_chains: int, calls_per_chain: int) -> list[ProxyCall]:
    calls: list[ProxyCall] = []
    t = 0
    for step in range(calls_per_chain):
        for chain in range(n_chains):
            history: list[dict[str, Any]] = [
                {"role": "system", "content": f"agent {chain}"},
                {"role": "user", "content": "task"},
            ]
            for k in range(step):
                history.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [call(f"c{k}", "bash", {"command": f"echo {k}"})],
                    }
                )
                history.append({"role": "tool", "tool_call_id": f"c{k}", "content": f"{k}"})
            t += 1
            calls.append(
                ProxyCall(
                    line_no=t,
                    request_time=t,
                    request={"messages": history, "tools": EDIT_TOOLS},
                    response=openai_response("next"),
                )
            )
    return calls


def test_chain_building_cost_is_linear_in_the_log_size() -> None:
    sizes, seconds = {}, {}
    for n_chains in (100, 200):  # 1000 and 2000 calls, interleaved chains of 10 calls
        calls = _synthetic_calls(n_chains, 10)
        timings = []
        for _ in range(3):  # the fastest of three runs: less noise from GC and other processes
            stats = ChainStats()
            started = time.process_time()
            conversations = conversations_from_calls(calls, IssueLog(), stats)
            timings.append(time.process_time() - started)
        seconds[len(calls)] = min(timings)
        total_messages = sum(len(c.request["messages"]) for c in calls)
        assert len(conversations) == n_chains and all(c.n_calls == 10 for c in conversations)
        # Every message of every request is hashed exactly once, with one dict lookup each.
        assert stats.messages_hashed == stats.lookups == total_messages
        sizes[len(calls)] = stats.messages_hashed
    assert sizes[2000] == 2 * sizes[1000]
    # Twice the log, about twice the CPU time (an all-pairs comparison would take four times as long).
    assert seconds[2000] < 3.2 * seconds[1000]


def test_one_long_chain_hashes_each_logged_message_once() -> None:
    calls = _synthetic_calls(1, 120)
    stats = ChainStats()
    conversations = conversations_from_calls(calls, IssueLog(), stats)
    assert len(conversations) == 1 and conversations[0].n_calls == 120
    assert len(conversations[0].messages) == 2 + 2 * 119 + 1
    assert stats.messages_hashed == sum(len(c.request["messages"]) for c in calls)


def test_chain_started_by_a_task_tool_call_is_a_subagent(tmp_path: Path) -> None:
    main_sys = {"role": "system", "content": "You are opencode."}
    task = call(
        "k1",
        "task",
        {"description": "explore", "prompt": "Explore the repo layout", "subagent_type": "general"},
    )
    sub_sys = {"role": "system", "content": "You are a general agent."}
    records = [
        record(
            [main_sys, {"role": "user", "content": '"fix it"'}],
            openai_response(tool_calls=[task]),
            t=1,
            tools=EDIT_TOOLS,
        ),
        record(
            [sub_sys, {"role": "user", "content": "Explore the repo layout"}],
            openai_response("src/ only"),
            t=2,
            tools=EDIT_TOOLS,
        ),
        record(
            [
                main_sys,
                {"role": "user", "content": '"fix it"'},
                {"role": "assistant", "content": "", "tool_calls": [task]},
                {
                    "role": "tool",
                    "tool_call_id": "k1",
                    "content": "<task id=1 state=done><task_result>src/ only</task_result></task>",
                },
            ],
            openai_response("Fixed."),
            t=3,
            tools=EDIT_TOOLS,
        ),
    ]
    conversations, _ = read_trial(trial_with_log(tmp_path, records), "open-code")
    assert [(c.agent_type, c.messages[-1].content) for c in conversations] == [
        ("main", "Fixed."),
        ("subagent", "src/ only"),
    ]


def test_reasoning_the_client_did_not_resend_is_restored(tmp_path: Path) -> None:
    sys_msg, u = {"role": "system", "content": "agent"}, {"role": "user", "content": "task"}
    first = [call("c1", "bash", {"command": "ls"})]
    records = [
        record(
            [sys_msg, u],
            openai_response("Looking.", tool_calls=first, reasoning="list first"),
            t=1,
            tools=EDIT_TOOLS,
        ),
        # OpenHands SDK resends the assistant turn without its reasoning_content.
        record(
            [
                sys_msg,
                u,
                {"role": "assistant", "content": "Looking.", "tool_calls": first},
                {"role": "tool", "tool_call_id": "c1", "content": "a.py"},
            ],
            openai_response("Done.", reasoning="finished"),
            t=2,
            tools=EDIT_TOOLS,
        ),
    ]
    (conv,), issues = read_trial(trial_with_log(tmp_path, records), "openhands-sdk")
    assert [m.reasoning_content for m in conv.messages if m.role == "assistant"] == ["list first", "finished"]
    assert {i.code: i.count for i in issues}["reasoning_restored"] == 1
