"""Identity of request histories for chain linking: message ids and a prefix trie.

Two messages are the same for linking when their normalised forms serialise identically
(normalised: `cache_control`, `signature`, thinking blocks, `reasoning_content`/`thinking_blocks`
removed, a lone text part as a plain string, Claude Code's billing line reduced to its
`cc_is_subagent` flag). Each distinct normalised message gets a small integer id (interned by a
blake2b digest of its serialisation). A history is a path of ids in a trie: every prefix of every
logged history is one trie node, so "is A's history a prefix of B's" is "is A's node an ancestor of
B's", and equal histories share a node. Building the path costs one dict probe per message.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sftpipe.data.conversion.normalize_anthropic import BILLING_PREFIX

_DROP_KEYS = {
    "cache_control",
    "signature",
    "reasoning_content",
    "thinking_blocks",
    "provider_specific_fields",
}
_DROP_BLOCKS = {"thinking", "redacted_thinking"}
_SUBAGENT_FLAG_RE = re.compile(r"\bcc_is_subagent=true\b")
ROOT = 0  # the trie node of the empty history


def clean_for_linking(value: Any) -> Any:
    """The message without what varies between calls of one chain (cache_control, thinking, signatures;
    the billing line reduced to its subagent flag), a lone text block as plain text."""
    if isinstance(value, dict):
        return {k: clean_for_linking(v) for k, v in value.items() if k not in _DROP_KEYS}
    if isinstance(value, list):
        items = [
            clean_for_linking(v)
            for v in value
            if not (isinstance(v, dict) and str(v.get("type")) in _DROP_BLOCKS)
        ]
        if (
            len(items) == 1
            and isinstance(items[0], dict)
            and set(items[0]) == {"type", "text"}
            and items[0]["type"] == "text"
        ):
            return items[0]["text"]
        return items
    if isinstance(value, str) and value.startswith(BILLING_PREFIX):
        return f"{BILLING_PREFIX} subagent={bool(_SUBAGENT_FLAG_RE.search(value))}"
    return value


def message_digest(message: Any) -> bytes:
    """16-byte hash of the message's linking form (`clean_for_linking`, canonical JSON)."""
    text = json.dumps(
        clean_for_linking(message), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def request_history(request: dict[str, Any]) -> list[Any]:
    """The request's messages, with an Anthropic top-level `system` as a leading system message."""
    messages = list(request.get("messages") or [])
    if request.get("system"):
        messages.insert(0, {"role": "system", "content": request["system"]})
    return messages


class MessageIds:
    """Normalised message -> small int id (equal ids <=> equal normalised serialisations)."""

    def __init__(self) -> None:
        self._by_digest: dict[bytes, int] = {}
        self.normalised = 0  # messages normalised and serialised (the expensive step)

    def id_of(self, message: Any) -> int:
        self.normalised += 1
        return self._by_digest.setdefault(message_digest(message), len(self._by_digest))


class PrefixTrie:
    """Every prefix of every history, as nodes; `parent[node]` walks a history back to ROOT."""

    def __init__(self) -> None:
        self.parent: list[int] = [ROOT]
        self._child: dict[tuple[int, int], int] = {}

    def path(self, ids: list[int]) -> int:
        """The node of the history `ids` (ROOT for an empty one), adding missing nodes."""
        node = ROOT
        child, parent = self._child, self.parent
        for message_id in ids:
            key = (node, message_id)
            nxt = child.get(key)
            if nxt is None:
                nxt = child[key] = len(parent)
                parent.append(node)
            node = nxt
        return node
