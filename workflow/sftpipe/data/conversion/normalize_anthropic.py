"""Anthropic-shaped messages (claude-code; opencode with an Anthropic provider) -> canonical Messages.

Decisions (documented because they change what the model is trained on):
* System: the top-level `system` (string or text blocks) and any leading `{"role": "system"}` message
  become one system turn. Claude Code's first block, `x-anthropic-billing-header: cc_version=…; cch=…;`,
  is request metadata that changes on every call; it is dropped (its `cc_is_subagent=true` flag is
  reported through `AnthropicInfo.subagent`).
* Assistant blocks: `text` -> content (joined by blank lines), `thinking` -> reasoning_content,
  `redacted_thinking` -> dropped (no readable text; counted), `tool_use` -> tool call.
* User blocks: `text` -> the user turn verbatim, `<system-reminder>` blocks included (the model saw
  them). `tool_result` -> a tool turn; results are matched to the preceding assistant's calls by
  `tool_use_id` and reordered into call order. Text blocks sent in the same user message as tool
  results are appended to the last tool result (in call order), which is where the chat template
  puts them: inside the same user turn, after the results.
* Unknown block types are counted (`unknown_block_type`) and skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sftpipe.data.conversion.model import Message, ToolCall
from sftpipe.data.conversion.normalize_common import (
    NormContext,
    build_tool_call,
    looks_like_error,
    order_results,
    text_of_parts,
)

BILLING_PREFIX = "x-anthropic-billing-header:"
_SUBAGENT_FLAG = re.compile(r"\bcc_is_subagent=true\b")


@dataclass
class AnthropicInfo:
    """What the Anthropic request said about itself beyond its messages."""

    subagent: bool = False  # Claude Code flagged the request as a sub-agent's


def system_text(system: Any, ctx: NormContext, info: AnthropicInfo) -> str:
    """The text of an Anthropic `system` (string or blocks); the billing line is dropped, after
    setting `info.subagent` from it."""
    if isinstance(system, str):
        blocks: list[Any] = [{"type": "text", "text": system}]
    elif isinstance(system, list):
        blocks = system
    elif system is None:
        return ""
    else:
        ctx.issues.add("bad_content_type", f"system is {type(system).__name__}")
        return ""
    texts: list[str] = []
    for block in blocks:
        text = block if isinstance(block, str) else block.get("text") if isinstance(block, dict) else None
        if not isinstance(text, str):
            ctx.issues.add("unknown_block_type", f"system block {block!r:.80}")
            continue
        if text.startswith(BILLING_PREFIX):
            if _SUBAGENT_FLAG.search(text):
                info.subagent = True
            continue
        texts.append(text)
    return "\n\n".join(t for t in texts if t)


def assistant_blocks(content: Any, index: int, ctx: NormContext) -> Message:
    """One Anthropic assistant content (string or blocks) as a Message; a nameless tool_use cuts the
    history at `index`."""
    if isinstance(content, str) or content is None:
        return Message(role="assistant", content=content or "")
    if not isinstance(content, list):
        ctx.issues.add("bad_content_type", f"assistant content is {type(content).__name__}")
        return Message(role="assistant", content=str(content))
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if block.get("text"):
                texts.append(str(block["text"]))
        elif kind == "thinking":
            if block.get("thinking"):
                thoughts.append(str(block["thinking"]))
        elif kind == "redacted_thinking":
            ctx.issues.add("redacted_thinking", "redacted_thinking block dropped")
        elif kind in ("tool_use", "server_tool_use"):
            name = block.get("name")
            if not isinstance(name, str) or not name:
                ctx.issues.add("bad_tool_calls", "tool_use without name")
                ctx.cut(index)
                continue
            calls.append(
                build_tool_call(
                    name, block.get("input"), block.get("id"), f"toolu_{index}_{len(calls)}", ctx, index
                )
            )
        else:
            ctx.issues.add("unknown_block_type", f"assistant block {kind!r}")
    return Message(
        role="assistant",
        content="\n\n".join(texts),
        reasoning_content="\n\n".join(thoughts),
        tool_calls=calls,
    )


def _tool_result(block: dict[str, Any], ctx: NormContext) -> Message:
    text = text_of_parts(block.get("content"), ctx, "tool_result content")
    call_id = block.get("tool_use_id")
    return Message(
        role="tool",
        content=text,
        tool_call_id=call_id if isinstance(call_id, str) else None,
        is_error=block.get("is_error") is True or looks_like_error(text),
    )


def normalize_anthropic_messages(
    system: Any, messages: list[dict[str, Any]], ctx: NormContext
) -> tuple[list[Message], AnthropicInfo]:
    """An Anthropic system + messages as canonical messages (tool_result blocks become tool
    messages after their call), and what the request said about itself."""
    info = AnthropicInfo()
    out: list[Message] = []
    top_system = system_text(system, ctx, info)
    if top_system:
        out.append(Message(role="system", content=top_system))
    last_assistant: Message | None = None
    for raw in messages:
        role = raw.get("role")
        content = raw.get("content")
        if role == "assistant":
            last_assistant = assistant_blocks(content, len(out), ctx)
            out.append(last_assistant)
            continue
        if role == "system":
            text = system_text(content, ctx, info)
            if text:
                out.append(Message(role="system", content=text))
            continue
        if role != "user":
            ctx.issues.add("unknown_role", repr(role))
            continue
        results: list[Message] = []
        texts: list[str] = []
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    results.append(_tool_result(block, ctx))
                else:
                    text = text_of_parts([block], ctx, "user content")
                    if text:
                        texts.append(text)
        else:
            texts.append(text_of_parts(content, ctx, "user content"))
        answered = last_assistant
        last_assistant = None
        if answered is not None and (results or answered.tool_calls):
            results = order_results(answered, results, ctx)
        elif results:
            ctx.issues.add("orphan_tool_result", f"{len(results)} tool results without a preceding call")
            results = []
        out.extend(results)
        text = "\n".join(texts)
        if results and text:
            results[-1].content = f"{results[-1].content}\n{text}" if results[-1].content else text
        elif text or not results:
            out.append(Message(role="user", content=text))
    return out, info
