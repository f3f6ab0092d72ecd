"""Builds synthetic Harbor job dirs with Claude-Code-shaped proxy logs (real file formats, test data only).

Each model call is one `litellm-trajectory.jsonl` line carrying the whole Anthropic-shaped history
(system blocks with cache_control, thinking + text + tool_use assistant blocks, tool_result user
blocks) and an OpenAI chat.completion response, as the proxy logger writes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _tool(name: str, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} tool.",
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": props,
                "additionalProperties": False,
            },
        },
    }


CC_TOOLS = [
    _tool("Bash", {"command": {"type": "string"}, "description": {"type": "string"}}),
    _tool("Read", {"file_path": {"type": "string"}}),
    _tool(
        "Edit",
        {"file_path": {"type": "string"}, "old_string": {"type": "string"}, "new_string": {"type": "string"}},
    ),
    _tool("Write", {"file_path": {"type": "string"}, "content": {"type": "string"}}),
]


def _action(i: int, payload: str) -> tuple[str, dict[str, Any], str]:
    """(tool name, input, result text) for turn i; cycles through read / edit / test."""
    if i % 3 == 0:
        return "Read", {"file_path": f"/repo/src/mod_{i % 7}.py"}, f"     1\tdef f_{i}():\n{payload}"
    if i % 3 == 1:
        return (
            "Edit",
            {
                "file_path": f"/repo/src/mod_{i % 7}.py",
                "old_string": f"x = {i}",
                "new_string": f"x = {i + 1}",
            },
            "The file has been updated.",
        )
    return "Bash", {"command": "python -m pytest tests/ -q"}, f"{payload}\n5 passed in 0.12s"


def cc_proxy_lines(
    n_turns: int,
    payload_chars: int = 200,
    final_text: str = "The fix is complete.",
    start_ms: int = 1_700_000_000_000,
) -> list[str]:
    """The log of one main-agent chain: n_turns tool turns, then a final text answer."""
    payload = ("lorem ipsum dolor sit amet " * (payload_chars // 27 + 1))[:payload_chars]
    system = [
        {
            "type": "text",
            "text": "x-anthropic-billing-header: cc_version=2.1.98; cc_entrypoint=sdk-cli; cch=ab12;",
        },
        {
            "type": "text",
            "text": "You are Claude Code, an interactive CLI tool.",
            "cache_control": {"type": "ephemeral"},
        },
        {
            "type": "text",
            "text": "Use the tools to complete software engineering tasks.",
            "cache_control": {"type": "ephemeral"},
        },
    ]
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>Be concise.</system-reminder>"},
                {"type": "text", "text": "Fix the failing test in the repository."},
            ],
        }
    ]
    lines = []
    for i in range(n_turns + 1):
        request = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 32000,
            "temperature": 1,
            "system": system,
            "messages": json.loads(json.dumps(messages)),
            "tools": CC_TOOLS,
            "thinking": {"type": "enabled", "budget_tokens": 8000},
            "stream": True,
        }
        request["messages"].insert(0, {"role": "system", "content": system})
        del request["system"]
        if i < n_turns:
            name, args, result = _action(i, payload)
            call_id = f"toolu_{i:05d}"
            reply = {
                "role": "assistant",
                "content": f"Step {i}: running {name}.",
                "reasoning_content": f"I should use {name} now ({i}).",
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)},
                    }
                ],
            }
            finish = "tool_calls"
        else:
            reply = {"role": "assistant", "content": final_text, "reasoning_content": "All tests pass."}
            finish = "stop"
        lines.append(
            json.dumps(
                {
                    "session_id": "sess-1",
                    "success": True,
                    "request_time": start_ms + i * 1000,
                    "timestamp": "2026-04-29T10:00:00Z",
                    "duration_ms": 800,
                    "request_body": request,
                    "response_body": {
                        "id": f"chatcmpl-{i}",
                        "object": "chat.completion",
                        "created": 1,
                        "model": "claude-sonnet-4-5",
                        "choices": [{"index": 0, "finish_reason": finish, "message": reply}],
                        "usage": {
                            "prompt_tokens": 1000 + i,
                            "completion_tokens": 50,
                            "total_tokens": 1050 + i,
                        },
                    },
                    "usage": {"prompt_tokens": 1000 + i, "completion_tokens": 50, "total_tokens": 1050 + i},
                }
            )
        )
        if i < n_turns:
            messages.append(
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "thinking",
                            "thinking": f"I should use {name} now ({i}).",
                            "signature": "sig" * 10,
                        },
                        {"type": "text", "text": f"Step {i}: running {name}."},
                        {"type": "tool_use", "id": call_id, "name": name, "input": args},
                    ],
                }
            )
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": call_id, "content": result, "is_error": False}
                    ],
                }
            )
    return lines


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def make_trial(
    job_dir: Path,
    trial_name: str,
    instance_id: str,
    reward: float | None = 1.0,
    *,
    agent: str = "claude-code",
    n_turns: int = 3,
    with_result: bool = True,
    exception: str | None = None,
    log_lines: list[str] | None = None,
    payload_chars: int = 200,
) -> Path:
    trial = job_dir / trial_name
    write_json(
        trial / "config.json",
        {
            "task": {"path": f"/data/tasks/{instance_id}", "source": "swe"},
            "trial_name": trial_name,
            "agent": {"name": agent, "model_name": "anthropic/claude-sonnet-4-5"},
        },
    )
    lines = log_lines if log_lines is not None else cc_proxy_lines(n_turns, payload_chars)
    (trial / "agent").mkdir(parents=True, exist_ok=True)
    (trial / "agent" / "litellm-trajectory.jsonl").write_text(
        "".join(l + "\n" for l in lines), encoding="utf-8"
    )
    if with_result:
        write_json(
            trial / "result.json",
            {
                "task_name": instance_id,
                "trial_name": trial_name,
                "source": "swe",
                "agent_info": {
                    "name": agent,
                    "version": "2.1.98",
                    "model_info": {"name": "claude-sonnet-4-5"},
                },
                "agent_result": {"n_input_tokens": 100, "n_output_tokens": 10, "cost_usd": 0.1},
                "verifier_result": None if reward is None else {"rewards": {"reward": reward}},
                "exception_info": None
                if exception is None
                else {"exception_type": exception, "exception_message": "timed out"},
            },
        )
    return trial


def write_job_result(job_dir: Path, rewards: dict[str, float], finished: bool = True) -> None:
    by_value: dict[str, list[str]] = {}
    for name, value in rewards.items():
        by_value.setdefault(str(float(value)), []).append(name)
    write_json(
        job_dir / "result.json",
        {
            "id": "job",
            "started_at": "2026-04-29T10:00:00Z",
            "finished_at": "2026-04-29T11:00:00Z" if finished else None,
            "stats": {
                "evals": {
                    "claude-code__m__swe": {"reward_stats": {"reward": by_value}, "exception_stats": {}}
                }
            },
        },
    )
