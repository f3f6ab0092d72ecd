"""History edits: two chains of one trial that open with the same turns are one conversation, edited.

A client that rewrites its history instead of only appending to it (OpenCode pruning old tool outputs
to "[Old tool result content cleared]", clients dropping or rewriting thinking blocks, a corrupted or
inserted message) breaks the prefix link between its requests, so the proxy-log linker sees a new
chain. Both chains then hold the same early assistant turns, and training on both trains those turns
twice. Two chains are the same conversation when they share the system prompt and the first user turn,
and at least one assistant turn of one is identical to an assistant turn of the other (text and tool
calls; reasoning is ignored because clients drop it). Usually that is the leading run of turns; a
corrupted early message can change the first turns and still leave later ones shared, which must not
be trained twice either. A compaction restart opens with a summary as its first user turn, so it
stays a separate conversation.

Resolution (LF sharegpt rows cannot mask single turns): keep the chain with the most assistant turns
(on a tie, the later one: the client's final view) and drop the chains that share a turn with it, each counted as
`history_edit` with both tail lines. See docs/conversion-readers.md for the trade-off.
"""

from __future__ import annotations

import json

from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.model import Conversation, Message


def _turn_key(message: Message) -> str:
    calls = [(c.name, c.arguments) for c in message.tool_calls]
    return json.dumps([message.content, calls], ensure_ascii=False, sort_keys=True, default=str)


def opening_key(conv: Conversation) -> tuple[str, str] | None:
    """(system, first user turn), or None when the conversation has no user turn."""
    system = conv.messages[0].content if conv.messages and conv.messages[0].role == "system" else ""
    user = next((m for m in conv.messages if m.role == "user"), None)
    return None if user is None else (system, user.content)


def _turn_keys(conv: Conversation) -> set[str]:
    return {_turn_key(m) for m in conv.messages if m.role == "assistant"}


def _assistant_turns(conv: Conversation) -> int:
    return sum(m.role == "assistant" for m in conv.messages)


def _shared_assistant_turns(a: Conversation, b: Conversation) -> int:
    """Assistant turns in the identical leading run of two conversations."""
    shared = 0
    for x, y in zip(a.messages, b.messages):
        if x.role != y.role or (x.content, _turn_key(x)) != (y.content, _turn_key(y)):
            break
        shared += x.role == "assistant"
    return shared


def resolve_history_edits(
    conversations: list[Conversation], tail_lines: list[int], issues: IssueLog
) -> list[Conversation]:
    """Drop every chain that repeats the opening of a longer one (counted); order is kept."""
    groups: dict[tuple[str, str], list[int]] = {}
    for index, conv in enumerate(conversations):
        key = opening_key(conv)
        if key is not None:
            groups.setdefault(key, []).append(index)
    dropped: set[int] = set()
    for members in groups.values():
        if len(members) < 2:
            continue
        # Longest first (ties: the later chain, the client's final view); a chain sharing an assistant
        # turn with one already kept is an edited history of it.
        kept: list[tuple[int, set[str]]] = []
        for index in sorted(members, key=lambda i: (_assistant_turns(conversations[i]), i), reverse=True):
            keys = _turn_keys(conversations[index])
            keep = next((k for k, k_keys in kept if keys & k_keys), None)
            if keep is None:
                kept.append((index, keys))
                continue
            dropped.add(index)
            shared = _shared_assistant_turns(conversations[index], conversations[keep])
            issues.add(
                "history_edit",
                f"chain ending at line {tail_lines[index]} ({_assistant_turns(conversations[index])} "
                f"assistant turns) is an edited history of the chain ending at line {tail_lines[keep]} "
                f"({_assistant_turns(conversations[keep])} turns, {shared} leading turns identical): "
                "kept the longer one",
            )
    if not dropped:
        return conversations
    remaining = [c for i, c in enumerate(conversations) if i not in dropped]
    for index, conv in enumerate(remaining):
        conv.chain_index = index
    return remaining
