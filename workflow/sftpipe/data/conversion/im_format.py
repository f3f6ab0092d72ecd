"""Conversation -> intermediate (IM) record, one JSON line per kept sample in `<data_name>.im.jsonl`.

IM keeps what LF rows lose: tool-call ids, error flags, the original message boundaries, the score
and the run metadata. Tool calls are in OpenAI wire form (arguments as a JSON string), as are tools.
A leading system message is always present (empty when the conversation had none).
"""

from __future__ import annotations

import json
from typing import Any

from sftpipe.data.conversion.model import Conversation, Message

IM_VERSION = "2.0.0"


def _message(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {
        "role": msg.role,
        "content": msg.content,
        "reasoning_content": msg.reasoning_content,
    }
    if msg.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)},
            }
            for c in msg.tool_calls
        ]
    if msg.role == "tool":
        out["tool_call_id"] = msg.tool_call_id
        out["is_error"] = msg.is_error
    return out


def im_record(
    conv: Conversation,
    *,
    instance_id: str,
    trial_name: str,
    scaffold: str,
    score: dict[str, Any] | None,
    instance_metadata: dict[str, Any],
) -> dict[str, Any]:
    """One conversation as an IM record (meta_info, tools, messages); a system message is always first."""
    messages = [_message(m) for m in conv.messages]
    if not messages or messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": "", "reasoning_content": ""})
    return {
        "version": IM_VERSION,
        "meta_info": {
            "unique_info": {
                "_instance_id": instance_id,
                "_agent_type": conv.agent_type,
                "_score": score,
                "_instance_metadata": instance_metadata,
                "_gen_params": conv.gen_params,
                "_usage": conv.usage,
                **({"_context_from_trial": conv.context_from} if conv.context_from else {}),
            },
            "trial_name": trial_name,
            "scaffold": scaffold,
            "source": conv.source,
            "chain_index": conv.chain_index,
        },
        "tools": conv.tools,
        "messages": messages,
    }
