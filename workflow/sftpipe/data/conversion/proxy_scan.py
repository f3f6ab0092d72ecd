"""One streaming pass over a proxy log: per call a request-less summary and its history's trie node.

Every request repeats the whole history, so a long trial logs each message hundreds of times.
Parsing and normalising every copy (what `read_proxy_log` + linking would do) costs several times a
plain JSON parse of the file. This pass walks each line's JSON structure with the stdlib scanner
(`scan_once`, the C code behind `json.loads`) and, inside `request_body.messages`, first checks
whether the text at the current offset starts with the raw text of a message already seen at the
same index in a recent line (`str.startswith(text, offset)`: a memcmp, no copy). A JSON object is
self-delimiting, so a byte-equal prefix IS that message: its id is reused without parsing it.
Only messages never seen byte-for-byte are parsed, and only raw texts never seen are normalised.
The same shortcut skips the `tools` list and top-level `system` that every request repeats.

Any line the walker does not fully accept (invalid JSON, a duplicate key, a value of an unexpected
type, ...) goes through the exact `json.loads` path of `proxy_log` instead, so issues and results
are the same as reading the whole log into memory. Peak memory: the summaries (responses, usage),
the trie, and the distinct raw message texts: about one trial's largest request, not all of its
copies. The chain tails are read again from their recorded offsets (`load_call`).
"""

from __future__ import annotations

import json
import re
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftpipe.data.conversion.chains import CallSummary, ChainStats
from sftpipe.data.conversion.history_keys import MessageIds, PrefixTrie, request_history
from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.proxy_log import (
    MAX_LINE_BYTES,
    LogLine,
    LogTally,
    ProxyCall,
    as_number,
    call_usage,
    decode_line,
    iter_log_lines,
    open_log,
    parse_record,
    sorted_by_request_time,
    to_call,
)

_WS = re.compile(r"[ \t\n\r]*").match  # JSON whitespace, as json.decoder skips it
_WS_CHARS = frozenset(" \t\n\r")
_SCAN = json.JSONDecoder().scan_once  # parses one JSON value at an index: (value, end index)
_RECENT_LINES = 6  # earlier lines whose messages are tried as byte-equal candidates
_SELF_DELIMITING = ("{", "[", '"')  # values whose raw text cannot be a prefix of a different value


class _NotFast(Exception):
    """The walker met something it does not handle; the line takes the exact json.loads path."""


@dataclass
class ScannedLog:
    """One proxy log scanned: call summaries and the prefix trie of their histories."""

    calls: list[CallSummary]  # successful, well-formed calls sorted by request_time
    trie: PrefixTrie
    path: Path


class _Entry:
    """A distinct raw message text and its id (shared by every line that repeats it)."""

    __slots__ = ("id", "text")

    def __init__(self, text: str, message_id: int) -> None:
        self.text = text
        self.id = message_id


class _Scanner:
    def __init__(self, stats: ChainStats) -> None:
        self.ids = MessageIds()
        self.trie = PrefixTrie()
        self.stats = stats
        self._by_text: dict[str, _Entry] = {}
        self._system_ids: dict[str, int] = {}
        self._recent: deque[list[_Entry]] = deque(maxlen=_RECENT_LINES)
        self._by_first: dict[int, list[_Entry]] = {}  # latest line whose history opens with this id
        self._last_value: dict[str, tuple[str, Any]] = {}  # request key -> (raw text, value)

    # --- fast structural walk -------------------------------------------------------------------
    def walk_line(self, s: str) -> tuple[dict[str, Any], list[int], bool]:
        """(record without request_body, history ids, request has tools) or _NotFast."""
        record: dict[str, Any] = {}
        request: dict[str, Any] = {}
        bodies_walked: list[bool] = []
        system_text: list[str | None] = [None]  # raw text of the top-level system value

        def top_value(key: str, p: int) -> int:
            if key == "request_body":
                if s[p : p + 1] != "{":
                    raise _NotFast
                bodies_walked.append(True)
                return self._object(s, p, request_value)
            record[key], p = _SCAN(s, p)
            return p

        def request_value(key: str, p: int) -> int:
            if key == "messages":
                if s[p : p + 1] != "[":
                    raise _NotFast
                entries, p = self._messages(s, p)
                request[key] = entries
                return p
            if key in ("tools", "system"):
                request[key], end, raw = self._repeated_value(key, s, p)
                if key == "system":
                    system_text[:] = [raw]
                return end
            _, p = _SCAN(s, p)
            request[key] = True  # present; only messages, tools and system matter here
            return p

        p = _WS(s, 0).end()
        if s[p : p + 1] != "{":
            raise _NotFast
        p = _WS(s, self._object(s, p, top_value)).end()
        if p != len(s) or len(bodies_walked) != 1 or "messages" not in request:
            raise _NotFast
        entries: list[_Entry] = request["messages"]
        ids = [e.id for e in entries]
        system = request.get("system")
        if system:
            text = system_text[0]
            system_id = self._system_ids.get(text) if text is not None else None
            if system_id is None:
                system_id = self.ids.id_of({"role": "system", "content": system})
                if text is not None:
                    self._system_ids[text] = system_id
            ids.insert(0, system_id)
        self._remember(entries)
        return record, ids, bool(request.get("tools"))

    @staticmethod
    def _object(s: str, p: int, on_value: Any) -> int:
        """Walk the object at s[p] == "{", calling on_value(key, value_start) -> value_end."""
        p = _WS(s, p + 1).end()
        if s[p : p + 1] == "}":
            return p + 1
        seen: set[str] = set()
        while True:
            if s[p : p + 1] != '"':
                raise _NotFast
            key, p = _SCAN(s, p)
            if key in seen:  # json.loads keeps the last value; rare enough to leave to it
                raise _NotFast
            seen.add(key)
            p = _WS(s, p).end()
            if s[p : p + 1] != ":":
                raise _NotFast
            p = _WS(s, on_value(key, _WS(s, p + 1).end())).end()
            c = s[p : p + 1]
            if c == "}":
                return p + 1
            if c != ",":
                raise _NotFast
            p = _WS(s, p + 1).end()

    def _repeated_value(self, key: str, s: str, p: int) -> tuple[Any, int, str | None]:
        """(value, end, raw text or None): the last raw text of `key` is tried first, unparsed."""
        last = self._last_value.get(key)
        if last is not None and s.startswith(last[0], p):
            return last[1], p + len(last[0]), last[0]
        value, end = _SCAN(s, p)
        if s[p : p + 1] not in _SELF_DELIMITING:
            self._last_value.pop(key, None)
            return value, end, None
        text = s[p:end]
        self._last_value[key] = (text, value)
        return value, end, text

    def _messages(self, s: str, p: int) -> tuple[list[_Entry], int]:
        entries: list[_Entry] = []
        p = _WS(s, p + 1).end()
        if s[p : p + 1] == "]":
            return entries, p + 1
        preferred: list[_Entry] | None = None
        j = 0
        while True:
            if s[p : p + 1] != "{":
                raise _NotFast  # not an object: the exact path reports bad_request_messages
            entry = None
            if preferred is not None and j < len(preferred) and s.startswith(preferred[j].text, p):
                entry = preferred[j]
            else:
                for candidate in self._recent:
                    if j < len(candidate) and s.startswith(candidate[j].text, p):
                        entry, preferred = candidate[j], candidate
                        break
            if entry is None:
                self.stats.messages_parsed += 1
                value, end = _SCAN(s, p)
                text = s[p:end]
                entry = self._by_text.get(text)
                if entry is None:
                    entry = self._by_text[text] = _Entry(text, self.ids.id_of(value))
                p = end
            else:
                p += len(entry.text)
            entries.append(entry)
            if j == 0:
                preferred = self._by_first.get(entry.id, preferred)
            j += 1
            c = s[p : p + 1]
            if c in _WS_CHARS:
                p = _WS(s, p).end()
                c = s[p : p + 1]
            if c == "]":
                return entries, p + 1
            if c != ",":
                raise _NotFast
            p += 1
            if s[p : p + 1] == " ":  # most loggers write ", " (or ","): no regex call for those
                p += 1
            if s[p : p + 1] in _WS_CHARS:
                p = _WS(s, p).end()

    def _remember(self, entries: list[_Entry]) -> None:
        if entries:
            self._recent.appendleft(entries)
            self._by_first[entries[0].id] = entries

    # --- exact path ---------------------------------------------------------------------------
    def exact_ids(self, request: dict[str, Any]) -> list[int]:
        return [self.ids.id_of(m) for m in request_history(request)]


def scan_proxy_log(
    path: Path, issues: IssueLog, stats: ChainStats | None = None, max_line_bytes: int = MAX_LINE_BYTES
) -> ScannedLog:
    """Summaries of all successful, well-formed calls, sorted by request_time. Never raises on content."""
    stats = stats if stats is not None else ChainStats()
    scanner = _Scanner(stats)
    calls: list[CallSummary] = []
    handle = open_log(path, issues)
    if handle is None:
        return ScannedLog([], scanner.trie, path)
    tally = LogTally()
    with handle:
        for line in iter_log_lines(handle, issues, max_line_bytes):
            text = decode_line(line, issues)
            try:
                record, ids, has_tools = scanner.walk_line(text)
                response = record.get("response_body")
                if response is not None and not isinstance(response, dict):
                    raise _NotFast  # the exact path counts bad_response_body
            except (_NotFast, ValueError, StopIteration):
                summary = _exact_summary(text, line, issues, tally, scanner)
            else:
                summary = None
                if not tally.is_failed(record, line.line_no, issues):
                    summary = _summary(record, line, ids, has_tools, scanner)
            if summary is not None:
                calls.append(summary)
    tally.finish(path, issues)
    stats.messages_normalised += scanner.ids.normalised
    return ScannedLog(sorted_by_request_time(calls, issues), scanner.trie, path)


def _summary(
    record: dict[str, Any], line: LogLine, ids: list[int], has_tools: bool, scanner: _Scanner
) -> CallSummary:
    response = record.get("response_body")  # a dict or None: walk_line's caller checked
    return CallSummary(
        line_no=line.line_no,
        request_time=as_number(record.get("request_time")),
        response=response,
        usage=call_usage(record, response),
        has_tools=has_tools,
        node=scanner.trie.path(ids),
        depth=len(ids),
        offset=line.offset,
        length=line.length,
        crc=zlib.crc32(line.raw),
    )


def _exact_summary(
    text: str, line: LogLine, issues: IssueLog, tally: LogTally, scanner: _Scanner
) -> CallSummary | None:
    record = parse_record(text, line, issues)
    if record is None or tally.is_failed(record, line.line_no, issues):
        return None
    call = to_call(record, line.line_no, issues)
    if call is None:
        return None
    ids = scanner.exact_ids(call.request)
    return CallSummary(
        line_no=call.line_no,
        request_time=call.request_time,
        response=call.response,
        usage=call.usage,
        has_tools=bool(call.request.get("tools")),
        node=scanner.trie.path(ids),
        depth=len(ids),
        offset=line.offset,
        length=line.length,
        crc=zlib.crc32(line.raw),
    )


def load_call(log: ScannedLog, summary: CallSummary, issues: IssueLog) -> ProxyCall | None:
    """Read a call's line again (its request was not kept); None, counted, if the file changed."""
    try:
        with log.path.open("rb") as handle:
            handle.seek(summary.offset)
            raw = handle.read(summary.length)
    except OSError as exc:
        issues.add("unreadable_log", f"{log.path}: {exc}")
        return None
    if zlib.crc32(raw) != summary.crc:
        issues.add("log_changed_during_read", f"line {summary.line_no} differs on the second read")
        return None
    scratch = IssueLog()  # this line's problems were counted on the first read
    line = LogLine(summary.line_no, summary.offset, raw, not raw.endswith(b"\n"))
    record = parse_record(decode_line(line, scratch), line, scratch)
    call = to_call(record, line.line_no, scratch) if record is not None else None
    if call is None:
        issues.add("log_changed_during_read", f"line {summary.line_no} no longer parses")
    return call
