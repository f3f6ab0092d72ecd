"""One logged model call (request history + response) -> canonical messages, tools and flags.

Picks the OpenAI or Anthropic normaliser per request, appends the response as the final assistant turn,
then applies the turn-order decisions that LLaMA-Factory needs (it allows a system turn only first):

* Leading system messages are joined into one system turn.
* A system message in the MIDDLE of the history (Claude Code sends reminders this way with newer
  models) is folded, verbatim, into the FRONT of the following user turn, so the model still sees
  what it saw, in the same place relative to its own turns. If an assistant turn comes before any
  user turn, the text is appended to the preceding user/tool turn instead, or becomes a user turn of
  its own when there is none (counted as `mid_system_folded`).
* Consecutive user turns (e.g. OpenCode's quoted instruction after a reminder) are joined.
* A tool call with malformed arguments cuts the conversation before that assistant turn.
* The conversation ends on an assistant turn: trailing user/tool turns are removed (counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.model import Message
from sftpipe.data.conversion.normalize_anthropic import (
    BILLING_PREFIX,
    assistant_blocks,
    normalize_anthropic_messages,
)
from sftpipe.data.conversion.normalize_common import NormContext, is_empty_assistant, normalize_tools
from sftpipe.data.conversion.normalize_openai import assistant_message, normalize_openai_messages
from sftpipe.data.conversion.proxy_log import ProxyCall

_ANTHROPIC_BLOCKS = {"tool_use", "tool_result", "thinking", "redacted_thinking"}


@dataclass
class NormalizedCall:
    """One proxy call as canonical messages and tools."""

    messages: list[Message]
    tools: list[dict[str, Any]]
    subagent_flag: bool  # Claude Code's billing line said cc_is_subagent=true


def is_anthropic_request(request: dict[str, Any]) -> bool:
    """Whether the request body is in Anthropic form (a `system` key, Anthropic blocks or a billing line)."""
    if "system" in request:
        return True
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            if str(block.get("type")) in _ANTHROPIC_BLOCKS:
                return True
            if str(block.get("text", "")).startswith(BILLING_PREFIX):
                return True
    return False


def response_message(response: Any, index: int, ctx: NormContext) -> Message | None:
    """The assistant turn of a response body (OpenAI chat.completion or Anthropic message shape)."""
    if not isinstance(response, dict):
        return None
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict):
            return assistant_message(message, index, ctx)
        return None
    content = response.get("content")
    if isinstance(content, list):
        return assistant_blocks(content, index, ctx)
    return None


def normalize_call(call: ProxyCall, issues: IssueLog, with_response: bool = True) -> NormalizedCall:
    """The call's history (plus its response unless `with_response` is False) as canonical messages,
    cut at the first broken turn, system messages folded and ending on an assistant turn."""
    ctx = NormContext(issues=issues)
    request = call.request
    raw_messages = request.get("messages") or []
    subagent = False
    if is_anthropic_request(request):
        messages, info = normalize_anthropic_messages(request.get("system"), raw_messages, ctx)
        subagent = info.subagent
    else:
        messages = normalize_openai_messages(raw_messages, ctx)
    if with_response:
        final = response_message(call.response, len(messages), ctx)
        if final is None or is_empty_assistant(final):
            issues.add("unusable_response", f"line {call.line_no}: no assistant message in response_body")
        else:
            messages.append(final)
    if ctx.cut_at is not None:
        issues.add("conversation_cut", f"line {call.line_no}: cut before message {ctx.cut_at}")
        messages = messages[: ctx.cut_at]
    messages = fold_system_messages(messages, issues)
    messages = end_on_assistant(messages, issues)
    return NormalizedCall(
        messages=messages, tools=normalize_tools(request.get("tools"), issues), subagent_flag=subagent
    )


def fold_system_messages(messages: list[Message], issues: IssueLog) -> list[Message]:
    """Leading system messages merged into one; later ones moved into the next user turn (in place)
    or dropped when nothing follows them."""
    out: list[Message] = []
    leading: list[str] = []
    index = 0
    while index < len(messages) and messages[index].role == "system":
        if messages[index].content:
            leading.append(messages[index].content)
        index += 1
    if leading:
        out.append(Message(role="system", content="\n\n".join(leading)))
    pending: list[str] = []
    for message in messages[index:]:
        if message.role == "system":
            if message.content:
                pending.append(message.content)
            continue
        if pending:
            issues.add("mid_system_folded", f"{len(pending)} system message(s) moved into a user turn")
            text = "\n\n".join(pending)
            pending = []
            if message.role == "user":
                message.content = f"{text}\n\n{message.content}" if message.content else text
            elif out and out[-1].role in ("user", "tool"):
                out[-1].content = f"{out[-1].content}\n\n{text}" if out[-1].content else text
            else:
                out.append(Message(role="user", content=text))
        if message.role == "user" and out and out[-1].role == "user":
            out[-1].content = "\n\n".join(t for t in (out[-1].content, message.content) if t)
            continue
        out.append(message)
    if pending:
        issues.add("trailing_system_dropped", f"{len(pending)} system message(s) after the last turn")
    return out


def end_on_assistant(messages: list[Message], issues: IssueLog) -> list[Message]:
    """`messages` up to the last assistant turn (issue logged for what is removed)."""
    end = len(messages)
    while end > 0 and messages[end - 1].role != "assistant":
        end -= 1
    if end < len(messages) and end > 0:
        issues.add("trailing_turns_removed", f"{len(messages) - end} turn(s) after the last assistant turn")
    return messages[:end]
