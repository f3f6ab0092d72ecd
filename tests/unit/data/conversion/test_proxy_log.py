"""Robust streaming of litellm-trajectory.jsonl: every bad line is counted, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

from reader_logs import openai_response, record
from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.proxy_log import read_proxy_log


def _line(rec: object) -> bytes:
    return (json.dumps(rec) + "\n").encode()


def test_bad_lines_are_counted_and_good_ones_kept(tmp_path: Path) -> None:
    good = record([{"role": "user", "content": "hi"}], openai_response("a"), t=5)
    data = b"".join(
        [
            _line(good),
            b"{not json\n",
            b"[1, 2]\n",
            _line({"request_body": "oops"}),
            _line({"request_body": {"messages": "x"}}),
            b"\n",
            _line(record([{"role": "user", "content": "caf\xe9"}], openai_response("b"), t=6))[:-1].replace(
                b"caf\\u00e9", b"caf\xe9"
            )
            + b"\n",
            _line(record([{"role": "user", "content": "x"}], t=7, success=False)),
            _line(good)[:40],  # truncated last line, no newline
        ]
    )
    path = tmp_path / "log.jsonl"
    path.write_bytes(data)
    issues = IssueLog()
    calls = read_proxy_log(path, issues)
    assert [c.line_no for c in calls] == [1, 7]
    assert calls[1].request["messages"][0]["content"] == "caf\ufffd"
    for code in (
        "invalid_json_line",
        "wrong_type_line",
        "bad_request_body",
        "bad_request_messages",
        "non_utf8_line",
        "failed_call",
        "truncated_last_line",
    ):
        assert issues.count(code) == 1, code
    assert "all_calls_failed" not in issues


def test_huge_line_is_skipped_without_reading_it_whole(tmp_path: Path) -> None:
    big = record([{"role": "user", "content": "x" * 5000}], openai_response("a"), t=1)
    small = record([{"role": "user", "content": "y"}], openai_response("b"), t=2)
    path = tmp_path / "log.jsonl"
    path.write_bytes(_line(big) + _line(small))
    issues = IssueLog()
    calls = read_proxy_log(path, issues, max_line_bytes=1000)
    assert [c.request["messages"][0]["content"] for c in calls] == ["y"]
    assert issues.count("huge_line") == 1


def test_only_explicit_false_is_a_failure_and_sort_is_stable(tmp_path: Path) -> None:
    recs = [
        record([{"role": "user", "content": "late"}], openai_response("a"), t=300),
        record([{"role": "user", "content": "no-flag"}], openai_response("a"), t=100, success=None),
        record([{"role": "user", "content": "same-time-1"}], openai_response("a"), t=200),
        record([{"role": "user", "content": "same-time-2"}], openai_response("a"), t=200),
        record([{"role": "user", "content": "failed"}], t=250, success=False),
        record([{"role": "user", "content": "no-time"}], openai_response("a")),
    ]
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    issues = IssueLog()
    calls = read_proxy_log(path, issues)
    order = [c.request["messages"][0]["content"] for c in calls]
    # "no-time" sorts with the time of the (successful) call before it in the file: same-time-2.
    assert order == ["no-flag", "same-time-1", "same-time-2", "no-time", "late"]
    assert issues.count("failed_call") == 1
    assert issues.count("missing_request_time") == 1


def test_empty_and_all_failed_logs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    issues = IssueLog()
    assert read_proxy_log(empty, issues) == []
    assert "empty_log" in issues

    failed = tmp_path / "failed.jsonl"
    failed.write_text(
        "".join(
            json.dumps(record([{"role": "user", "content": "x"}], t=i, success=False)) + "\n"
            for i in range(3)
        )
    )
    issues = IssueLog()
    assert read_proxy_log(failed, issues) == []
    assert issues.count("all_calls_failed") == 1 and issues.count("failed_call") == 3
