"""Entry point of the readers: one Harbor trial dir -> canonical conversations + counted issues.

Source per scaffold:
* claude-code, open-code, openhands-sdk: the proxy log `agent/litellm-trajectory.jsonl` (what the
  model really saw and said); ATIF `agent/trajectory.json` only when the log is missing or yields no
  conversation (counted as `atif_fallback`).
* terminus2: ATIF first (Harbor keeps the raw answers; see atif.py), the proxy log when no ATIF exists.

Never raises on bad input: an unexpected error inside a reader is reported as `reader_error` with
the exception text, and the trial yields no conversations.
"""
from __future__ import annotations

import traceback
from pathlib import Path

from sftpipe.data.conversion.atif import read_atif
from sftpipe.data.conversion.chains import ChainStats, build_conversations
from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.model import Conversation, TrialIssue
from sftpipe.data.conversion.proxy_scan import load_call, scan_proxy_log

SCAFFOLDS = ("claude-code", "open-code", "openhands-sdk", "terminus2")
PROXY_LOG = "litellm-trajectory.jsonl"
ATIF_FILE = "trajectory.json"


def read_proxy_conversations(
    log_path: Path, issues: IssueLog, stats: ChainStats | None = None
) -> list[Conversation]:
    """Streams the log once (summaries only), then re-reads each chain's tail request."""
    log = scan_proxy_log(log_path, issues, stats)
    return build_conversations(log.calls, log.trie.parent, lambda call: load_call(log, call, issues), issues, stats)


def read_trial(trial_dir: Path, scaffold: str) -> tuple[list[Conversation], list[TrialIssue]]:
    issues = IssueLog()
    try:
        conversations = _read(Path(trial_dir), scaffold, issues)
    except Exception as exc:  # noqa: BLE001 - a reader bug must not stop the whole job; it is reported
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        issues.add("reader_error", f"{type(exc).__name__} at {where}: {exc}")
        conversations = []
    return conversations, issues.to_list()


def _read(trial_dir: Path, scaffold: str, issues: IssueLog) -> list[Conversation]:
    if scaffold not in SCAFFOLDS:
        issues.add("unknown_scaffold", scaffold)
        return []
    agent_dir = trial_dir / "agent"
    log_path = agent_dir / PROXY_LOG
    atif_path = agent_dir / ATIF_FILE
    has_log, has_atif = log_path.is_file(), atif_path.is_file()
    if not has_log and not has_atif:
        issues.add("no_trajectory", f"neither {PROXY_LOG} nor {ATIF_FILE} in {agent_dir}")
        return []
    if scaffold == "terminus2":
        if has_atif:
            return read_atif(agent_dir, scaffold, issues)
        return read_proxy_conversations(log_path, issues)
    conversations = read_proxy_conversations(log_path, issues) if has_log else []
    if not conversations and has_atif:
        issues.add("atif_fallback", "proxy log missing" if not has_log else "proxy log gave no conversation")
        conversations = read_atif(agent_dir, scaffold, issues)
    return conversations
