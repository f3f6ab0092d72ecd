"""How a run ends: the status vocabulary and the ONE mapping from what happened to a status.

Used by the launcher when it records the end (`training.train`), by `sft status` when it derives the state of
a run whose launcher died (`runs.status`), and by the run history's validation (`runs.index`).
"""

from __future__ import annotations

from typing import Any

OOM_AT_MAX_LENGTH = (
    "oom_at_max_length"  # the fail-fast probe: the longest batch does not fit (training.probe)
)
STATUSES = frozenset(
    {
        "queued",
        "running",
        "completed",
        "failed",
        "interrupted",
        "stopped",
        "timeout",
        "preempted",
        "crashed",
        OOM_AT_MAX_LENGTH,
        "unknown",
    }
)
ACTIVE_STATUSES = frozenset({"queued", "running"})
TERMINAL_STATUSES = STATUSES - ACTIVE_STATUSES - {"unknown"}
# A stop the training process honoured: the reasons a stop request or stop_reason.json can carry.
STOP_STATUSES = ("stopped", "timeout", "preempted", "interrupted")
_INTERRUPT_CODES = frozenset({130, 143, -2, -15})  # SIGINT/SIGTERM as shell codes and as Python reports them


def status_from_exit_code(code: int) -> str:
    """Launcher exit code → status: 0 completed, SIGINT/SIGTERM interrupted, anything else failed."""
    if code == 0:
        return "completed"
    return "interrupted" if code in _INTERRUPT_CODES else "failed"


def status_from_stop_reason(stop: dict[str, Any]) -> str:
    """stop_reason.json (written by the training entry point) → stopped / timeout / preempted / interrupted.

    `reason: stop_file` means a stop request was honoured: the request's own reason wins (`sft stop` asks
    `stopped`, the time-limit guard `timeout`, a signalled launcher `interrupted`/`preempted`); a signal that
    reached the ranks directly is SIGUSR1 (SLURM's warning before the limit) = timeout, anything else interrupted.
    """
    reason = str(stop.get("reason", ""))
    if reason in STOP_STATUSES or reason == OOM_AT_MAX_LENGTH:
        return reason
    if reason == "stop_file":
        requested = stop.get("requested") if isinstance(stop.get("requested"), dict) else {}
        asked = requested.get("reason")
        return asked if asked in STOP_STATUSES else "stopped"
    if reason == "signal":
        return "timeout" if stop.get("signal") == "SIGUSR1" else "interrupted"
    return "interrupted"


def final_status(
    exit_code: int,
    stop: dict[str, Any] | None,
    signal_reason: str | None,
    finished: bool,
    multi_node: bool = False,
) -> str:
    """How one launch ended.

    exit_code: the launcher's child (torchrun or srun); stop: stop_reason.json if the ranks stopped on request;
    signal_reason: why this launcher itself was signalled (it wrote the stop request); finished: LF wrote
    train_results.json; multi_node: an `interrupted` there without a signal of ours means srun's
    --kill-on-bad-exit ended the other nodes after one failed.
    """
    if stop is not None:
        if stop.get("reason") == OOM_AT_MAX_LENGTH:  # the probe ended it, whatever signal followed
            return OOM_AT_MAX_LENGTH
        return signal_reason or status_from_stop_reason(stop)
    if signal_reason:
        return signal_reason
    if exit_code == 0:
        return "completed" if finished else "failed"
    status = status_from_exit_code(exit_code)
    return "failed" if status == "interrupted" and multi_node else status
