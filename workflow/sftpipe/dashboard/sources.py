"""The run-store functions the dashboard reads through: the one place they are imported.

`/api/runs` and `/api/runs/<id>` must return exactly what `sft runs --json` and `sft status <id> --json`
print, so they call the very functions those commands call. When the run store moves, repoint here.
"""

from __future__ import annotations

from sftpipe.report.compare import compare
from sftpipe.runs.best import best_checkpoint
from sftpipe.runs.ending import ACTIVE_STATUSES
from sftpipe.runs.index import RunIndexError, read_entries
from sftpipe.runs.metrics import MetricsError, extract_metrics, read_trainer_log
from sftpipe.runs.status import RunNotFound, RunRef, list_runs, resolve_run, run_report
from sftpipe.runs.store import RunStore
from sftpipe.util.redact import redact

__all__ = [
    "ACTIVE_STATUSES",
    "MetricsError",
    "RunIndexError",
    "RunNotFound",
    "RunRef",
    "RunStore",
    "best_checkpoint",
    "compare",
    "extract_metrics",
    "list_runs",
    "read_entries",
    "read_events",
    "read_trainer_log",
    "redact",
    "resolve_run",
    "run_report",
]


def read_events(run_dir):
    """The run's structured events log (through the run store)."""
    return RunStore(run_dir).read_events()
