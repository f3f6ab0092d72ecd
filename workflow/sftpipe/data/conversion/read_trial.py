"""Entry point of the readers: one Harbor trial dir -> canonical conversations + counted issues.

Source per scaffold:
* claude-code, open-code, openhands-sdk: the proxy log `agent/litellm-trajectory.jsonl` (what the
  model really saw and said); ATIF `agent/trajectory.json` only when the log is missing or yields no
  conversation (counted as `atif_fallback`).
* terminus2: ATIF first (Harbor keeps the raw answers; see atif.py), the proxy log when no ATIF exists.

An ATIF fallback of a tool-calling scaffold usually lacks the system prompt and the tool schemas,
which the rows would then train without. They are taken from `context_donor` (a sibling trial of the
same agent name and version that has a proxy log; `Conversation.context_from` names it) when given;
otherwise the trial is flagged `lossy_fallback` (convert.py leaves it out unless asked to keep it).

Never raises on bad input: an unexpected error inside a reader is reported as `reader_error` with
the exception text, and the trial yields no conversations.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from sftpipe.data.conversion.atif import read_atif
from sftpipe.data.conversion.chains import ChainStats, build_conversations
from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.model import Conversation, Message, TrialIssue
from sftpipe.data.conversion.proxy_scan import load_call, scan_proxy_log

SCAFFOLDS = ("claude-code", "open-code", "openhands-sdk", "terminus2")
PROXY_LOG = "litellm-trajectory.jsonl"
ATIF_FILE = "trajectory.json"


def read_proxy_conversations(
    log_path: Path, issues: IssueLog, stats: ChainStats | None = None
) -> list[Conversation]:
    """Streams the log once (summaries only), then re-reads each chain's tail request."""
    log = scan_proxy_log(log_path, issues, stats)
    return build_conversations(
        log.calls, log.trie.parent, lambda call: load_call(log, call, issues), issues, stats
    )


def read_trial(
    trial_dir: Path, scaffold: str, context_donor: Path | None = None
) -> tuple[list[Conversation], list[TrialIssue]]:
    """A trial's conversations and issues; never raises (a reader bug becomes a reader_error issue
    and no conversations)."""
    issues = IssueLog()
    try:
        conversations = _read(Path(trial_dir), scaffold, issues, context_donor)
    except Exception as exc:  # noqa: BLE001 - a reader bug must not stop the whole job; it is reported
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        issues.add("reader_error", f"{type(exc).__name__} at {where}: {exc}")
        conversations = []
    return conversations, issues.to_list()


def _read(trial_dir: Path, scaffold: str, issues: IssueLog, context_donor: Path | None) -> list[Conversation]:
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
    log_name, atif_name = f"agent/{PROXY_LOG}", f"agent/{ATIF_FILE}"
    if scaffold == "terminus2":
        if has_atif:
            issues.file = atif_name
            return read_atif(agent_dir, scaffold, issues)
        issues.file = log_name
        return read_proxy_conversations(log_path, issues)
    issues.file = log_name
    conversations = read_proxy_conversations(log_path, issues) if has_log else []
    if not conversations and has_atif:
        issues.file = atif_name
        issues.add("atif_fallback", "proxy log missing" if not has_log else "proxy log gave no conversation")
        conversations = read_atif(agent_dir, scaffold, issues)
        _complete_context(conversations, context_donor, issues)
    return conversations


def _is_lossy(conv: Conversation) -> bool:
    """No system prompt, or tool calls without the tool schemas that define them."""
    has_system = bool(
        conv.messages and conv.messages[0].role == "system" and conv.messages[0].content.strip()
    )
    has_calls = any(m.tool_calls for m in conv.messages)
    return not has_system or (has_calls and not conv.tools)


def _complete_context(conversations: list[Conversation], donor: Path | None, issues: IssueLog) -> None:
    """Fill a lossy ATIF conversation's system prompt and tools from the donor's main proxy-log chain."""
    lossy = [c for c in conversations if _is_lossy(c)]
    if not lossy:
        return
    source = None
    if donor is not None:
        scratch = IssueLog()  # the donor's own problems are its report entry's, not this trial's
        donor_convs = read_proxy_conversations(donor / "agent" / PROXY_LOG, scratch)
        source = next(
            (c for c in donor_convs if c.agent_type == "main"), donor_convs[0] if donor_convs else None
        )
    if source is None or not source.messages or source.messages[0].role != "system":
        why = (
            f"sibling {donor.name} gave no usable system prompt"
            if donor is not None
            else "no sibling trial of the same agent name and version has a proxy log"
        )
        issues.add("lossy_fallback", f"ATIF without system prompt or tool schemas; {why}")
        return
    for conv in lossy:
        system = source.messages[0]
        if conv.messages and conv.messages[0].role == "system":
            conv.messages[0] = Message(role="system", content=system.content)
        else:
            conv.messages.insert(0, Message(role="system", content=system.content))
        conv.tools = [dict(t) for t in source.tools]
        conv.context_from = donor.name if donor is not None else ""
    issues.add(
        "context_from_sibling",
        f"system prompt and {len(source.tools)} tools from {donor.name if donor else ''}",
        count=len(lossy),
    )
