"""Reconstruct conversations from the successful calls of one proxy log, in time linear in its size.

Every request carries the whole history so far, so a chain of calls is reduced to its LAST call (the
tail) plus that call's response. A call is superseded when its normalised history is a prefix of a
later call's (or equal to it: a retry). Normalised for this comparison means: `cache_control`,
`signature`, thinking blocks, `reasoning_content`/`thinking_blocks` removed (clients drop or keep
them when they resend history), a lone text part compared as a plain string, and Claude Code's
billing line reduced to its `cc_is_subagent` flag (its `cch=` value, and in 2.1.x a suffix of
`cc_version=`, change between requests of one chain).

Linear time: each distinct normalised message gets an integer id and each history is a path of ids
in a prefix trie (history_keys.py), so a call's history is one trie node and its prefixes are that
node's ancestors. `node of a call's full history -> call` lives in a dict that each later call
probes with its ancestors: O(total messages), never a pairwise comparison of requests. Linking
needs only request-less summaries (`CallSummary`); the request of a chain's tail is loaded when its
conversation is built (`proxy_scan` re-reads it from the log, so a whole trial is never held).

Reasoning the client did not resend (OpenHands SDK drops `reasoning_content` from its history) is put
back from the earlier calls' own responses.

Chains that are not continuations of each other (sub-agents with their own system prompt and tools,
the restart after context compaction, side calls) become separate conversations. Side calls
(title/topic generation, probes: a tail with at most 2 non-system input messages and no tools, in a
file where a tool-using chain exists, or whose system prompt says it is a title generator) and
tool-less extensions of a tool-using chain (e.g. a summary request appended to the history) are
dropped, counted. agent_type is "subagent" when Claude Code flags the request (`cc_is_subagent=true`),
when the tool set has neither an edit nor a write tool, or when the chain's first user turn carries the
`prompt` of a sub-agent tool call (Claude Code `Agent`/`Task`, OpenCode `task`) made in another chain.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sftpipe.data.conversion.history_edits import resolve_history_edits
from sftpipe.data.conversion.history_keys import ROOT, MessageIds, PrefixTrie, request_history
from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.model import Conversation, Message
from sftpipe.data.conversion.normalize_call import normalize_call, response_message
from sftpipe.data.conversion.normalize_common import NormContext
from sftpipe.data.conversion.proxy_log import ProxyCall

_TITLE_RE = re.compile(
    r"title generator|generate a (?:short |concise )?title|conversation title", re.IGNORECASE
)
# Tool names that change files; a chain without any of them is a read-only (sub-)agent.
_EDIT_TOOL_RE = re.compile(r"edit|write|patch|str_replace|create_file", re.IGNORECASE)
_NOT_EDIT_RE = re.compile(r"todo|task", re.IGNORECASE)
GEN_PARAM_KEYS = (
    "model",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "reasoning_effort",
    "thinking",
    "tool_choice",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "n",
)
_SUBAGENT_TOOLS = {"agent", "task"}


@dataclass
class ChainStats:
    """Operation counts of one build, so tests can check linear behaviour without timing."""

    messages_hashed: int = 0  # messages keyed into the trie (every message of every request, once)
    lookups: int = 0  # supersession probes (one per history prefix)
    messages_parsed: int = 0  # messages a streaming scan had to parse (not byte-equal to a seen one)
    messages_normalised: int = 0  # messages normalised + serialised + digested


@dataclass
class CallSummary:
    """A successful call without its request: what linking and a chain's members need."""

    line_no: int
    request_time: float | None
    response: dict[str, Any] | None
    usage: dict[str, Any]
    has_tools: bool
    node: int  # trie node of the call's history (request_history order)
    depth: int  # messages in that history
    offset: int = -1  # where the line lies in the log, to read the request again
    length: int = 0
    crc: int = 0


CallLoader = Callable[[CallSummary], ProxyCall | None]


def link_calls(
    calls: list[CallSummary], parent: list[int], issues: IssueLog, stats: ChainStats | None = None
) -> list[list[int]]:
    """Group calls (already sorted by time) into chains; each chain lists call indices in order.

    A call is superseded by the first later call whose history has the call's history as a prefix
    (an ancestor node, or the same node: a retry, counted as duplicate_request).
    """
    stats = stats if stats is not None else ChainStats()
    full_owner: dict[int, int] = {}
    superseded_by: list[int | None] = [None] * len(calls)
    for k, call in enumerate(calls):
        node = call.node
        stats.messages_hashed += call.depth
        while node != ROOT:
            stats.lookups += 1
            owner = full_owner.get(node)
            if owner is not None and superseded_by[owner] is None:
                superseded_by[owner] = k
                if node == call.node:
                    issues.add(
                        "duplicate_request", f"line {calls[owner].line_no} repeated by line {call.line_no}"
                    )
            node = parent[node]
        if call.node != ROOT:
            full_owner[call.node] = k
    tail_of = list(range(len(calls)))
    for i in range(len(calls) - 1, -1, -1):
        nxt = superseded_by[i]
        if nxt is not None:
            tail_of[i] = tail_of[nxt]
    members: dict[int, list[int]] = {}
    for i, tail in enumerate(tail_of):
        members.setdefault(tail, []).append(i)
    return sorted(members.values(), key=lambda chain: chain[0])


def summarize_calls(
    calls: list[ProxyCall], trie: PrefixTrie, stats: ChainStats | None = None
) -> list[CallSummary]:
    """Summaries of calls held in memory (each message normalised: the reference, unoptimised path)."""
    ids = MessageIds()
    out = []
    for call in calls:
        history = [ids.id_of(m) for m in request_history(call.request)]
        out.append(
            CallSummary(
                line_no=call.line_no,
                request_time=call.request_time,
                response=call.response,
                usage=call.usage,
                has_tools=bool(call.request.get("tools")),
                node=trie.path(history),
                depth=len(history),
            )
        )
    if stats is not None:
        stats.messages_normalised += ids.normalised
    return out


def _non_system_count(history: list[Any]) -> int:
    return sum(1 for m in history if not (isinstance(m, dict) and m.get("role") == "system"))


def _system_blob(history: list[Any]) -> str:
    return json.dumps(
        [m.get("content") for m in history if isinstance(m, dict) and m.get("role") == "system"],
        ensure_ascii=False,
        default=str,
    )


def has_edit_tool(tools: list[dict[str, Any]]) -> bool:
    """Whether any tool can change files; a chain without one is a read-only (sub-)agent."""
    for tool in tools:
        name = tool["function"]["name"]
        if _EDIT_TOOL_RE.search(name) and not _NOT_EDIT_RE.search(name):
            return True
    return False


def _sum_usage(calls: list[CallSummary]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for call in calls:
        for key, value in call.usage.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    return total


def conversations_from_calls(
    calls: list[ProxyCall], issues: IssueLog, stats: ChainStats | None = None
) -> list[Conversation]:
    """Conversations of calls held in memory (sorted by time), e.g. from `read_proxy_log`."""
    trie = PrefixTrie()
    summaries = summarize_calls(calls, trie, stats)
    call_of = {id(summary): call for summary, call in zip(summaries, calls)}
    return build_conversations(summaries, trie.parent, lambda summary: call_of[id(summary)], issues, stats)


def build_conversations(
    calls: list[CallSummary],
    parent: list[int],
    load: CallLoader,
    issues: IssueLog,
    stats: ChainStats | None = None,
) -> list[Conversation]:
    """Link the calls into chains and turn each chain's tail (its request loaded by `load`) into a conversation."""
    chains = link_calls(calls, parent, issues, stats)
    file_has_tools = any(call.has_tools for call in calls)
    conversations: list[Conversation] = []
    tail_lines: list[int] = []
    for chain in chains:
        members = [calls[i] for i in chain]
        # Tool-less requests that extend a tool-using chain (summary/compaction prompt): not agent turns.
        last_with_tools = max((n for n, m in enumerate(members) if m.has_tools), default=-1)
        if 0 <= last_with_tools < len(members) - 1:
            for dropped in members[last_with_tools + 1 :]:
                issues.add("toolless_chain_extension", f"line {dropped.line_no} dropped from its chain")
            members = members[: last_with_tools + 1]
        tail = load(members[-1])
        if tail is None:
            continue  # counted by the loader
        history = request_history(tail.request)
        if (
            not tail.request.get("tools")
            and _non_system_count(history) <= 2
            and (file_has_tools or _TITLE_RE.search(_system_blob(history)))
        ):
            issues.add("side_call", f"line {tail.line_no}")
            continue
        issues.line = tail.line_no  # problems found while normalising are this record's
        try:
            normalized = normalize_call(tail, issues)
        finally:
            issues.line = None
        if not any(m.role == "assistant" for m in normalized.messages):
            issues.add("no_assistant_turn", f"chain ending at line {tail.line_no}")
            continue
        _restore_reasoning(normalized.messages, members[:-1], issues)
        subagent = normalized.subagent_flag or (
            bool(normalized.tools) and not has_edit_tool(normalized.tools)
        )
        conversations.append(
            Conversation(
                messages=normalized.messages,
                tools=normalized.tools,
                agent_type="subagent" if subagent else "main",
                source="proxy_log",
                chain_index=len(conversations),
                n_calls=len(members),
                gen_params={k: tail.request[k] for k in GEN_PARAM_KEYS if k in tail.request},
                usage=_sum_usage(members),
            )
        )
        tail_lines.append(tail.line_no)
    conversations = resolve_history_edits(conversations, tail_lines, issues)
    _mark_spawned_subagents(conversations)
    return conversations


def _restore_reasoning(messages: list[Message], earlier: list[CallSummary], issues: IssueLog) -> None:
    """Put back reasoning that the client did not resend (OpenHands SDK drops reasoning_content).

    Each earlier call's response is an assistant turn of the final history; they are matched in
    order, by tool-call ids or else by text (an index per key keeps this linear), and only fill
    turns whose reasoning is empty.
    """
    assistants = [m for m in messages if m.role == "assistant"]
    positions: dict[tuple[str, ...] | str, list[int]] = {}
    for position, message in enumerate(assistants):
        positions.setdefault(_turn_key(message), []).append(position)
    cursor = 0
    scratch = NormContext(issues=IssueLog())  # problems in these responses are not the sample's
    for call in earlier:
        response = response_message(call.response, 0, scratch)
        if response is None or not response.reasoning_content:
            continue
        candidates = positions.get(_turn_key(response), [])
        index = bisect.bisect_left(candidates, cursor)
        if index == len(candidates):
            continue
        target = assistants[candidates[index]]
        if not target.reasoning_content:
            target.reasoning_content = response.reasoning_content
            issues.add("reasoning_restored", f"line {call.line_no}")
        cursor = candidates[index] + 1


def _turn_key(message: Message) -> tuple[str, ...] | str:
    return tuple(c.id for c in message.tool_calls) if message.tool_calls else message.content


def _mark_spawned_subagents(conversations: list[Conversation]) -> None:
    """Tag chains whose opening user turn is the prompt another chain gave to its sub-agent tool."""
    prompts: list[tuple[int, str]] = []
    for n, conv in enumerate(conversations):
        for message in conv.messages:
            for tool_call in message.tool_calls:
                prompt = tool_call.arguments.get("prompt")
                if tool_call.name.lower() in _SUBAGENT_TOOLS and isinstance(prompt, str) and prompt.strip():
                    prompts.append((n, prompt.strip()))
    if not prompts:
        return
    for n, conv in enumerate(conversations):
        first_user = next((m.content for m in conv.messages if m.role == "user"), "")
        if any(owner != n and prompt in first_user for owner, prompt in prompts):
            conv.agent_type = "subagent"
