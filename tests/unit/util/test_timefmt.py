"""One duration parser for LLaMA-Factory's logs and SLURM's squeue, and the record time stamps."""

from __future__ import annotations

import pytest
from sftpipe.util.timefmt import format_duration, iso_of, parse_duration, unix_of, utc_now


@pytest.mark.parametrize(
    "text, seconds",
    [
        # squeue %L
        ("45", 45),
        ("0:45", 45),
        ("12:34", 754),
        ("1:02:03", 3723),
        ("2-01:00:00", 176400),
        ("1-0:00:05", 86405),
        ("UNLIMITED", None),
        ("NOT_SET", None),
        ("INVALID", None),
        ("", None),
        # LLaMA-Factory elapsed_time / remaining_time (Python timedelta text)
        ("0:00:07", 7),
        ("3:25:00", 12300),
        ("1 day, 2:00:00", 93600),
        ("2 days, 0:00:01", 172801),
        ("0:00:07.250000", 7),
        (None, None),
        (12, None),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_format_duration_round_trips():
    for seconds in (0, 59, 3723, 93600):
        text = format_duration(seconds)
        assert parse_duration(text.replace("1d ", "1 day, ")) == seconds
    assert format_duration(None) is None


def test_utc_now_round_trips():
    now = utc_now()
    assert now.endswith("Z") and iso_of(unix_of(now)) == now
    assert unix_of("yesterday") is None
