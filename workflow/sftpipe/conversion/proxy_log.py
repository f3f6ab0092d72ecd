"""Streams `agent/litellm-trajectory.jsonl` (one JSON record per model call) into ProxyCall objects.

The file is appended live by the LiteLLM logger, so it may end in a truncated line, contain bytes that
are not UTF-8 (tool output), or hold lines that are not the expected shape. Every such line is skipped
and counted in the IssueLog; nothing here raises on bad content. Only an explicit `"success": false`
marks a failed call (a missing field means success). Successful calls are returned sorted by
`request_time` (stable, so calls stamped in the same millisecond keep their file order).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .issues import IssueLog

# Lines above this size are skipped (counted): a single request this large is not a trainable sample
# and json.loads on it would need several times its size in memory.
MAX_LINE_BYTES = 512 * 1024 * 1024


@dataclass
class ProxyCall:
    line_no: int  # 1-based line in the file, for issue details
    request_time: float | None
    request: dict[str, Any]  # request_body: messages, tools, system?, model, sampling params
    response: dict[str, Any] | None  # response_body (None when absent or not an object)
    usage: dict[str, Any] = field(default_factory=dict)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def read_proxy_log(path: Path, issues: IssueLog, max_line_bytes: int = MAX_LINE_BYTES) -> list[ProxyCall]:
    """All successful, well-formed calls of one log, sorted by request_time. Never raises on content."""
    calls: list[ProxyCall] = []
    n_records = 0
    n_failed = 0
    try:
        handle = path.open("rb")
    except OSError as exc:
        issues.add("unreadable_log", f"{path}: {exc}")
        return []
    with handle:
        line_no = 0
        while True:
            raw = handle.readline(max_line_bytes + 1)
            if not raw:
                break
            line_no += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                # Skip the rest of the oversized line without holding it in memory.
                while raw and not raw.endswith(b"\n"):
                    raw = handle.readline(1024 * 1024)
                issues.add("huge_line", f"line {line_no} over {max_line_bytes} bytes")
                continue
            is_last_unterminated = not raw.endswith(b"\n")
            stripped = raw.strip()
            if not stripped:
                continue
            try:
                text = stripped.decode("utf-8")
            except UnicodeDecodeError:
                text = stripped.decode("utf-8", errors="replace")
                issues.add("non_utf8_line", f"line {line_no}: undecodable bytes replaced by U+FFFD")
            try:
                record = json.loads(text)
            except ValueError as exc:
                code = "truncated_last_line" if is_last_unterminated else "invalid_json_line"
                issues.add(code, f"line {line_no}: {exc}")
                continue
            if not isinstance(record, dict):
                issues.add("wrong_type_line", f"line {line_no}: {type(record).__name__}, not an object")
                continue
            n_records += 1
            if record.get("success") is False:
                n_failed += 1
                issues.add("failed_call", f"line {line_no}")
                continue
            call = _to_call(record, line_no, issues)
            if call is not None:
                calls.append(call)
    if n_records == 0:
        issues.add("empty_log", str(path))
    elif n_failed == n_records:
        issues.add("all_calls_failed", f"{n_failed} calls")
    return _sorted_by_request_time(calls, issues)


def _to_call(record: dict[str, Any], line_no: int, issues: IssueLog) -> ProxyCall | None:
    request = record.get("request_body")
    if not isinstance(request, dict):
        issues.add("bad_request_body", f"line {line_no}: request_body is {type(request).__name__}")
        return None
    messages = request.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        issues.add("bad_request_messages", f"line {line_no}: messages missing or not a list of objects")
        return None
    response = record.get("response_body")
    if response is not None and not isinstance(response, dict):
        issues.add("bad_response_body", f"line {line_no}: response_body is {type(response).__name__}")
        response = None
    usage = record.get("usage")
    if not isinstance(usage, dict):
        usage = response.get("usage") if isinstance(response, dict) else None
    return ProxyCall(
        line_no=line_no,
        request_time=_number(record.get("request_time")),
        request=request,
        response=response,
        usage=usage if isinstance(usage, dict) else {},
    )


def _sorted_by_request_time(calls: list[ProxyCall], issues: IssueLog) -> list[ProxyCall]:
    # A call without a usable time sorts right after the call before it in the file.
    keys: list[float] = []
    last = float("-inf")
    for call in calls:
        if call.request_time is None:
            issues.add("missing_request_time", f"line {call.line_no}")
        else:
            last = call.request_time
        keys.append(last)
    order = sorted(range(len(calls)), key=lambda i: keys[i])
    return [calls[i] for i in order]
