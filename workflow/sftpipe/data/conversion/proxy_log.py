"""Streams `agent/litellm-trajectory.jsonl` (one JSON record per model call) into ProxyCall objects.

The file is appended live by the LiteLLM logger, so it may end in a truncated line, contain bytes that
are not UTF-8 (tool output), or hold lines that are not the expected shape. Every such line is skipped
and counted in the IssueLog; nothing here raises on bad content. Only an explicit `"success": false`
marks a failed call (a missing field means success). Successful calls are returned sorted by
`request_time` (stable, so calls stamped in the same millisecond keep their file order).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from sftpipe.data.conversion.issues import IssueLog

# Lines above this size are skipped (counted): a single request this large is not a trainable sample
# and json.loads on it would need several times its size in memory.
MAX_LINE_BYTES = 512 * 1024 * 1024


@dataclass
class ProxyCall:
    """One successful call of a LiteLLM proxy log."""

    line_no: int  # 1-based line in the file, for issue details
    request_time: float | None
    request: dict[str, Any]  # request_body: messages, tools, system?, model, sampling params
    response: dict[str, Any] | None  # response_body (None when absent or not an object)
    usage: dict[str, Any] = field(default_factory=dict)


class _HasTime(Protocol):
    line_no: int
    request_time: float | None


_Timed = TypeVar("_Timed", bound=_HasTime)


def as_number(value: Any) -> float | None:
    """`value` as a float, None for non-numbers (bool included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass
class LogLine:
    """One non-empty line of the log, with where it lies in the file (to read it again later)."""

    line_no: int
    offset: int  # byte offset of the line in the file
    raw: bytes  # the line as read, newline included when present
    is_last_unterminated: bool

    @property
    def length(self) -> int:
        return len(self.raw)


def iter_log_lines(
    handle: BinaryIO, issues: IssueLog, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[LogLine]:
    """Non-blank lines of an open log; oversized lines are skipped (counted) without being held whole."""
    line_no = 0
    offset = 0
    while True:
        raw = handle.readline(max_line_bytes + 1)
        if not raw:
            return
        line_no += 1
        start = offset
        offset += len(raw)
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            # Skip the rest of the oversized line without holding it in memory.
            while raw and not raw.endswith(b"\n"):
                raw = handle.readline(1024 * 1024)
                offset += len(raw)
            issues.add("huge_line", f"line {line_no} over {max_line_bytes} bytes")
            continue
        if not raw.strip():
            continue
        yield LogLine(line_no, start, raw, not raw.endswith(b"\n"))


def decode_line(line: LogLine, issues: IssueLog) -> str:
    """The stripped line as text; undecodable bytes are replaced (and counted)."""
    stripped = line.raw.strip()
    try:
        return stripped.decode("utf-8")
    except UnicodeDecodeError:
        issues.add("non_utf8_line", f"line {line.line_no}: undecodable bytes replaced by U+FFFD")
        return stripped.decode("utf-8", errors="replace")


def parse_record(text: str, line: LogLine, issues: IssueLog) -> dict[str, Any] | None:
    """The line's JSON object, or None (counted) when it is not valid JSON or not an object."""
    try:
        record = json.loads(text)
    except ValueError as exc:
        code = "truncated_last_line" if line.is_last_unterminated else "invalid_json_line"
        issues.add(code, f"line {line.line_no}: {exc}")
        return None
    if not isinstance(record, dict):
        issues.add("wrong_type_line", f"line {line.line_no}: {type(record).__name__}, not an object")
        return None
    return record


class LogTally:
    """Counts records and failed calls of one log, for the `empty_log` / `all_calls_failed` verdicts."""

    def __init__(self) -> None:
        self.records = 0
        self.failed = 0

    def is_failed(self, record: dict[str, Any], line_no: int, issues: IssueLog) -> bool:
        self.records += 1
        if record.get("success") is False:
            self.failed += 1
            issues.add("failed_call", f"line {line_no}")
            return True
        return False

    def finish(self, path: Path, issues: IssueLog) -> None:
        if self.records == 0:
            issues.add("empty_log", str(path))
        elif self.failed == self.records:
            issues.add("all_calls_failed", f"{self.failed} calls")


def open_log(path: Path, issues: IssueLog) -> BinaryIO | None:
    """The log opened for binary reading, None (logged as unreadable_log) when it cannot be opened."""
    try:
        return path.open("rb")
    except OSError as exc:
        issues.add("unreadable_log", f"{path}: {exc}")
        return None


def read_proxy_log(path: Path, issues: IssueLog, max_line_bytes: int = MAX_LINE_BYTES) -> list[ProxyCall]:
    """All successful, well-formed calls of one log, sorted by request_time. Never raises on content.

    Holds every parsed request; `proxy_scan.scan_proxy_log` is the streaming form used for whole jobs.
    """
    handle = open_log(path, issues)
    if handle is None:
        return []
    calls: list[ProxyCall] = []
    tally = LogTally()
    with handle:
        for line in iter_log_lines(handle, issues, max_line_bytes):
            record = parse_record(decode_line(line, issues), line, issues)
            if record is None or tally.is_failed(record, line.line_no, issues):
                continue
            call = to_call(record, line.line_no, issues)
            if call is not None:
                calls.append(call)
    tally.finish(path, issues)
    return sorted_by_request_time(calls, issues)


def to_call(record: dict[str, Any], line_no: int, issues: IssueLog) -> ProxyCall | None:
    """A record as a ProxyCall, None (logged) when its request body or messages are malformed."""
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
    return ProxyCall(
        line_no=line_no,
        request_time=as_number(record.get("request_time")),
        request=request,
        response=response,
        usage=call_usage(record, response),
    )


def call_usage(record: dict[str, Any], response: dict[str, Any] | None) -> dict[str, Any]:
    """The record's `usage`, else the response's, else {}."""
    usage = record.get("usage")
    if not isinstance(usage, dict):
        usage = response.get("usage") if isinstance(response, dict) else None
    return usage if isinstance(usage, dict) else {}


def sorted_by_request_time(calls: list[_Timed], issues: IssueLog) -> list[_Timed]:
    """`calls` sorted by request_time; each call without one is logged (missing_request_time)."""
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
