"""Canonical conversation model shared by every reader (proxy log, ATIF) and every writer (IM, LF).

Readers normalise scaffold-specific shapes (OpenAI chat, Anthropic blocks, ATIF steps) into these
types; nothing downstream looks at a raw request again. Tool-call arguments are always decoded
objects here (the OpenAI wire form carries them as JSON strings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
AgentType = Literal["main", "subagent"]


@dataclass
class ToolCall:
    """One tool call of an assistant turn; `arguments` already parsed from JSON."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Message:
    """One turn in the canonical (scaffold-independent) form."""

    role: Role
    content: str
    # Assistant only: the model's reasoning (thinking blocks / reasoning_content), "" when none.
    reasoning_content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Tool only: the call this result answers, and whether the tool reported an error.
    tool_call_id: str | None = None
    is_error: bool = False


@dataclass
class Conversation:
    """One training sample candidate: a chain of calls reduced to its final, complete history."""

    messages: list[Message]
    # OpenAI function form: {"type": "function", "function": {"name", "description", "parameters"}}.
    tools: list[dict[str, Any]]
    agent_type: AgentType = "main"
    # Where it came from, for the report and IM metadata.
    source: Literal["proxy_log", "atif"] = "proxy_log"
    chain_index: int = 0
    n_calls: int = 0  # successful model calls folded into this conversation
    gen_params: dict[str, Any] = field(default_factory=dict)  # model, temperature, max_tokens, ...
    usage: dict[str, Any] = field(default_factory=dict)  # summed token usage over the chain
    # ATIF fallback only: the sibling trial whose proxy log supplied the system prompt and tools.
    context_from: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrialIssue:
    """A counted reason something in a trial was skipped or repaired (never silently dropped)."""

    code: str  # short stable key, e.g. "invalid_json_line", "failed_call", "orphan_tool_result"
    detail: str = ""
    count: int = 1
    # Where the first occurrence was found: file relative to the trial dir, its line, and its detail.
    file: str = ""
    line: int | None = None
    first_detail: str = ""

    @property
    def where(self) -> str:
        """`file line N: detail` of the first occurrence (as much of it as is known)."""
        place = " ".join(p for p in (self.file, f"line {self.line}" if self.line is not None else "") if p)
        return f"{place}: {self.first_detail}" if place and self.first_detail else place or self.first_detail
