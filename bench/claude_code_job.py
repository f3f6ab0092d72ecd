"""Synthetic Harbor job of long Claude Code trials, built from the captured fixture's real shapes.

The templates come from `tests/fixtures/harbor_jobs/claude-code/acme__calc-101__cCr4Xq1` (recorded
with the real client): its system message (billing line + ~28 KB prompt, `cache_control`), its tool
list (~29 KB), its first user message (six `<system-reminder>` blocks), its assistant turns
(thinking with signature + text + tool_use) and tool-result user turns, the sub-agent's system and
tools, the OpenAI-form response envelope and the failed-call record. A trial repeats the main
turns cyclically (fresh tool ids, a varying result payload) for `turns` calls, moves
`cache_control` to the last block of the last message on every request as Claude Code does,
interleaves a sub-agent chain every `subagent_every` turns and a failed call + retry every 50.
`vary_billing` adds a per-request `cch=` value to the billing line (the captured 2.1.329 client
keeps it constant within a chain; older 2.1.x clients change it on every request), so the 28 KB
system message is never byte-equal to the previous request's: the reader's worst realistic case.
Lines are written with `json.dumps` defaults, like the LiteLLM logger.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_TRIAL = ROOT / "tests" / "fixtures" / "harbor_jobs" / "claude-code" / "acme__calc-101__cCr4Xq1"
sys.path.insert(0, str(ROOT / "tests" / "unit" / "conversion"))

from harbor_job_builder import make_trial, write_job_result

_CACHE = {"type": "ephemeral"}


def _is_subagent(rec: dict[str, Any]) -> bool:
    return "cc_is_subagent=true" in json.dumps(rec["request_body"]["messages"][0])


def _without_cache_marks(message: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(message)
    if isinstance(out.get("content"), list):
        for block in out["content"]:
            if isinstance(block, dict):
                block.pop("cache_control", None)
    return out


class _Shapes:
    """The captured records, split into reusable pieces."""

    def __init__(self, trial: Path = FIXTURE_TRIAL) -> None:
        recs = [json.loads(line) for line in (trial / "agent" / "litellm-trajectory.jsonl").open("rb")]
        ok = [r for r in recs if r.get("success") is not False]
        self.failed = next(r for r in recs if r.get("success") is False)
        self.main = [r for r in ok if not _is_subagent(r)][-1]
        self.sub = [r for r in ok if _is_subagent(r)][-1]

    @staticmethod
    def parts(
        rec: dict[str, Any],
    ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]]:
        """(system + first user message, [(assistant, tool-result user) pairs]) of a final request."""
        messages = rec["request_body"]["messages"]
        head = [messages[0], _without_cache_marks(messages[1])]
        body = [_without_cache_marks(m) for m in messages[2:]]
        return head, list(zip(body[0::2], body[1::2]))


def _payload(turn: int, chars: int) -> str:
    line = f"{turn:5d}\tvalue_{turn} = compute(value_{turn - 1}, step={turn})  # result of step {turn}\n"
    return (line * (chars // len(line) + 1))[:chars]


def _turn(
    pair: tuple[dict[str, Any], dict[str, Any]], tag: str, payload: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A copy of a captured (assistant, results) pair with fresh tool ids and a payload in each result."""
    assistant, results = copy.deepcopy(pair)
    ids: dict[str, str] = {}
    for n, block in enumerate(assistant["content"]):
        if block.get("type") == "tool_use":
            ids[block["id"]] = block["id"] = f"toolu_{tag}_{n}"
    for block in results["content"]:
        if block.get("type") == "tool_result":
            block["tool_use_id"] = ids.get(block["tool_use_id"], block["tool_use_id"])
            content = block.get("content")
            if isinstance(content, str):
                block["content"] = f"{content}\n{payload}"
            elif isinstance(content, list) and content and isinstance(content[-1], dict):
                content[-1]["text"] = f"{content[-1].get('text', '')}\n{payload}"
    return assistant, results


def _openai_reply(assistant: dict[str, Any] | None, final_text: str) -> dict[str, Any]:
    if assistant is None:
        return {"role": "assistant", "content": final_text}
    blocks = assistant["content"]
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "\n\n".join(b["text"] for b in blocks if b.get("type") == "text"),
    }
    thinking = [b for b in blocks if b.get("type") == "thinking"]
    if thinking:
        reply["reasoning_content"] = "\n\n".join(b["thinking"] for b in thinking)
        reply["thinking_blocks"] = thinking
    reply["tool_calls"] = [
        {
            "id": b["id"],
            "type": "function",
            "function": {"name": b["name"], "arguments": json.dumps(b["input"])},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    return reply


def _record(
    template: dict[str, Any],
    messages: list[dict[str, Any]],
    reply: dict[str, Any] | None,
    t_ms: int,
    n_prompt: int,
) -> dict[str, Any]:
    rec = {k: v for k, v in template.items() if k not in ("failure",)}
    rec["success"], rec["request_time"] = True, t_ms
    # Only the last message carries cache_control, on its last block (as Claude Code sends it).
    last = copy.deepcopy(messages[-1])
    if isinstance(last.get("content"), list) and last["content"]:
        last["content"][-1]["cache_control"] = _CACHE
    rec["request_body"] = {
        k: (messages[:-1] + [last] if k == "messages" else v) for k, v in template["request_body"].items()
    }
    if reply is None:
        return rec
    usage = {"prompt_tokens": n_prompt, "completion_tokens": 60, "total_tokens": n_prompt + 60}
    body = copy.deepcopy(template["response_body"])
    body["choices"][0]["message"] = reply
    body["choices"][0]["finish_reason"] = "tool_calls" if reply.get("tool_calls") else "stop"
    body["usage"] = rec["usage"] = usage
    rec["response_body"] = body
    return rec


def _with_billing_value(system: dict[str, Any], value: str) -> dict[str, Any]:
    """The system message with a per-request `cch=` in its billing line (as Claude Code 2.1.3 sends)."""
    out = copy.deepcopy(system)
    first = out["content"][0]
    first["text"] = first["text"].rstrip() + f" cch={value};"
    return out


def trial_lines(
    shapes: _Shapes,
    trial_tag: str,
    turns: int,
    payload_chars: int,
    subagent_every: int,
    vary_billing: bool = False,
) -> list[str]:
    head, pairs = shapes.parts(shapes.main)
    sub_head, sub_pairs = shapes.parts(shapes.sub)
    history = list(head)
    lines: list[str] = []
    t_ms = 1_795_000_000_000
    pending_sub: list[dict[str, Any]] = []  # a running sub-agent's records, interleaved with main calls
    for i in range(turns + 1):
        turn = (
            _turn(pairs[i % len(pairs)], f"{trial_tag}_{i:04d}", _payload(i, payload_chars))
            if i < turns
            else None
        )
        if vary_billing:
            history[0] = _with_billing_value(head[0], f"{i:05x}")
        rec = _record(
            shapes.main,
            history,
            _openai_reply(turn[0] if turn else None, "All tests pass now."),
            t_ms,
            15_000 + 300 * i,
        )
        if i and i % 50 == 0:  # an upstream failure, retried with the same input
            failed = dict(
                _record(shapes.main, history, None, t_ms, 0),
                success=False,
                response_body=None,
                usage={},
                failure=shapes.failed["failure"],
            )
            lines.append(json.dumps(failed))
            t_ms += 500
        lines.append(json.dumps(dict(rec, request_time=t_ms)))
        t_ms += 1000
        if pending_sub:
            lines.append(json.dumps(dict(pending_sub.pop(0), request_time=t_ms)))
            t_ms += 300
        if subagent_every and i % subagent_every == subagent_every - 1:
            pending_sub = _subagent_records(
                shapes, sub_head, sub_pairs, f"{trial_tag}_s{i:04d}", payload_chars
            )
        if turn is not None:
            history.extend(turn)
    lines.extend(json.dumps(dict(r, request_time=t_ms + n)) for n, r in enumerate(pending_sub))
    return lines


def _subagent_records(
    shapes: _Shapes,
    head: list[dict[str, Any]],
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
    tag: str,
    payload_chars: int,
) -> list[dict[str, Any]]:
    history, out = list(head), []
    for j in range(len(pairs) + 1):
        turn = _turn(pairs[j], f"{tag}_{j}", _payload(j, payload_chars)) if j < len(pairs) else None
        out.append(
            _record(
                shapes.sub,
                history,
                _openai_reply(turn[0] if turn else None, "mul is correct."),
                0,
                5_000 + 200 * j,
            )
        )
        if turn is not None:
            history.extend(turn)
    return out


def build_job(
    job_dir: Path,
    trials: int,
    turns: int,
    payload_chars: int,
    subagent_every: int,
    vary_billing: bool = False,
) -> list[Path]:
    """Writes the job; returns the trials' proxy log paths."""
    shapes = _Shapes()
    rewards: dict[str, float] = {}
    logs = []
    for n in range(trials):
        name = f"bench__repo-{n}__t{n}"
        lines = trial_lines(shapes, f"t{n}", turns, payload_chars, subagent_every, vary_billing)
        trial = make_trial(job_dir, name, f"bench__repo-{n}", log_lines=lines)
        rewards[name] = 1.0
        logs.append(trial / "agent" / "litellm-trajectory.jsonl")
    write_job_result(job_dir, rewards)
    return logs
