"""Turn-by-turn fidelity of the converter's IM output against the raw captured proxy logs.

For every captured proxy-log trial (tests/fixtures/harbor_jobs/, described in EXPECTED.md) the expected
conversation is derived here straight from the raw jsonl, without the converter's code: the main chain
is the longest successful request that carries tools and whose first user text holds the task
instruction (side calls have no tools; sub-agent chains start from an Agent/task prompt), completed by
its own response. Its assistant turns (text, reasoning, tool calls) and tool results (in call order)
must be exactly the messages of the trial's one main IM record, once each and in order; likewise each
sub-agent chain and its own IM record. The converter's documented transformations are asserted as such:
Claude Code's billing line dropped from the system turn, reasoning that OpenHands does not send back
restored from the responses, text blocks joined as documented in docs/conversion-readers.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sftpipe.data.conversion.convert import ConversionOptions, convert_job

JOBS = Path(__file__).resolve().parents[3] / "fixtures" / "harbor_jobs"
PROTOCOL = {"claude-code": "anthropic", "opencode": "openai", "openhands-sdk": "openai"}
TRIALS = sorted(p.parents[1] for d in PROTOCOL for p in (JOBS / d).glob("*/agent/litellm-trajectory.jsonl"))
INSTRUCTION = "Fix the bug in calc.py so that the tests pass."
BILLING = "x-anthropic-billing-header:"
SUBAGENT_TOOLS = ("Agent", "Task", "task")

Msg = dict[str, Any]  # {"role", "content", "reasoning", "calls": [(id, name, args)], "call_id", "is_error"}


@dataclass
class Call:
    """One logged model call, in `request_time` order."""

    line: int
    record: dict[str, Any]
    messages: list[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.messages = self.record["request_body"]["messages"]

    @property
    def ok(self) -> bool:
        return self.record["success"] is True and bool((self.record["response_body"] or {}).get("choices"))

    @property
    def response(self) -> dict[str, Any]:
        return self.record["response_body"]["choices"][0]["message"]

    @property
    def tools(self) -> list[Any]:
        return self.record["request_body"].get("tools") or []


def _calls(trial: Path) -> list[Call]:
    lines = (trial / "agent" / "litellm-trajectory.jsonl").read_text().splitlines()
    calls = [Call(n, json.loads(line)) for n, line in enumerate(lines)]
    return sorted(calls, key=lambda c: c.record["request_time"])  # file order is completion order


def _text(content: Any, sep: str = "\n") -> str:
    """String content, or the text parts of a list joined by `sep` (normalize_common: "\\n")."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return sep.join(p["text"] for p in content if p.get("type") == "text")


def _first_user_text(call: Call) -> str:
    return next(_text(m["content"]) for m in call.messages if m["role"] == "user")


def _billing(call: Call) -> str:
    system = call.messages[0]["content"]
    return system[0]["text"] if isinstance(system, list) and system[0]["text"].startswith(BILLING) else ""


def _response_turn(call: Call) -> Msg:
    message = call.response
    return {
        "role": "assistant",
        "content": message.get("content") or "",
        "reasoning": message.get("reasoning_content") or "",
        "calls": [
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message.get("tool_calls") or []
        ],
    }


def _turn_key(turn: Msg) -> tuple[str, ...]:
    return tuple(c[0] for c in turn["calls"]) or (turn["content"],)


def _in_call_order(results: list[Msg], previous: Msg) -> list[Msg]:
    order = [c[0] for c in previous["calls"]]
    assert sorted(r["call_id"] for r in results) == sorted(order), "results do not answer the calls"
    return sorted(results, key=lambda r: order.index(r["call_id"]))


def _anthropic_history(messages: list[dict[str, Any]]) -> tuple[str, list[Msg]]:
    blocks = messages[0]["content"]
    # Documented: the per-request billing line is dropped, the other blocks joined by blank lines.
    system = "\n\n".join(b["text"] for b in blocks if not b["text"].startswith(BILLING))
    out: list[Msg] = []
    for message in messages[1:]:
        content = message["content"]
        if message["role"] == "assistant":
            blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
            of = {kind: [b for b in blocks if b["type"] == kind] for kind in ("text", "thinking", "tool_use")}
            out.append(
                {
                    "role": "assistant",
                    "content": "\n\n".join(b["text"] for b in of["text"] if b["text"]),
                    "reasoning": "\n\n".join(b["thinking"] for b in of["thinking"]),
                    "calls": [(b["id"], b["name"], b["input"]) for b in of["tool_use"]],
                }
            )
            continue
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        results = [
            {
                "role": "tool",
                "call_id": b["tool_use_id"],
                "content": _text(b["content"]),
                "is_error": bool(b.get("is_error")),
            }
            for b in blocks
            if b["type"] == "tool_result"
        ]
        text = "\n".join(b["text"] for b in blocks if b["type"] == "text")
        if results:
            results = _in_call_order(results, out[-1])
            if text:  # documented: text sent next to tool results is appended to the last one
                results[-1]["content"] += "\n" + text
            out.extend(results)
        else:
            out.append({"role": "user", "content": text})
    return system, out


def _openai_history(messages: list[dict[str, Any]]) -> tuple[str, list[Msg]]:
    assert messages[0]["role"] == "system"
    out: list[Msg] = []
    pending: list[Msg] = []
    for message in messages[1:]:
        # No system message after the first in these captures: nothing to fold into a user turn.
        assert message["role"] != "system"
        if message["role"] != "tool" and pending:
            out.extend(_in_call_order(pending, out[-1]))
            pending = []
        if message["role"] == "assistant":
            out.append(
                {
                    "role": "assistant",
                    "content": _text(message.get("content"), "\n\n"),
                    "reasoning": message.get("reasoning_content") or "",
                    "calls": [
                        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                        for c in message.get("tool_calls") or []
                    ],
                }
            )
        elif message["role"] == "tool":
            text = _text(message["content"])
            # OpenHands' error marker is the one error signal of these OpenAI-protocol logs.
            pending.append(
                {
                    "role": "tool",
                    "call_id": message["tool_call_id"],
                    "content": text,
                    "is_error": "[An error occurred during execution.]" in text,
                }
            )
        elif out and out[-1]["role"] == "user":  # documented: consecutive user turns are joined
            out[-1]["content"] += "\n\n" + _text(message["content"])
        else:
            out.append({"role": "user", "content": _text(message["content"])})
    if pending:
        out.extend(_in_call_order(pending, out[-1]))
    return _text(messages[0]["content"]), out


def _expected(tail: Call, protocol: str) -> tuple[str, list[Msg]]:
    """The chain the model saw at its last call, plus its answer to it."""
    system, history = (_anthropic_history if protocol == "anthropic" else _openai_history)(tail.messages)
    return system, [*history, _response_turn(tail)]


def _im_messages(record: dict[str, Any]) -> tuple[str, list[Msg]]:
    system, *rest = record["messages"]
    assert system["role"] == "system"
    out = []
    for m in rest:
        item: Msg = {"role": m["role"], "content": m["content"]}
        if m["role"] == "assistant":
            item["reasoning"] = m["reasoning_content"]
            item["calls"] = [
                (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                for c in m.get("tool_calls") or []
            ]
        elif m["role"] == "tool":
            item["call_id"], item["is_error"] = m["tool_call_id"], m["is_error"]
        out.append(item)
    return system["content"], out


@dataclass
class Chains:
    main: Call
    main_calls: list[Call]  # every successful call of the main chain (retries included)
    subagents: list[Call]  # tail call of each sub-agent chain
    side: list[Call]
    failed: list[Call]


def _longest(calls: list[Call]) -> Call:
    # Equal length = a retry of the same input: the later one is the one that answered.
    return max(calls, key=lambda c: (len(c.messages), c.record["request_time"]))


def _chains(calls: list[Call], protocol: str) -> Chains:
    ok = [c for c in calls if c.ok]
    side = [c for c in ok if not c.tools]
    main_calls = [
        c
        for c in ok
        if c.tools and INSTRUCTION in _first_user_text(c) and "cc_is_subagent=true" not in _billing(c)
    ]
    main = _longest(main_calls)
    prompts = [
        args["prompt"]
        for turn in _expected(main, protocol)[1]
        if turn["role"] == "assistant"
        for _, name, args in turn["calls"]
        if name in SUBAGENT_TOOLS
    ]
    sub_chains = [[c for c in ok if c.tools and prompt in _first_user_text(c)] for prompt in prompts]
    # Every successful call belongs to exactly one chain: side, main or one sub-agent's.
    assigned = [c.line for c in side + main_calls] + [c.line for chain in sub_chains for c in chain]
    assert all(sub_chains) and sorted(assigned) == sorted(c.line for c in ok)
    failed = [c for c in calls if c.record["success"] is False]
    return Chains(main, main_calls, [_longest(chain) for chain in sub_chains], side, failed)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """scaffold dir -> {"im": trial name -> IM records, "lf": the LF file's text}."""
    out: dict[str, dict[str, Any]] = {}
    for job in PROTOCOL:
        dest = tmp_path_factory.mktemp(job)
        report = convert_job(
            JOBS / job,
            dest,
            "d",
            ConversionOptions(selection="all", keep_subagents=True, reasoning="keep", workers=1),
        )
        assert report.trials_by_status == {"kept": 3}
        lf_text = (dest / "lf_data" / "d.json").read_text()
        by_trial: dict[str, list[dict[str, Any]]] = {}
        lines = (dest / "d.im.jsonl").read_text().splitlines()
        for line, lf_row in zip(lines, json.loads(lf_text), strict=True):  # LF row i <-> IM line i
            record = json.loads(line)
            record["lf_row"] = lf_row
            by_trial.setdefault(record["meta_info"]["trial_name"], []).append(record)
        out[job] = {"im": by_trial, "lf": lf_text}
    return out


def _records_of(converted: dict[str, dict[str, Any]], trial: Path, agent_type: str) -> list[dict[str, Any]]:
    return [
        r
        for r in converted[trial.parent.name]["im"][trial.name]
        if r["meta_info"]["unique_info"]["_agent_type"] == agent_type
    ]


def _responses_by_turn(calls: list[Call]) -> dict[tuple[str, ...], Msg]:
    """What the model itself answered: every successful response, keyed by its call ids (or its text)."""
    return {_turn_key(_response_turn(c)): _response_turn(c) for c in calls if c.ok}


def _check_chain(
    record: dict[str, Any], tail: Call, protocol: str, calls: list[Call], scaffold: str
) -> list[Msg]:
    system, expected = _expected(tail, protocol)
    said = _responses_by_turn(calls)
    for turn in expected:
        if turn["role"] != "assistant":
            continue
        response = said[_turn_key(turn)]  # every turn in the history is some logged response
        assert turn["content"] == response["content"]
        assert [c[:2] for c in turn["calls"]] == [c[:2] for c in response["calls"]]
        answered = response["reasoning"]
        if scaffold == "openhands-sdk":
            # Documented: OpenHands does not resend reasoning; the converter restores it from the responses.
            assert turn["reasoning"] in ("", answered)
            turn["reasoning"] = answered
        else:
            assert turn["reasoning"] == answered  # the client sent it back unchanged
    im_system, got = _im_messages(record)
    assert im_system == system
    assert got == expected
    _assert_lf_row_keeps_every_text_in_order(record["lf_row"], system, got)
    return got


def _assert_lf_row_keeps_every_text_in_order(row: dict[str, Any], system: str, messages: list[Msg]) -> None:
    """The LF row renders the same turns: each text (reasoning before answer) found after the previous one."""
    assert row["system"] == system
    rendered = "\x00".join(turn["value"] for turn in row["conversations"])
    cursor = 0
    for message in messages:
        for text in (message.get("reasoning", ""), message["content"]):
            if text:
                found = rendered.find(text, cursor)
                assert found >= 0, f"{message['role']} text missing/out of order in the LF row: {text[:80]!r}"
                cursor = found + len(text)


@pytest.mark.parametrize("trial", TRIALS, ids=[f"{t.parent.name}/{t.name}" for t in TRIALS])
def test_main_conversation_is_exactly_the_last_main_request_and_its_response(trial: Path, converted) -> None:
    scaffold, protocol = trial.parent.name, PROTOCOL[trial.parent.name]
    calls = _calls(trial)
    chains = _chains(calls, protocol)
    (record,) = _records_of(converted, trial, "main")
    got = _check_chain(record, chains.main, protocol, calls, scaffold)

    assistants = [m for m in got if m["role"] == "assistant"]
    # One assistant turn per distinct successful main request: the retried call added none.
    assert len(assistants) == len({len(c.messages) for c in chains.main_calls})
    call_ids = [c[0] for m in assistants for c in m["calls"]]
    result_ids = [m["call_id"] for m in got if m["role"] == "tool"]
    assert len(set(call_ids)) == len(call_ids) and len(set(result_ids)) == len(result_ids)
    assert got[0]["role"] == "user" and INSTRUCTION in got[0]["content"]
    if json.loads((trial / "result.json").read_text())["exception_info"]:
        # Timeout: the last logged answer is a tool call whose result the model never saw.
        assert assistants[-1]["calls"] and got[-1] is assistants[-1]
        assert result_ids == call_ids[:-1]
    else:  # OpenHands ends with a `finish` call that has no result; the others with a text answer
        assert result_ids == (call_ids[:-1] if scaffold == "openhands-sdk" else call_ids)
    assert not any(BILLING in m["content"] for m in record["messages"])


@pytest.mark.parametrize("trial", TRIALS, ids=[f"{t.parent.name}/{t.name}" for t in TRIALS])
def test_subagents_are_separate_rows_with_their_own_turns(trial: Path, converted) -> None:
    scaffold, protocol = trial.parent.name, PROTOCOL[trial.parent.name]
    calls = _calls(trial)
    chains = _chains(calls, protocol)
    records = _records_of(converted, trial, "subagent")
    assert len(converted[scaffold]["im"][trial.name]) == 1 + len(chains.subagents)
    assert len(records) == len(chains.subagents)
    main_turns = {
        _turn_key(m)
        for m in _im_messages(_records_of(converted, trial, "main")[0])[1]
        if m["role"] == "assistant"
    }
    for tail in chains.subagents:
        (record,) = [r for r in records if _first_user_text(tail) == _im_messages(r)[1][0]["content"]]
        got = _check_chain(record, tail, protocol, calls, scaffold)
        sub_turns = {_turn_key(m) for m in got if m["role"] == "assistant"}
        assert not sub_turns & main_turns  # no sub-agent answer leaks into the main row, or back


@pytest.mark.parametrize("trial", TRIALS, ids=[f"{t.parent.name}/{t.name}" for t in TRIALS])
def test_failed_and_side_calls_leave_no_trace(trial: Path, converted) -> None:
    calls = _calls(trial)
    chains = _chains(calls, PROTOCOL[trial.parent.name])
    (failed,) = chains.failed
    assert failed.record["response_body"] is None
    written = json.dumps(converted[trial.parent.name]["im"][trial.name]) + converted[trial.parent.name]["lf"]
    assert failed.record["failure"]["message"] not in written
    assert failed.record["failure"]["error_type"] not in written
    if trial.parent.name != "opencode":
        assert not chains.side
        return
    (side,) = chains.side  # the title generator
    title = side.response["content"]
    assert title and side.messages[0]["content"].startswith("You are a title generator")
    assert "title generator" not in written and "Generate a title for this conversation" not in written
    records = converted["opencode"]["im"][trial.name]
    assert not any(m["content"] == title for r in records for m in r["messages"])


def test_claude_code_history_carries_the_clients_argument_defaults() -> None:
    """The converter trains on the calls as the client put them back into the context (what later turns
    saw), not on the raw response: Claude Code adds `replace_all: false` to the model's Edit calls."""
    added: set[str] = set()
    for trial in (t for t in TRIALS if t.parent.name == "claude-code"):
        calls = _calls(trial)
        said = {c[0]: c[2] for call in calls if call.ok for c in _response_turn(call)["calls"]}
        _, history = _expected(_chains(calls, "anthropic").main, "anthropic")
        for turn in history:
            for call_id, name, args in turn.get("calls", []):
                extra = {k: v for k, v in args.items() if k not in said[call_id]}
                assert {k: args[k] for k in said[call_id]} == said[call_id]
                if extra:
                    assert name == "Edit" and extra == {"replace_all": False}
                    added.add(call_id)
    assert added
