"""Launcher side of the fail-fast probe (the in-rank side is sftpipe.training.probe): settings, status, error.

The launcher passes the probe's settings to the ranks through the environment (like SFT_STOP_FILE),
and reads back what the ranks wrote: stop_reason.json with reason `oom_at_max_length` when a batch of
the longest length did not fit, and max_length_probe.json with the measurement either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sftpipe.runs.ending import OOM_AT_MAX_LENGTH
from sftpipe.runs.store import RunStore

PROBE_ENV = "SFT_FAIL_FAST_PROBE"  # "1": run the probe at train begin
MAX_LEN_ENV = "SFT_PROBE_MAX_LEN"  # cutoff_len: the longest a batch can be
CPU_LIMIT_ENV = "SFT_CPU_RANK_MEMORY_LIMIT_MB"  # accelerator cpu: RLIMIT_AS headroom per rank
OOM_REASON = OOM_AT_MAX_LENGTH  # stop_reason.json reason and run status
OOM_EXIT_CODE = 76  # the rank's exit code after a failed probe (torchrun reports 1: read stop_reason.json)


def probe_env(infrastructure: dict[str, Any], training: dict[str, Any]) -> dict[str, str]:
    """Environment for the training ranks from infrastructure.fail_fast_probe / cpu_rank_memory_limit_mb."""
    env: dict[str, str] = {}
    if infrastructure.get("fail_fast_probe", True):
        env[PROBE_ENV] = "1"
        if training.get("cutoff_len"):
            env[MAX_LEN_ENV] = str(int(training["cutoff_len"]))
    limit = int(infrastructure.get("cpu_rank_memory_limit_mb") or 0)
    if limit and infrastructure.get("accelerator") == "cpu":
        env[CPU_LIMIT_ENV] = str(limit)
    return env


def read_probe(run_dir: Path) -> dict[str, Any] | None:
    """max_length_probe.json of a run directory, or None."""
    return RunStore(run_dir).read_probe()


def oom_error(stop_reason: dict[str, Any] | None) -> str | None:
    """The index entry's error text for a run the probe stopped: what failed and what to change."""
    if not stop_reason or stop_reason.get("reason") != OOM_REASON:
        return None
    return f"{stop_reason.get('message', 'out of memory at the maximum length')}\n{stop_reason.get('suggestion', '')}"
