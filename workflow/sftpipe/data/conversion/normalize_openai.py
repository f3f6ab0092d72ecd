"""OpenAI chat messages (openhands-sdk, terminus-2, opencode with an OpenAI provider) -> canonical Messages.

Content may be a string, null, or a list of `{"type": "text"}` parts. Assistant turns may carry
`reasoning_content` (or LiteLLM's `thinking_blocks`) and `tool_calls` with JSON-string arguments.
The run of `tool` messages after an assistant turn is matched to its calls by `tool_call_id` and put
in call order (normalize_common.order_results). System messages are passed through here; where a
system message in the middle of the history goes is decided in normalize_call.fold_system_messages.
"""

from __future__ import annotations

from typing import Any

from sftpipe.data.conversion.model import Message, ToolCall
from sftpipe.data.conversion.normalize_common import (
    NormContext,
    build_tool_call,
    looks_like_error,
    order_results,
    text_of_parts,
)


def reasoning_of(message: dict[str, Any], ctx: NormContext) -> str:
    """The message's reasoning_content, else its thinking blocks joined; '' when none."""
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        return reasoning
    blocks = message.get("thinking_blocks")
    if isinstance(blocks, list):
        texts = [b["thinking"] for b in blocks if isinstance(b, dict) and isinstance(b.get("thinking"), str)]
        if len(texts) < len(blocks):
            ctx.issues.add("redacted_thinking", "thinking block without text")
        return "\n\n".join(t for t in texts if t)
    return ""


def assistant_message(message: dict[str, Any], index: int, ctx: NormContext) -> Message:
    """One OpenAI assistant message; `index` is its position in the output (for cutting on bad args)."""
    calls: list[ToolCall] = []
    raw_calls = message.get("tool_calls")
    if raw_calls is not None and not isinstance(raw_calls, list):
        ctx.issues.add("bad_tool_calls", f"tool_calls is {type(raw_calls).__name__}")
        raw_calls = []
    for n, raw in enumerate(raw_calls or []):
        function = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            ctx.issues.add("bad_tool_calls", "tool call without function name")
            ctx.cut(index)
            continue
        name = function["name"]
        calls.append(
            build_tool_call(name, function.get("arguments"), raw.get("id"), f"call_{index}_{n}", ctx, index)
        )
    return Message(
        role="assistant",
        content=text_of_parts(message.get("content"), ctx, "assistant content"),
        reasoning_content=reasoning_of(message, ctx),
        tool_calls=calls,
    )


def normalize_openai_messages(messages: list[dict[str, Any]], ctx: NormContext) -> list[Message]:
    """OpenAI chat messages as canonical messages, each call's tool results ordered after it."""
    out: list[Message] = []
    pending: list[Message] = []  # tool results after the current assistant turn
    last_assistant: Message | None = None

    def flush() -> None:
        if last_assistant is not None and (pending or last_assistant.tool_calls):
            out.extend(order_results(last_assistant, pending, ctx))
        elif pending:
            ctx.issues.add("orphan_tool_result", f"{len(pending)} tool results without a preceding call")
        pending.clear()

    for raw in messages:
        role = raw.get("role")
        if role == "tool":
            text = text_of_parts(raw.get("content"), ctx, "tool content")
            call_id = raw.get("tool_call_id")
            pending.append(
                Message(
                    role="tool",
                    content=text,
                    tool_call_id=call_id if isinstance(call_id, str) else None,
                    is_error=looks_like_error(text),
                )
            )
            continue
        flush()
        last_assistant = None
        if role == "assistant":
            message = assistant_message(raw, len(out), ctx)
            out.append(message)
            last_assistant = message
        elif role in ("system", "developer"):
            out.append(Message(role="system", content=text_of_parts(raw.get("content"), ctx, "system")))
        elif role == "user":
            out.append(Message(role="user", content=text_of_parts(raw.get("content"), ctx, "user content")))
        else:
            ctx.issues.add("unknown_role", repr(role))
    # The history's last assistant turn may have calls whose results come with the next request only.
    if pending:
        flush()
    return out
