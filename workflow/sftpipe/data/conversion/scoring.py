"""Rule-based quality score in [0, 1] for one main-agent conversation (sub-agents are not scored).

The composite is the weighted mean over the components that have data (a component without data,
e.g. edit concentration when nothing was edited, is left out and the weights renormalise):

* ``submission_completeness`` (0.33): 1.0 when the episode ends in a submission: a final assistant
  turn without tool calls, a finish/submit tool call, or a terminus-style answer with
  ``"task_complete": true``; 0.0 when it ends on a pending tool call or a tool result (cut off).
  Reduced by the share of failed tool results among the last 20% of assistant turns (half
  weight), plus 0.15 when a test command ran in that last 20% (capped at 1.0).
* ``step_efficiency`` (0.27): 1.0 for 5..80 assistant turns; below 5 it ramps up linearly (n/5);
  above 80 it decays linearly to 0.0 at 200 turns.
* ``test_verification`` (0.23): 0.3 if a test or reproduction file was written, 0.3 if a test
  command ran, plus 0.4 x outcome of the last test run (pass 1.0, unknown 0.6, fail 0.3; 0 if none).
* ``edit_concentration`` (0.10): edits per distinct edited file; ``(1 - min(1, (epf - 1) / 20))**5``,
  so one edit per file scores 1.0 and churning on the same files falls off steeply. No data when
  nothing was edited.
* ``undesirable_patterns`` (0.07): ``(1 - flags / 4)**3`` over four flags: no successful write,
  truncated ending, a loop of >= 5 identical consecutive actions, the same error text >= 3 times.

Actions are recognised by tool name and arguments across scaffolds (Claude Code, OpenCode,
OpenHands, terminus-2 JSON answers); unknown tools count as neither edits nor commands.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sftpipe.data.conversion.model import Conversation, Message
from sftpipe.data.conversion.tool_errors import is_error_result

WEIGHTS = {
    "submission_completeness": 0.33,
    "step_efficiency": 0.27,
    "test_verification": 0.23,
    "edit_concentration": 0.10,
    "undesirable_patterns": 0.07,
}

EDIT_TOOLS = {
    "edit",
    "multiedit",
    "write",
    "str_replace_editor",
    "file_editor",
    "apply_patch",
    "notebookedit",
    "create_file",
    "str_replace_based_edit_tool",
    "patch",
}
COMMAND_TOOLS = {"bash", "terminal", "execute_bash", "bash_command", "shell", "run", "execute_command"}
FINISH_TOOLS = {"finish", "submit", "mark_task_complete", "task_complete", "attempt_completion"}
# Editor commands that only read.
_READ_ONLY_EDITOR_COMMANDS = {"view"}
_TEST_CMD_RE = re.compile(
    r"\b(pytest|py\.test|unittest|nosetests|tox|go test|cargo test|npm (run )?test|yarn test|pnpm test|"
    r"jest|mocha|vitest|mvn (-\S+ )*test|gradle(w)? test|\./gradlew test|rspec|phpunit|ctest|make test|"
    r"dotnet test|mix test|python3? \S*(test|repro)\S*\.py)\b"
)
_TEST_FILE_RE = re.compile(r"(^|[/_\-.])(test|tests|spec|repro|reproduce)([/_\-.]|$)", re.IGNORECASE)
_SHELL_WRITE_RE = re.compile(r"(\bsed\s+-i\b|\bcat\s*>|\btee\b|>\s*\S+\.\w+|\bpatch\b|\bgit apply\b)")
_FAIL_RE = re.compile(
    r"(\b\d+ failed\b|\bFAILED\b|\bFAIL\b|Traceback \(most recent call last\)|\bERROR\b|"
    r"exit code [1-9]|Exit code [1-9]|AssertionError)"
)
_PASS_RE = re.compile(
    r"(\b\d+ passed\b|\bOK\b|\bPASS(ED)?\b|\ball tests passed\b|\bok\s+\S+|Tests:\s+\d+ passed)",
    re.IGNORECASE,
)


@dataclass
class QualityScore:
    """A conversation's quality score: the weighted composite in [0, 1] and its components."""

    composite: float
    components: dict[str, float | None]
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"composite_score": round(self.composite, 6)}
        out.update({k: (None if v is None else round(v, 6)) for k, v in self.components.items()})
        out["details"] = self.details
        return out


@dataclass
class _Action:
    kind: str  # edit | command | finish | other
    signature: str  # for loop detection
    path: str = ""
    command: str = ""
    result: Message | None = None


def _arg_str(args: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = args.get(key)
        if isinstance(value, str):
            return value
    return ""


def _classify_call(name: str, args: dict[str, Any]) -> _Action:
    lname = name.lower()
    sig = name + ":" + json.dumps(args, sort_keys=True, ensure_ascii=False, default=str)[:2000]
    path = _arg_str(args, "file_path", "path", "filePath", "filename", "notebook_path")
    if lname in FINISH_TOOLS:
        return _Action("finish", sig)
    if lname in EDIT_TOOLS:
        if _arg_str(args, "command") in _READ_ONLY_EDITOR_COMMANDS:
            return _Action("other", sig, path=path)
        return _Action("edit", sig, path=path or "?")
    if lname in COMMAND_TOOLS:
        cmd = _arg_str(args, "command", "cmd", "keystrokes", "script")
        return _Action("command", sig, command=cmd)
    return _Action("other", sig, path=path)


def _terminus_actions(content: str) -> tuple[list[_Action], bool]:
    """terminus-2 answers are JSON {analysis, plan, commands[{keystrokes}], task_complete?}."""
    text = content.strip()
    if not text.startswith("{"):
        return [], False
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [], False
    if not isinstance(data, dict):
        return [], False
    actions = []
    commands = data.get("commands")
    if isinstance(commands, list):
        for c in commands:
            keys = c.get("keystrokes") if isinstance(c, dict) else None
            if isinstance(keys, str):
                actions.append(_Action("command", "keys:" + keys, command=keys))
    return actions, data.get("task_complete") is True


def _turns(conv: Conversation) -> list[tuple[Message, list[_Action], bool]]:
    """Per assistant turn: the message, its actions (with results attached) and 'submitted'."""
    results = {m.tool_call_id: m for m in conv.messages if m.role == "tool" and m.tool_call_id}
    turns = []
    for msg in conv.messages:
        if msg.role != "assistant":
            continue
        actions: list[_Action] = []
        for call in msg.tool_calls:
            act = _classify_call(call.name, call.arguments if isinstance(call.arguments, dict) else {})
            act.result = results.get(call.id)
            actions.append(act)
        submitted = False
        if not msg.tool_calls:
            term_actions, submitted = _terminus_actions(msg.content)
            actions.extend(term_actions)
        turns.append((msg, actions, submitted))
    return turns


def _is_write(act: _Action) -> bool:
    if act.kind == "edit":
        return True
    return act.kind == "command" and bool(_SHELL_WRITE_RE.search(act.command))


def _ok(act: _Action) -> bool:
    return act.result is None or not is_error_result(act.result)


def score_conversation(conv: Conversation) -> QualityScore:
    """Heuristic quality score from the assistant's actions (submission, efficiency, tests, edits,
    undesirable patterns); components that do not apply are None and leave the composite."""
    turns = _turns(conv)
    n = len(turns)
    comps: dict[str, float | None] = dict.fromkeys(WEIGHTS)
    details: dict[str, Any] = {"assistant_turns": n}
    if n == 0:
        comps["step_efficiency"] = 0.0
        return QualityScore(0.0, comps, details)
    actions = [a for _, acts, _ in turns for a in acts]
    late_start = int(n * 0.8)
    late = turns[late_start:]

    # Submission completeness.
    last_msg, last_acts, last_submitted = turns[-1]
    ends_on_assistant = conv.messages[-1].role == "assistant"
    submitted = (
        last_submitted
        or any(a.kind == "finish" for a in last_acts)
        or (ends_on_assistant and not last_msg.tool_calls and not last_acts)
    )
    late_results = [a.result for _, acts, _ in late for a in acts if a.result is not None]
    late_err = sum(is_error_result(r) for r in late_results) / len(late_results) if late_results else 0.0
    late_test = any(
        a.kind == "command" and _TEST_CMD_RE.search(a.command) for _, acts, _ in late for a in acts
    )
    completeness = (1.0 if submitted else 0.0) * (1.0 - 0.5 * late_err) + (0.15 if late_test else 0.0)
    comps["submission_completeness"] = min(1.0, completeness)
    details.update(submitted=submitted, late_error_rate=round(late_err, 4), late_test_run=late_test)

    # Step efficiency.
    if n < 5:
        comps["step_efficiency"] = n / 5.0
    elif n <= 80:
        comps["step_efficiency"] = 1.0
    else:
        comps["step_efficiency"] = max(0.0, 1.0 - (n - 80) / 120.0)

    # Test verification.
    wrote_test = any(_is_write(a) and _TEST_FILE_RE.search(a.path or a.command) for a in actions)
    test_runs = [a for a in actions if a.kind == "command" and _TEST_CMD_RE.search(a.command)]
    outcome = 0.0
    if test_runs:
        res = test_runs[-1].result
        text = res.content[-4000:] if res is not None else ""
        if res is not None and (is_error_result(res) or _FAIL_RE.search(text)):
            outcome = 0.3
        elif _PASS_RE.search(text):
            outcome = 1.0
        else:
            outcome = 0.6
    comps["test_verification"] = 0.3 * wrote_test + 0.3 * bool(test_runs) + 0.4 * outcome
    details.update(wrote_test_file=wrote_test, test_runs=len(test_runs), last_test_outcome=outcome)

    # Edit concentration.
    edits = [a for a in actions if a.kind == "edit"]
    if edits:
        epf = len(edits) / len({a.path for a in edits})
        comps["edit_concentration"] = (1.0 - min(1.0, (epf - 1.0) / 20.0)) ** 5
        details["edits_per_file"] = round(epf, 3)

    # Undesirable patterns.
    no_write = not any(_is_write(a) and _ok(a) for a in actions)
    truncated = not submitted
    longest, run = 1, 1
    sigs = [a.signature for a in actions]
    for prev, cur in itertools.pairwise(sigs):
        run = run + 1 if cur == prev else 1
        longest = max(longest, run)
    loop = len(sigs) >= 5 and longest >= 5
    error_texts: dict[str, int] = {}
    for a in actions:
        if a.result is not None and is_error_result(a.result):
            key = a.result.content.strip()[:500]
            error_texts[key] = error_texts.get(key, 0) + 1
    repeated_errors = any(c >= 3 for c in error_texts.values())
    flags = sum((no_write, truncated, loop, repeated_errors))
    comps["undesirable_patterns"] = (1.0 - flags / 4.0) ** 3
    details.update(
        no_successful_write=no_write, truncated=truncated, action_loop=loop, repeated_errors=repeated_errors
    )

    present = {k: v for k, v in comps.items() if v is not None}
    total_w = sum(WEIGHTS[k] for k in present)
    composite = sum(WEIGHTS[k] * v for k, v in present.items()) / total_w
    return QualityScore(max(0.0, min(1.0, composite)), comps, details)
