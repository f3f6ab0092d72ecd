"""Collects TrialIssues while a trial is read: one entry per code, counted, with the first detail kept.

Readers report every skipped or repaired item here instead of raising, so a whole job converts even
when single lines or blocks are malformed, and the report can say how often each problem occurred.
"""
from __future__ import annotations

from sftpipe.data.conversion.model import TrialIssue

# How many distinct details are kept per code (the count keeps growing; details are examples).
MAX_DETAILS_PER_CODE = 3


class IssueLog:
    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._details: dict[str, list[str]] = {}

    def add(self, code: str, detail: str = "", count: int = 1) -> None:
        self._counts[code] = self._counts.get(code, 0) + count
        examples = self._details.setdefault(code, [])
        if detail and len(examples) < MAX_DETAILS_PER_CODE and detail not in examples:
            examples.append(detail[:300])

    def count(self, code: str) -> int:
        return self._counts.get(code, 0)

    def __contains__(self, code: str) -> bool:
        return code in self._counts

    def to_list(self) -> list[TrialIssue]:
        return [
            TrialIssue(code=code, detail="; ".join(self._details[code]), count=n)
            for code, n in self._counts.items()
        ]
