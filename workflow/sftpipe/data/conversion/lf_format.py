"""Conversation -> LLaMA-Factory sharegpt row, and the validator every row must pass before writing.

Row shape: ``{"conversations": [{"from": "human"|"gpt"|"function_call"|"observation", "value": str}],
"system": str, "tools": "<JSON string of the OpenAI-form tool list>" | ""}``.

Policies (documented defaults):
* System: leading system messages form the ``system`` column (joined by a blank line). A system
  message later in the conversation (Claude Code sends reminders that way) is user-side text and is
  merged into the surrounding human/observation turn.
* Consecutive assistant messages (no tool result between them) merge into one turn; consecutive
  user-side messages merge into one turn: tool results in call order, joined by
  ``"\\n</tool_response>\\n<tool_response>\\n"`` (LF wraps the whole turn in one tool_response), with
  any user text of the same turn appended after a blank line. Results whose call is not in the
  preceding assistant turn follow the matched ones in their original order.
* Assistant text + tool call(s): ONE ``function_call`` turn. Without text and reasoning its value is
  the bare call JSON (one object, or a list for parallel calls). Otherwise it is
  ``[<think>\\n{reasoning}\\n</think>\\n\\n]{text}\\n<tool_call>\\n{json}\\n</tool_call>`` — exactly one
  block (a JSON list inside for parallel calls), which LF renders as Qwen's native form. Every value
  is parsed back with LF's own rules (see `lf_function_calls`); ``<`` inside the JSON is escaped as
  ``\\u003c`` when it would otherwise collide with LF's tag regexes.
* ``reasoning: keep`` puts the reasoning in front as ``"<think>\\n" + text + "\\n</think>\\n\\n"``
  (train with template ``qwen3``); ``drop`` removes it.
* ``tool_error_policy: keep`` (default) keeps failed calls and their error results: recovering from
  an error is behaviour worth learning. ``drop`` removes an assistant turn whose calls got an error
  result together with all results of that turn (the original converter's behaviour); user text
  of the removed turn is kept by merging it into the previous user-side turn.
* The row must end on the assistant side: trailing user-side turns (tool results, reminders) are
  trimmed and counted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from sftpipe.data.conversion.model import Conversation, Message, ToolCall
from sftpipe.data.conversion.tool_errors import is_error_result

Reasoning = Literal["keep", "drop"]
ToolErrorPolicy = Literal["keep", "drop"]

OBSERVATION_SEP = "\n</tool_response>\n<tool_response>\n"
THINK_OPEN, THINK_CLOSE = "<think>\n", "\n</think>\n\n"
# The regexes LF 0.9.5's FunctionFormatter applies to a function_call value (qwen tool format).
_LF_TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_LF_THOUGHT_RE = re.compile(re.escape(THINK_OPEN) + r"(.*?)" + re.escape(THINK_CLOSE), re.DOTALL)
_TAGS = ("<tool_call>", "</tool_call>", "<think>", "</think>")

EVEN_TAGS = ("human", "observation")
ODD_TAGS = ("gpt", "function_call")


@dataclass
class LfConversion:
    """One conversation's LF row (or why there is none) and what was changed on the way."""

    row: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)
    trimmed_trailing_turns: int = 0
    dropped_error_turns: int = 0


@dataclass
class _Assistant:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)


@dataclass
class _UserSide:
    texts: list[str] = field(default_factory=list)
    results: list[Message] = field(default_factory=list)


def lf_function_calls(value: str) -> list[dict[str, Any]]:
    """Parse a function_call value the way LF does; raises ValueError where LF would crash."""
    match = _LF_TOOL_CALL_RE.search(value)
    if match is None:
        thought = _LF_THOUGHT_RE.search(value)
        json_part = value.replace(thought.group(0), "") if thought else value
    else:
        json_part = match.group(1)
    try:
        data = json.loads(json_part)
    except json.JSONDecodeError as exc:
        raise ValueError(f"function_call JSON does not parse: {exc}") from None
    calls = data if isinstance(data, list) else [data]
    if not calls:
        raise ValueError("function_call holds an empty list")
    for call in calls:
        if not isinstance(call, dict) or "name" not in call or "arguments" not in call:
            raise ValueError("function_call entry lacks name/arguments")
        if not isinstance(call["name"], str) or not call["name"]:
            raise ValueError("function_call name is not a non-empty string")
        if not isinstance(call["arguments"], dict):
            raise ValueError("function_call arguments are not an object")  # noqa: TRY004 - one error type for callers
    return calls


def _calls_json(calls: list[ToolCall]) -> str:
    objs = [{"name": c.name, "arguments": c.arguments} for c in calls]
    text = json.dumps(objs[0] if len(objs) == 1 else objs, ensure_ascii=False)
    if any(tag in text for tag in _TAGS):
        text = text.replace("<", "\\u003c")  # '<' only occurs inside JSON strings: still the same value
    return text


def _function_call_value(text: str, reasoning: str, calls: list[ToolCall]) -> tuple[str, str]:
    """(value, "") or ("", problem) — the value is checked against LF's parser before use."""
    payload = _calls_json(calls)
    prefix = (THINK_OPEN + reasoning + THINK_CLOSE if reasoning else "") + (text + "\n" if text else "")
    value = payload if not prefix else f"{prefix}<tool_call>\n{payload}\n</tool_call>"
    try:
        parsed = lf_function_calls(value)
    except ValueError as exc:
        return "", f"function_call_unparseable: {exc}"
    expected = [{"name": c.name, "arguments": c.arguments} for c in calls]
    if parsed != expected:
        return "", "function_call_unparseable: LF would read different calls (tag text in the message)"
    return value, ""


def _group(messages: list[Message]) -> tuple[list[str], list[_UserSide | _Assistant], list[str]]:
    """Split into leading system texts and alternating user-side / assistant groups."""
    problems: list[str] = []
    i = 0
    system: list[str] = []
    while i < len(messages) and messages[i].role == "system":
        if messages[i].content.strip():
            system.append(messages[i].content)
        i += 1
    groups: list[_UserSide | _Assistant] = []
    for msg in messages[i:]:
        if msg.role == "assistant":
            if not groups or not isinstance(groups[-1], _Assistant):
                groups.append(_Assistant())
            cur = groups[-1]
            assert isinstance(cur, _Assistant)
            if msg.content:
                cur.content.append(msg.content)
            if msg.reasoning_content:
                cur.reasoning.append(msg.reasoning_content)
            cur.calls.extend(msg.tool_calls)
        elif msg.role in ("user", "system", "tool"):
            if not groups or not isinstance(groups[-1], _UserSide):
                groups.append(_UserSide())
            side = groups[-1]
            assert isinstance(side, _UserSide)
            if msg.role == "tool":
                side.results.append(msg)
            else:
                side.texts.append(msg.content)
        else:
            problems.append(f"unknown_role: {msg.role!r}")
    return system, groups, problems


def _drop_error_turns(groups: list[_UserSide | _Assistant]) -> tuple[list[_UserSide | _Assistant], int]:
    out: list[_UserSide | _Assistant] = []
    dropped = 0
    i = 0
    while i < len(groups):
        g = groups[i]
        nxt = groups[i + 1] if i + 1 < len(groups) else None
        if isinstance(g, _Assistant) and g.calls and isinstance(nxt, _UserSide):
            ids = {c.id for c in g.calls}
            own = [r for r in nxt.results if r.tool_call_id in ids]
            if any(is_error_result(r) for r in own):
                dropped += 1
                rest = _UserSide(
                    texts=nxt.texts, results=[r for r in nxt.results if r.tool_call_id not in ids]
                )
                if out and isinstance(out[-1], _UserSide):
                    out[-1].texts.extend(rest.texts)
                    out[-1].results.extend(rest.results)
                elif rest.texts or rest.results:
                    out.append(rest)
                i += 2
                continue
        out.append(g)
        i += 1
    return out, dropped


def _user_side_turn(side: _UserSide, prev: _Assistant | None) -> dict[str, str]:
    text = "\n\n".join(t for t in side.texts if t)
    if not side.results:
        return {"from": "human", "value": text}
    order = {c.id: n for n, c in enumerate(prev.calls)} if prev else {}
    ranked = sorted(
        enumerate(side.results),
        key=lambda p: (0, order[p[1].tool_call_id], p[0]) if p[1].tool_call_id in order else (1, 0, p[0]),
    )
    value = OBSERVATION_SEP.join(r.content for _, r in ranked)
    if text:
        value = f"{value}\n\n{text}"
    return {"from": "observation", "value": value}


def conversation_to_lf_row(
    conv: Conversation, reasoning: Reasoning = "keep", tool_error_policy: ToolErrorPolicy = "keep"
) -> LfConversion:
    """One conversation as a LLaMA-Factory sharegpt row; trailing user turns are trimmed, and
    `row` is None with `problems` set when no valid row remains."""
    system_parts, groups, problems = _group(conv.messages)
    result = LfConversion(row=None, problems=problems)
    if tool_error_policy == "drop":
        groups, result.dropped_error_turns = _drop_error_turns(groups)
    while groups and isinstance(groups[-1], _UserSide):
        groups.pop()
        result.trimmed_trailing_turns += 1
    if groups and isinstance(groups[0], _Assistant):
        result.problems.append("starts_with_assistant: no user turn before the first assistant turn")
    if not groups:
        result.problems.append("no_assistant_turn: nothing left after trimming")
    if result.problems:
        return result

    turns: list[dict[str, str]] = []
    prev: _Assistant | None = None
    for g in groups:
        if isinstance(g, _UserSide):
            turns.append(_user_side_turn(g, prev))
            continue
        text = "\n\n".join(g.content)
        thought = "\n\n".join(g.reasoning) if reasoning == "keep" else ""
        if g.calls:
            value, problem = _function_call_value(text, thought, g.calls)
            if problem:
                result.problems.append(problem)
                return result
            turns.append({"from": "function_call", "value": value})
        else:
            turns.append(
                {"from": "gpt", "value": (THINK_OPEN + thought + THINK_CLOSE if thought else "") + text}
            )
        prev = g

    tools = json.dumps(conv.tools, ensure_ascii=False) if conv.tools else ""
    result.row = {"conversations": turns, "system": "\n\n".join(system_parts), "tools": tools}
    return result


def validate_lf_row(row: Any) -> list[str]:
    """Every rule LF 0.9.5 needs for a sharegpt row with tools; [] when the row is safe to write."""
    if not isinstance(row, dict):
        return [f"row is {type(row).__name__}, not an object"]
    errors: list[str] = []
    extra = set(row) - {"conversations", "system", "tools"}
    if extra:
        errors.append(f"unexpected keys {sorted(extra)}")
    system, tools, turns = row.get("system"), row.get("tools"), row.get("conversations")
    if not isinstance(system, str):
        errors.append(f"system is {type(system).__name__}, not a string")
    if not isinstance(tools, str):
        errors.append(f"tools is {type(tools).__name__}, not a JSON string")
    elif tools != "":
        try:
            parsed = json.loads(tools)
        except json.JSONDecodeError as exc:
            errors.append(f"tools is not valid JSON: {exc}")
        else:
            if not isinstance(parsed, list):
                errors.append("tools JSON is not a list")
            elif not parsed:
                errors.append('tools is "[]" (renders an empty system turn); use "" for none')
            else:
                for n, tool in enumerate(parsed):
                    fn = tool.get("function", tool) if isinstance(tool, dict) else None
                    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                        errors.append(f"tools[{n}] is not a function schema with a name")
                if isinstance(system, str) and not system.strip():
                    errors.append("tools present but system is empty")
    if not isinstance(turns, list):
        return errors + [f"conversations is {type(turns).__name__}, not a list"]
    if not turns:
        errors.append("conversations is empty")
    if len(turns) % 2:
        errors.append(f"odd number of turns ({len(turns)}): must end on the assistant side")
    for n, turn in enumerate(turns):
        if not isinstance(turn, dict) or set(turn) != {"from", "value"}:
            errors.append(f"turn {n} is not exactly {{from, value}}")
            continue
        tag, value = turn["from"], turn["value"]
        allowed = EVEN_TAGS if n % 2 == 0 else ODD_TAGS
        if tag not in allowed:
            errors.append(f"turn {n}: from={tag!r}, expected one of {allowed}")
        if not isinstance(value, str):
            errors.append(f"turn {n}: value is {type(value).__name__}, not a string")
            continue
        if tag == "function_call":
            try:
                lf_function_calls(value)
            except ValueError as exc:
                errors.append(f"turn {n}: {exc}")
    return errors
