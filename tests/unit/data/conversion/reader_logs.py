"""Builders for small hand-written proxy logs and trial dirs used by the reader tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "reference"

EDIT_TOOLS = [
    {
        "type": "function",
        "function": {"name": "bash", "description": "run", "parameters": {"type": "object"}},
    },
    {
        "type": "function",
        "function": {"name": "edit", "description": "edit", "parameters": {"type": "object"}},
    },
]
READ_ONLY_TOOLS = [
    {
        "type": "function",
        "function": {"name": "Read", "description": "read", "parameters": {"type": "object"}},
    },
    {
        "type": "function",
        "function": {"name": "Grep", "description": "grep", "parameters": {"type": "object"}},
    },
]


def openai_response(
    content: str | None = None, tool_calls: list[dict[str, Any]] | None = None, reasoning: str | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def record(
    messages: list[dict[str, Any]],
    response: dict[str, Any] | None = None,
    *,
    t: float | None = None,
    tools: list[dict[str, Any]] | None = None,
    success: bool | None = True,
    **request_extra: Any,
) -> dict[str, Any]:
    request: dict[str, Any] = {"messages": messages, "tools": tools or [], "model": "m", **request_extra}
    rec: dict[str, Any] = {"request_body": request, "response_body": response}
    if success is not None:
        rec["success"] = success
    if t is not None:
        rec["request_time"] = t
    if success is False:
        rec["response_body"] = None
        rec["failure"] = {"error": "boom"}
    return rec


def write_log(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for rec in records:
            handle.write(json.dumps(rec) + "\n")
    return path


def trial_with_log(tmp_path: Path, records: list[dict[str, Any]]) -> Path:
    trial = tmp_path / "trial"
    write_log(trial / "agent" / "litellm-trajectory.jsonl", records)
    return trial


def roles(messages: list[Any]) -> list[str]:
    return [m.role for m in messages]
