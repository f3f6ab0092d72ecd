"""Harbor ATIF `agent/trajectory.json` (+ `.cont-N` continuations) -> canonical conversations.

ATIF is the only source for terminus-2 and the fallback for other scaffolds when no proxy log exists.

terminus-2 (text protocol, no native tools). The training target is the model's raw answer, so each
assistant turn is rebuilt as the answer the model gave:
* a step whose message is not in Harbor's `Analysis: …\\nPlan: …` rendering and has no synthetic calls
  is kept verbatim (newer Harbor stores the raw JSON; an unparseable answer is kept as the model
  wrote it, since the next observation is the parser's complaint about it);
* otherwise the answer is rebuilt as JSON (or XML when `agent.extra.parser == "xml"`) from the
  analysis/plan text, the `bash_command` calls (keystrokes, duration) and `mark_task_complete`
  (task_complete: true), key order analysis, plan, commands, task_complete, indented by 2.
`reasoning_content` is kept. Each step's observation becomes the next user turn; user/assistant turns
strictly alternate (an agent step without an observation before it is skipped, `alternation_break`).
Context summarisation splits the run into separate conversations: in one file at the system step
that references the summarisation trajectories (the new part starts with the original task prompt,
then the handoff user text, which is what the continued agent is given), or at a `.cont-N` file, whose
copied user steps (`is_copied_context`) are the new part's opening context. Copied AGENT steps are
never turned into assistant turns (they were trained in the summarisation trajectories).

Other scaffolds: system steps before the first user/agent step form the system turn; later system
steps are Harbor annotations and dropped (counted). Agent steps -> assistant turns with tool calls;
consecutive agent steps without results in between (claude-code ATIF <= Harbor 0.13.0 writes one step
per content block) are merged; fabricated texts (`Executed <Tool> <id>`, `(tool use)`) are dropped.
Observations with `source_call_id` -> tool turns in call order; for claude-code the faithful text
`extra.tool_result_metadata.raw_tool_result` replaces Harbor's decorated observation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sftpipe.data.conversion.chains import has_edit_tool
from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.model import Conversation, Message, ToolCall
from sftpipe.data.conversion.normalize_call import end_on_assistant, fold_system_messages
from sftpipe.data.conversion.normalize_common import (
    NormContext,
    build_tool_call,
    looks_like_error,
    normalize_tools,
    order_results,
    text_of_parts,
)

MAX_CONTINUATIONS = 100
_FABRICATED_TEXT = re.compile(r"^(Executed \S+ \S+|\(tool use\))$")
_SUMMARY_MARK = re.compile(r"summariz", re.IGNORECASE)


def load_trajectory_files(agent_dir: Path, issues: IssueLog) -> list[dict[str, Any]]:
    """trajectory.json followed by its continuation files, each validated to have a list of steps."""
    documents: list[dict[str, Any]] = []
    name: str | None = "trajectory.json"
    seen: set[str] = set()
    while name and len(documents) <= MAX_CONTINUATIONS:
        if name in seen or "/" in name or name.startswith(".."):
            issues.add("bad_continuation_ref", name)
            break
        seen.add(name)
        path = agent_dir / name
        try:
            document = json.loads(path.read_bytes().decode("utf-8", errors="replace"))
        except FileNotFoundError:
            issues.add("missing_continuation" if documents else "no_atif", str(path))
            break
        except (OSError, ValueError) as exc:
            issues.add("invalid_atif", f"{path.name}: {exc}")
            break
        if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
            issues.add("invalid_atif", f"{path.name}: no steps list")
            break
        documents.append(document)
        ref = document.get("continued_trajectory_ref")
        name = ref if isinstance(ref, str) else None
    return documents


def _steps(document: dict[str, Any], issues: IssueLog) -> list[dict[str, Any]]:
    steps = [s for s in document["steps"] if isinstance(s, dict)]
    if len(steps) < len(document["steps"]):
        issues.add("invalid_atif_step", "step is not an object")
    return steps


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _message_text(step: dict[str, Any], ctx: NormContext) -> str:
    return text_of_parts(step.get("message"), ctx, f"step {step.get('step_id')}")


def _results(step: dict[str, Any]) -> list[dict[str, Any]]:
    observation = step.get("observation")
    results = observation.get("results") if isinstance(observation, dict) else None
    return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []


def _is_summarization_step(step: dict[str, Any]) -> bool:
    if any(r.get("subagent_trajectory_ref") for r in _results(step)):
        return True
    message = step.get("message")
    return isinstance(message, str) and bool(_SUMMARY_MARK.search(message))


# ---------------------------------------------------------------------------------------------- terminus-2


def terminus_answer(step: dict[str, Any], parser: str, ctx: NormContext) -> str:
    """The raw answer of one terminus-2 turn (see module doc)."""
    message = _message_text(step, ctx)
    calls = [c for c in _list(step.get("tool_calls")) if isinstance(c, dict)]
    rendered = message.startswith(("Analysis:", "Plan:"))
    if not calls and not rendered:
        return message
    analysis, plan = "", ""
    if rendered:
        body = message
        if body.startswith("Analysis:"):
            analysis, sep, rest = body[len("Analysis:") :].partition("\nPlan:")
            plan = rest if sep else ""
        else:
            plan = body[len("Plan:") :]
        analysis, plan = analysis.strip(), plan.strip()
    elif message:
        analysis = message
    commands: list[dict[str, Any]] = []
    task_complete = False
    for call in calls:
        name = call.get("function_name")
        arguments = call.get("arguments") if isinstance(call.get("arguments"), dict) else {}
        if name == "bash_command":
            command: dict[str, Any] = {"keystrokes": arguments.get("keystrokes", "")}
            if "duration" in arguments:
                command["duration"] = arguments["duration"]
            commands.append(command)
        elif name == "mark_task_complete":
            task_complete = True
        else:
            ctx.issues.add("unknown_terminus_call", repr(name))
    if parser == "xml":
        return _terminus_xml(analysis, plan, commands, task_complete)
    answer = {"analysis": analysis, "plan": plan, "commands": commands, "task_complete": task_complete}
    return json.dumps(answer, indent=2, ensure_ascii=False)


def _terminus_xml(analysis: str, plan: str, commands: list[dict[str, Any]], task_complete: bool) -> str:
    lines = ["<response>", f"<analysis>{analysis}</analysis>", f"<plan>{plan}</plan>", "<commands>"]
    for command in commands:
        duration = f' duration="{command["duration"]}"' if "duration" in command else ""
        lines.append(f"<keystrokes{duration}>{command['keystrokes']}</keystrokes>")
    lines.append("</commands>")
    if task_complete:
        lines.append("<task_complete>true</task_complete>")
    lines.append("</response>")
    return "\n".join(lines)


def _observation_text(step: dict[str, Any], ctx: NormContext) -> str:
    texts = [text_of_parts(r.get("content"), ctx, "observation") for r in _results(step)]
    return "\n".join(t for t in texts if t)


class _TerminusBuilder:
    def __init__(self, ctx: NormContext) -> None:
        self.ctx = ctx
        self.segments: list[list[Message]] = []
        self.current: list[Message] = []
        self.pending_user: list[str] = []

    def user(self, text: str) -> None:
        if text:
            self.pending_user.append(text)

    def agent(self, answer: str, reasoning: str) -> None:
        if not self.pending_user:
            self.ctx.issues.add("alternation_break", "agent step without a user turn before it")
            return
        self.current.append(Message(role="user", content="\n\n".join(self.pending_user)))
        self.pending_user = []
        self.current.append(Message(role="assistant", content=answer, reasoning_content=reasoning))

    def close(self, seed: str | None = None) -> None:
        if self.current:
            self.segments.append(self.current)
        self.current = []
        self.pending_user = [seed] if seed else []


def terminus_conversations(documents: list[dict[str, Any]], issues: IssueLog) -> list[list[Message]]:
    """terminus-2 documents -> one message list per segment (split at context summarisations)."""
    ctx = NormContext(issues=issues)
    builder = _TerminusBuilder(ctx)
    task_prompt: str | None = None
    for number, document in enumerate(documents):
        agent = document.get("agent") if isinstance(document.get("agent"), dict) else {}
        extra = agent.get("extra") if isinstance(agent.get("extra"), dict) else {}
        parser = str(extra.get("parser", "json"))
        if number > 0:
            builder.close()
        for step in _steps(document, issues):
            source = step.get("source")
            if step.get("is_copied_context"):
                if source == "user":
                    builder.user(_message_text(step, ctx))
                else:
                    issues.add("copied_context_skipped", f"{source} step {step.get('step_id')}")
                continue
            if source == "user":
                text = _message_text(step, ctx)
                if task_prompt is None:
                    task_prompt = text
                builder.user(text)
            elif source == "agent":
                builder.agent(terminus_answer(step, parser, ctx), str(step.get("reasoning_content") or ""))
                builder.user(_observation_text(step, ctx))
            elif source == "system":
                if _is_summarization_step(step):
                    builder.close(seed=task_prompt)
                else:
                    issues.add("atif_system_step_dropped", f"step {step.get('step_id')}")
            else:
                issues.add("invalid_atif_step", f"unknown source {source!r}")
    builder.close()
    return builder.segments


# ------------------------------------------------------------------------------------------ other scaffolds


def _tool_calls(step: dict[str, Any], index: int, ctx: NormContext) -> list[ToolCall]:
    calls: list[ToolCall] = []
    if step.get("tool_calls") is not None and not isinstance(step.get("tool_calls"), list):
        ctx.issues.add("bad_tool_calls", f"step {step.get('step_id')}: tool_calls is not a list")
    for n, raw in enumerate(_list(step.get("tool_calls"))):
        name = raw.get("function_name") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not name:
            ctx.issues.add("bad_tool_calls", f"step {step.get('step_id')}: call without function_name")
            ctx.cut(index)
            continue
        # terminus-2 ATIF calls are synthetic and may lack ids: not an issue there
        calls.append(
            build_tool_call(
                name,
                raw.get("arguments"),
                raw.get("tool_call_id"),
                f"call_{index}_{n}",
                ctx,
                index,
                count_missing_id=False,
            )
        )
    return calls


def _result_message(result: dict[str, Any], scaffold: str, ctx: NormContext) -> Message:
    content: Any = result.get("content")
    flagged = False
    extra = result.get("extra")
    if scaffold == "claude-code" and isinstance(extra, dict):
        meta = extra.get("tool_result_metadata")
        raw = meta.get("raw_tool_result") if isinstance(meta, dict) else None
        if isinstance(raw, dict) and "content" in raw:
            content = raw["content"]
            flagged = raw.get("is_error") is True
    text = text_of_parts(content, ctx, "observation")
    call_id = result.get("source_call_id")
    return Message(
        role="tool",
        content=text,
        tool_call_id=call_id if isinstance(call_id, str) else None,
        is_error=flagged or looks_like_error(text),
    )


def generic_messages(documents: list[dict[str, Any]], scaffold: str, issues: IssueLog) -> list[Message]:
    """A native-tool scaffold's ATIF documents as messages (copied-context and sidechain steps skipped)."""
    ctx = NormContext(issues=issues)
    out: list[Message] = []
    open_assistant: Message | None = None  # last assistant turn whose results have not come yet
    for document in documents:
        for step in _steps(document, issues):
            source = step.get("source")
            extra = step.get("extra") if isinstance(step.get("extra"), dict) else {}
            if step.get("is_copied_context"):
                issues.add("copied_context_skipped", f"{source} step {step.get('step_id')}")
                continue
            if extra.get("is_sidechain"):
                issues.add("sidechain_step_skipped", f"step {step.get('step_id')}")
                continue
            text = _message_text(step, ctx)
            if source == "system":
                if all(m.role == "system" for m in out):
                    out.append(Message(role="system", content=text))
                else:
                    issues.add("atif_system_step_dropped", f"step {step.get('step_id')}")
                continue
            if source == "user":
                out.append(Message(role="user", content=text))
                open_assistant = None
                continue
            if source != "agent":
                issues.add("invalid_atif_step", f"unknown source {source!r}")
                continue
            calls = _tool_calls(step, len(out), ctx)
            if _FABRICATED_TEXT.match(text.strip()):
                text = ""
            reasoning = str(step.get("reasoning_content") or "")
            if open_assistant is not None:
                # One model message split over several steps: merge them back.
                joined = [t for t in (open_assistant.content, text) if t]
                open_assistant.content = "\n\n".join(joined)
                open_assistant.reasoning_content = "\n\n".join(
                    t for t in (open_assistant.reasoning_content, reasoning) if t
                )
                open_assistant.tool_calls.extend(calls)
                assistant = open_assistant
            else:
                assistant = Message(
                    role="assistant", content=text, reasoning_content=reasoning, tool_calls=calls
                )
                out.append(assistant)
            results = [_result_message(r, scaffold, ctx) for r in _results(step)]
            if not results:
                open_assistant = assistant
                continue
            open_assistant = None
            if assistant.tool_calls:
                out.extend(order_results(assistant, results, ctx))
            else:
                out.append(Message(role="user", content="\n".join(r.content for r in results)))
    if ctx.cut_at is not None:
        issues.add("conversation_cut", f"cut before message {ctx.cut_at}")
        out = out[: ctx.cut_at]
    return end_on_assistant(fold_system_messages(out, issues), issues)


def read_atif(agent_dir: Path, scaffold: str, issues: IssueLog) -> list[Conversation]:
    """The ATIF trajectory files as conversations; segments without an agent turn are dropped (logged)."""
    documents = load_trajectory_files(agent_dir, issues)
    if not documents:
        return []
    root_agent = documents[0].get("agent") if isinstance(documents[0].get("agent"), dict) else {}
    n_sub = len(_list(documents[0].get("subagent_trajectories")))
    if n_sub:
        issues.add("atif_subagent_trajectories_skipped", f"{n_sub} embedded sub-agent trajectories")
    gen_params = {"model": root_agent["model_name"]} if root_agent.get("model_name") else {}
    if scaffold == "terminus2":
        segments = terminus_conversations(documents, issues)
        tools: list[dict[str, Any]] = []
    else:
        segments = [generic_messages(documents, scaffold, issues)]
        tools = normalize_tools(root_agent.get("tool_definitions"), issues)
    conversations: list[Conversation] = []
    for messages in segments:
        if not any(m.role == "assistant" for m in messages):
            issues.add("no_assistant_turn", "ATIF segment without an agent turn")
            continue
        conversations.append(
            Conversation(
                messages=messages,
                tools=tools,
                agent_type="subagent" if tools and not has_edit_tool(tools) else "main",
                source="atif",
                chain_index=len(conversations),
                n_calls=sum(1 for m in messages if m.role == "assistant"),
                gen_params=dict(gen_params),
                usage=_final_metrics(documents),
            )
        )
    return conversations


def _final_metrics(documents: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for document in documents:
        metrics = document.get("final_metrics")
        if isinstance(metrics, dict):
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    total[key] = total.get(key, 0) + value
    return total
