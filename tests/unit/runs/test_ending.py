"""The one mapping from how a launch ended to a status (sftpipe.runs.ending)."""

from __future__ import annotations

import pytest
from sftpipe.runs.ending import (
    ACTIVE_STATUSES,
    STATUSES,
    TERMINAL_STATUSES,
    final_status,
    status_from_exit_code,
    status_from_stop_reason,
)


@pytest.mark.parametrize(
    ("stop", "status"),
    [
        ({"reason": "stop_file", "requested": {"reason": "stopped"}}, "stopped"),
        ({"reason": "stop_file", "requested": {"reason": "timeout"}}, "timeout"),
        ({"reason": "stop_file", "requested": {"reason": "preempted"}}, "preempted"),
        ({"reason": "stop_file", "requested": {"reason": "interrupted"}}, "interrupted"),
        (
            {"reason": "stop_file", "requested": {"reason": "something else"}},
            "stopped",
        ),  # never an unknown status
        ({"reason": "stop_file", "requested": None}, "stopped"),
        ({"reason": "stop_file"}, "stopped"),
        ({"reason": "signal", "signal": "SIGUSR1"}, "timeout"),
        ({"reason": "signal", "signal": "SIGTERM"}, "interrupted"),
        ({"reason": "timeout"}, "timeout"),
        ({}, "interrupted"),
    ],
)
def test_stop_reason_to_status(stop, status):
    assert status_from_stop_reason(stop) == status
    assert status in STATUSES


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, "completed"),
        (1, "failed"),
        (137, "failed"),
        (130, "interrupted"),
        (143, "interrupted"),
        (-15, "interrupted"),
        (-9, "failed"),
    ],
)
def test_exit_code_to_status(code, status):
    assert status_from_exit_code(code) == status


def test_final_status_every_way_a_launch_ends():
    requested = {"reason": "stop_file", "requested": {"reason": "stopped"}}
    assert final_status(0, None, None, finished=True) == "completed"
    assert final_status(0, None, None, finished=False) == "failed"  # exit 0 without LF's results
    assert final_status(1, None, None, finished=False) == "failed"
    assert final_status(75, requested, None, finished=False) == "stopped"  # `sft stop`
    assert (
        final_status(75, {"reason": "stop_file", "requested": {"reason": "timeout"}}, None, False)
        == "timeout"
    )
    assert (
        final_status(75, requested, "interrupted", finished=False) == "interrupted"
    )  # SIGTERM to the launcher
    assert final_status(75, requested, "preempted", finished=False) == "preempted"  # SLURM preemption
    assert (
        final_status(143, None, "interrupted", finished=False) == "interrupted"
    )  # signalled, ranks died first
    assert final_status(143, None, None, finished=False) == "interrupted"
    assert (
        final_status(143, None, None, finished=False, multi_node=True) == "failed"
    )  # srun killed the others


def test_vocabulary():
    assert ACTIVE_STATUSES | TERMINAL_STATUSES | {"unknown"} == STATUSES
    assert not ACTIVE_STATUSES & TERMINAL_STATUSES
