"""Helpers shared by the OpenAI and Anthropic request normalisers.

* Tool-call arguments are decoded to objects; a call whose arguments are not a JSON object marks the
  conversation to be cut before that assistant turn (training on a malformed call, or on `{}` in its
  place, would teach the wrong output), counted as `bad_tool_arguments`.
* Tool results are matched to calls BY ID and emitted in call order (clients log parallel results in
  completion order). A result whose id matches no call of the preceding assistant turn is dropped
  (`orphan_tool_result`: there is no call for the chat template to attach it to); a call that got no
  result is removed from the assistant turn (`tool_call_without_result`) unless it is the final turn.
* Errors: `is_error` on the result, or a text marker the scaffold uses instead (see `looks_like_error`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.model import Message, ToolCall

# Text markers by which scaffolds report a failed tool call without an error flag.
_ERROR_PREFIXES = (
    "<tool_use_error>",  # Claude Code: tool rejected the call
    "The arguments provided to the tool are invalid",  # OpenCode / Vercel AI SDK validation failure
)
# OpenHands SDK: an exception while executing the action. A command's own non-zero status (Claude
# Code's `Exit code N` result text, OpenHands' `[The command completed with exit code N.]`) is NOT a
# marker: the tool worked and reported the status (Claude Code's own `is_error` flag is still kept).
_OPENHANDS_ERROR = "[An error occurred during execution.]"


def looks_like_error(text: str) -> bool:
    """Whether a tool result's text reads as a failure (error prefixes, OpenHands error marker)."""
    head = text.lstrip()
    return head.startswith(_ERROR_PREFIXES) or _OPENHANDS_ERROR in text


@dataclass
class NormContext:
    """State of one request's normalisation: the issue log and where the history must be cut."""

    issues: IssueLog
    cut_at: int | None = None  # index (in the output list) of the first assistant turn to drop

    def cut(self, index: int) -> None:
        if self.cut_at is None or index < self.cut_at:
            self.cut_at = index


def build_tool_call(
    name: str,
    raw_arguments: Any,
    raw_id: Any,
    fallback_id: str,
    ctx: NormContext,
    index: int,
    count_missing_id: bool = True,
) -> ToolCall:
    """One canonical call: arguments decoded (undecodable → the conversation is cut at this turn and
    the call kept with {} for the record), and an id (a missing one is counted and replaced)."""
    arguments = decode_arguments(raw_arguments, name, ctx)
    if arguments is None:
        ctx.cut(index)
        arguments = {}
    if not isinstance(raw_id, str) or not raw_id:
        if count_missing_id:
            ctx.issues.add("tool_call_without_id", name)
        raw_id = fallback_id
    return ToolCall(id=raw_id, name=name, arguments=arguments)


def decode_arguments(raw: Any, name: str, ctx: NormContext) -> dict[str, Any] | None:
    """Tool-call arguments as an object, or None (counted) when they are not a JSON object."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}  # clients send "" for argument-less calls
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError as exc:
            ctx.issues.add("bad_tool_arguments", f"{name}: {exc}")
            return None
        if isinstance(value, dict):
            return value
        ctx.issues.add("bad_tool_arguments", f"{name}: arguments decode to {type(value).__name__}")
        return None
    ctx.issues.add("bad_tool_arguments", f"{name}: arguments are {type(raw).__name__}")
    return None


def text_of_parts(content: Any, ctx: NormContext, where: str) -> str:
    """Plain text of a string or a list of text parts; other parts are counted and replaced/skipped."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        ctx.issues.add("bad_content_type", f"{where}: {type(content).__name__}")
        return str(content)
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            ctx.issues.add("bad_content_part", f"{where}: {type(part).__name__}")
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in ("image", "image_url", "input_image", "document"):
            # Text-only training: keep a marker so the turn still shows something was attached.
            ctx.issues.add("non_text_part_replaced", f"{where}: {kind}")
            texts.append(f"[{kind}]")
        else:
            ctx.issues.add("unknown_block_type", f"{where}: {kind!r}")
    return "\n".join(texts)


def normalize_tools(tools: Any, issues: IssueLog) -> list[dict[str, Any]]:
    """Tools in OpenAI function form; Anthropic `input_schema` and bare forms are converted."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        issues.add("bad_tools", f"tools is {type(tools).__name__}")
        return []
    out: list[dict[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, dict):
            issues.add("bad_tools", f"tool entry is {type(tool).__name__}")
            continue
        spec = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            issues.add("bad_tools", "tool without a name")
            continue
        params = spec.get("parameters", spec.get("input_schema"))
        if not isinstance(params, dict):
            params = {"type": "object", "properties": {}}
        description = spec.get("description")
        out.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": description if isinstance(description, str) else "",
                    "parameters": params,
                },
            }
        )
    return out


def order_results(assistant: Message, results: list[Message], ctx: NormContext) -> list[Message]:
    """Results of `assistant`'s calls in call order; orphans dropped, unanswered calls removed."""
    by_id: dict[str, Message] = {}
    anonymous: list[Message] = []
    call_ids = {call.id for call in assistant.tool_calls}
    for result in results:
        rid = result.tool_call_id
        if not rid:
            anonymous.append(result)
        elif rid not in call_ids:
            ctx.issues.add("orphan_tool_result", f"result for unknown call id {rid}")
        elif rid in by_id:
            ctx.issues.add("duplicate_tool_result", f"second result for call id {rid}")
        else:
            by_id[rid] = result
    ordered: list[Message] = []
    kept_calls: list[ToolCall] = []
    for call in assistant.tool_calls:
        result = by_id.get(call.id)
        if result is None and anonymous:
            # A result without an id answers the earliest unanswered call (counted: it is a guess).
            ctx.issues.add("tool_result_without_id", f"assigned to call {call.id}")
            result = anonymous.pop(0)
            result.tool_call_id = call.id
        if result is None:
            ctx.issues.add("tool_call_without_result", f"{call.name} {call.id}")
            continue
        kept_calls.append(call)
        ordered.append(result)
    for _ in anonymous:
        ctx.issues.add("orphan_tool_result", "result without id and no unanswered call left")
    assistant.tool_calls = kept_calls
    return ordered


def is_empty_assistant(message: Message) -> bool:
    """An assistant message with no text, reasoning or tool calls."""
    return message.role == "assistant" and not (
        message.content or message.reasoning_content or message.tool_calls
    )
