"""What counts as a failed tool call, shared by scoring, LF formatting and stats."""

from __future__ import annotations

from sftpipe.data.conversion.model import Message

# Error markers the scaffolds put in tool results without (or besides) an error flag:
# Claude Code's validation errors, its invalid-argument message, OpenHands' execution error.
ERROR_PREFIXES = (
    "<tool_use_error>",
    "The arguments provided to the tool are invalid",
    "[An error occurred during execution.]",
)


def is_error_result(msg: Message) -> bool:
    """A tool result that reports a failed call: the reader's flag or a known error marker."""
    return msg.role == "tool" and (msg.is_error or msg.content.lstrip().startswith(ERROR_PREFIXES))
