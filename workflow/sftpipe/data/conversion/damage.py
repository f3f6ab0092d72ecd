"""Which reader issues make a trial *damaged*: a record or file it depends on is structurally invalid.

Damage: an unparseable, truncated or oversized line, values of the wrong type, unknown roles or block
types, malformed tool calls or arguments, orphan or duplicate tool results, a missing or invalid
response where one is needed, an unreadable or changing log, an invalid ATIF file. A damaged trial
yields no rows (`on_damaged_trial: skip`, the default) or its longest valid part (`salvage`, status
`salvaged`); the reasons and the first offending line or file are reported either way.

Normal traffic, never damage: failed calls the client retried (`failed_call`), side calls, duplicate
requests, sub-agent chains, reasoning that was not re-sent (`reasoning_restored`), mid-conversation
system messages (`mid_system_folded`), history edits (`history_edit`, resolved in history_edits.py),
images replaced by a marker, tool-less summary requests and the ATIF fallback itself.
"""

from __future__ import annotations

from sftpipe.data.conversion.model import TrialIssue

DAMAGE_CODES = frozenset(
    {
        # line level (proxy_log)
        "truncated_last_line",
        "invalid_json_line",
        "wrong_type_line",
        "non_utf8_line",
        "huge_line",
        "bad_request_body",
        "bad_request_messages",
        "bad_response_body",
        "unreadable_log",
        "log_changed_during_read",
        # record level (normalize_*)
        "bad_content_type",
        "bad_content_part",
        "unknown_block_type",
        "unknown_role",
        "bad_tools",
        "bad_tool_calls",
        "bad_tool_arguments",
        "tool_call_without_id",
        "tool_result_without_id",
        "tool_call_without_result",
        "orphan_tool_result",
        "duplicate_tool_result",
        "unusable_response",
        "conversation_cut",
        # ATIF
        "invalid_atif",
        "invalid_atif_step",
        "bad_continuation_ref",
        "missing_continuation",
        "alternation_break",
        # a reader that raised on this trial's input
        "reader_error",
    }
)
# Trial-level file problems found while scanning the job dir (harbor_job.inspect_trial skip reasons).
DAMAGED_FILE_REASONS = frozenset({"invalid_config", "invalid_result"})


def damage_of(issues: list[TrialIssue]) -> tuple[list[str], str]:
    """(sorted damage codes, where the first one was found) of one trial's reader issues."""
    damage = [i for i in issues if i.code in DAMAGE_CODES]
    if not damage:
        return [], ""
    # The earliest line wins; issues without a line (whole-file problems) come after line-level ones.
    first = min(damage, key=lambda i: (i.line is None, i.line or 0))
    return sorted({i.code for i in damage}), f"{first.code} at {first.where}"
