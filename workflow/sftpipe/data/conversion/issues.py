"""Collects TrialIssues while a trial is read: one entry per code, counted, with the first detail kept.

Readers report every skipped or repaired item here instead of raising, so a whole job converts even
when single lines or blocks are malformed, and the report can say how often each problem occurred.
The reader sets `file` (and, while it normalises one proxy record, `line`) so that the first
occurrence of each code can be named precisely ("agent/litellm-trajectory.jsonl line 7").
"""

from __future__ import annotations

import re

from sftpipe.data.conversion.model import TrialIssue

# How many distinct details are kept per code (the count keeps growing; details are examples).
MAX_DETAILS_PER_CODE = 3
_LINE_RE = re.compile(r"\bline (\d+)")


class IssueLog:
    """The issues of one trial being read: counts per code, a few example details and the first occurrence."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._details: dict[str, list[str]] = {}
        self._first: dict[str, tuple[str, int | None, str]] = {}  # code -> (file, line, detail)
        self.file = ""  # the file being read, relative to the trial dir
        self.line: int | None = None  # the proxy-log line being normalised, None when unknown

    def add(self, code: str, detail: str = "", count: int = 1) -> None:
        self._counts[code] = self._counts.get(code, 0) + count
        examples = self._details.setdefault(code, [])
        if detail and len(examples) < MAX_DETAILS_PER_CODE and detail not in examples:
            examples.append(detail[:300])
        if code not in self._first:
            line = self.line
            if line is None:  # line-level problems name their line in the detail
                m = _LINE_RE.search(detail)
                line = int(m.group(1)) if m else None
            self._first[code] = (self.file, line, detail[:300])

    def count(self, code: str) -> int:
        return self._counts.get(code, 0)

    def __contains__(self, code: str) -> bool:
        return code in self._counts

    def to_list(self) -> list[TrialIssue]:
        out = []
        for code, n in self._counts.items():
            file, line, detail = self._first[code]
            out.append(
                TrialIssue(
                    code=code,
                    detail="; ".join(self._details[code]),
                    count=n,
                    file=file,
                    line=line,
                    first_detail=detail,
                )
            )
        return out
