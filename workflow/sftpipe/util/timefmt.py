"""Time text: UTC stamps for records, and the `H:MM:SS` durations of LLaMA-Factory and SLURM."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# "H:MM:SS", "N day(s), H:MM:SS" (Python's timedelta, LF's logs), "D-HH:MM:SS", "MM:SS" (SLURM's squeue).
_LF = re.compile(r"\s*(?:(\d+) days?, )?(\d+):(\d\d):(\d\d)(?:\.\d+)?\s*")
_SLURM = re.compile(r"\s*(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)\s*")


def utc_now() -> str:
    """Current time as UTC ISO 8601 with a Z suffix, second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_stamp() -> str:
    """Current time for file names: 20261202T083100Z."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def iso_of(ts: float) -> str:
    """Unix time -> utc_now() text."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix_of(text: Any) -> float | None:
    """utc_now() text -> unix time (None when it is not that format)."""
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def parse_duration(text: Any) -> float | None:
    """A duration in seconds from LF's `H:MM:SS` / `N days, H:MM:SS` or SLURM's `D-HH:MM:SS` / `MM:SS`.

    None for anything else (SLURM's UNLIMITED, INVALID, NOT_SET, a number, None).
    """
    if not isinstance(text, str):
        return None
    m = _LF.fullmatch(text)
    if m:
        days, h, mi, s = (int(g) if g else 0 for g in m.groups())
        return float(((days * 24 + h) * 60 + mi) * 60 + s)
    if text.strip().isdigit():  # squeue's seconds-only form
        return float(text.strip())
    m = _SLURM.fullmatch(text)
    if m:
        days, h, mi, s = (int(g) if g else 0 for g in m.groups())
        return float(((days * 24 + h) * 60 + mi) * 60 + s)
    return None


def format_duration(seconds: float | None) -> str | None:
    """Seconds -> `H:MM:SS`, with a `Nd ` prefix past a day."""
    if seconds is None:
        return None
    seconds = round(seconds)
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}d " if d else "") + f"{h}:{m:02d}:{s:02d}"
