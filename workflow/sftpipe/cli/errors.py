"""The errors a command reports to its user as one clear line (never a traceback), with their exit code."""

from __future__ import annotations

from sftpipe.cli.common import CommandError
from sftpipe.config import ConfigError
from sftpipe.data.registration import RegistrationError
from sftpipe.lf.checks import LFConfigError, LFDatasetError
from sftpipe.report.publish import PublishError
from sftpipe.report.writeback import WritebackError
from sftpipe.runs.index import RunIndexError
from sftpipe.runs.metrics import MetricsError
from sftpipe.runs.status import RunNotFound
from sftpipe.slurm.env import SlurmEnvError
from sftpipe.training.run_dir import RunDirError
from sftpipe.training.stop import StopError

USER_ERRORS: tuple[type[BaseException], ...] = (
    CommandError,
    ConfigError,
    RegistrationError,
    LFConfigError,
    LFDatasetError,
    PublishError,
    WritebackError,
    RunIndexError,
    MetricsError,
    RunNotFound,
    SlurmEnvError,
    RunDirError,
    StopError,
)
