"""Streaming proxy-log scan: same result as reading the whole log, each distinct message parsed once."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harbor_job_builder import cc_proxy_lines
from reader_logs import EDIT_TOOLS, call, openai_response, record
from sftpipe.data.conversion.chains import ChainStats, build_conversations, conversations_from_calls
from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.proxy_log import read_proxy_log
from sftpipe.data.conversion.proxy_scan import load_call, scan_proxy_log
from sftpipe.data.conversion.read_trial import read_proxy_conversations

CAPTURED = Path(__file__).resolve().parents[3] / "fixtures" / "harbor_jobs"


def _in_memory(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    issues = IssueLog()
    conversations = conversations_from_calls(read_proxy_log(path, issues), issues)
    return [c.to_dict() for c in conversations], [asdict(i) for i in issues.to_list()]


def _streamed(
    path: Path, stats: ChainStats | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    issues = IssueLog()
    conversations = read_proxy_conversations(path, issues, stats)
    return [c.to_dict() for c in conversations], [asdict(i) for i in issues.to_list()]


def test_captured_logs_convert_exactly_as_when_read_whole() -> None:
    logs = sorted(CAPTURED.glob("*/*/agent/litellm-trajectory.jsonl"))
    assert len(logs) >= 9
    for log in logs:
        streamed = _streamed(log)
        assert streamed[0], log
        assert streamed == _in_memory(log), log


def _odd_lines() -> list[bytes]:
    """Lines the fast walker must hand to json.loads, mixed with ones it takes, in one file."""
    sys_a = {"role": "system", "content": "You are an agent."}
    u = {"role": "user", "content": "fix it"}
    a1 = {"role": "assistant", "content": None, "tool_calls": [call("c1", "bash", {"command": "ls"})]}
    r1 = {"role": "tool", "tool_call_id": "c1", "content": "a.py"}
    a2 = {"role": "assistant", "content": None, "tool_calls": [call("c2", "edit", {"path": "a.py"})]}
    r2 = {"role": "tool", "tool_call_id": "c2", "content": "done"}
    first = record([sys_a, u], openai_response(tool_calls=[a1["tool_calls"][0]]), t=1, tools=EDIT_TOOLS)
    second = record(
        [sys_a, u, a1, r1], openai_response(tool_calls=[a2["tool_calls"][0]]), t=2, tools=EDIT_TOOLS
    )
    third = record([sys_a, u, a1, r1, a2, r2], openai_response("Fixed."), t=3, tools=EDIT_TOOLS)
    anthropic = record(
        [u],
        openai_response("ok"),
        t=4,
        tools=EDIT_TOOLS,
        system=[
            {"type": "text", "text": "x-anthropic-billing-header: cch=1;"},
            {"type": "text", "text": "Be brief."},
        ],
    )
    anthropic_later = copy.deepcopy(anthropic)
    anthropic_later["request_time"] = 5
    anthropic_later["request_body"]["system"][0]["text"] = "x-anthropic-billing-header: cch=2;"
    anthropic_later["request_body"]["messages"] += [
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "more"},
    ]
    non_dict_message = record([sys_a, "hello"], openai_response("x"), t=6, tools=EDIT_TOOLS)
    return [
        json.dumps(first).encode(),
        json.dumps(second, indent=1).replace("\n", " ").encode(),  # other whitespace, same content
        json.dumps(third, separators=(",", ":"), sort_keys=True).encode(),  # other key order
        json.dumps(second).encode()[:-1] + b', "request_body": {"messages": []}}',  # duplicate key
        json.dumps(third).encode() + b" trailing",  # extra data after the object
        json.dumps(anthropic).encode(),
        json.dumps(anthropic_later).encode(),
        json.dumps(non_dict_message).encode(),
        json.dumps(dict(third, response_body="not an object", request_time=7)).encode(),
        json.dumps(dict(third, request_time=None)).encode(),
        b"\xef\xbb\xbf" + json.dumps(first).encode(),  # BOM
        json.dumps(first).encode().replace(b"fix it", b"fix \xe9t"),  # not UTF-8
        json.dumps(third).encode()[:-30],  # truncated last line
    ]


def test_lines_the_walker_does_not_take_give_the_same_result(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    lines = _odd_lines()
    log.write_bytes(b"\n".join(lines))
    streamed = _streamed(log)
    assert streamed == _in_memory(log)
    codes = {issue["code"] for issue in streamed[1]}
    assert {
        "invalid_json_line",
        "bad_request_messages",
        "bad_response_body",
        "non_utf8_line",
        "truncated_last_line",
        "duplicate_request",
    } <= codes
    # Shuffled, the time sort and the linking still agree.
    log.write_bytes(b"\n".join(lines[::-1]) + b"\n")
    assert _streamed(log) == _in_memory(log)


def test_each_distinct_message_is_parsed_and_normalised_once(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("".join(line + "\n" for line in cc_proxy_lines(120, payload_chars=300)), encoding="utf-8")
    stats = ChainStats()
    conversations, _ = _streamed(log, stats)
    assert len(conversations) == 1 and conversations[0]["n_calls"] == 121
    assert stats.messages_hashed == sum(2 + 2 * i for i in range(121))  # system + task + 2 per turn
    # 242 distinct messages (system, task, 2 per turn) among 14,762 logged copies: each is parsed,
    # normalised and hashed once; every other copy is recognised by its raw bytes.
    assert stats.messages_parsed == stats.messages_normalised == 2 + 2 * 120
    assert _streamed(log) == _in_memory(log)


def test_only_chain_tails_are_read_again(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("".join(line + "\n" for line in cc_proxy_lines(30)), encoding="utf-8")
    issues = IssueLog()
    scanned = scan_proxy_log(log, issues)
    loaded: list[int] = []

    def load(summary: Any) -> Any:
        loaded.append(summary.line_no)
        return load_call(scanned, summary, issues)

    conversations = build_conversations(scanned.calls, scanned.trie.parent, load, issues)
    assert len(conversations) == 1 and loaded == [31]
    assert not any(hasattr(summary, "request") for summary in scanned.calls)


def test_a_log_rewritten_between_the_two_reads_is_counted(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    lines = cc_proxy_lines(3)
    log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    issues = IssueLog()
    scanned = scan_proxy_log(log, issues)
    log.write_text("".join(line.replace("Fix the", "Fix a") + "\n" for line in lines), encoding="utf-8")
    conversations = build_conversations(
        scanned.calls, scanned.trie.parent, lambda summary: load_call(scanned, summary, issues), issues
    )
    assert conversations == [] and issues.count("log_changed_during_read") == 1
