"""`<data_name>.stats.json`: distributions over the rows that were written."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class RowSummary:
    """The few numbers stats need from one written row (kept instead of the row itself)."""

    scaffold: str
    agent_type: str
    assistant_turns: int
    tool_calls: int
    tool_errors: int
    tokens: int | None  # None when no tokenizer was configured
    score: float | None  # None for sub-agents (not scored)


def _percentile(sorted_values: list[int], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"max": None, "min": None, "mean": None}
    return {"max": max(values), "min": min(values), "mean": round(sum(values) / len(values), 6)}


def build_stats(
    rows: list[RowSummary], cutoff_len: int, tokens_measured: bool, score_bins: int = 10
) -> dict[str, Any]:
    """Token stats are omitted (``measured: false``) when no tokenizer was configured."""
    tokens = sorted(r.tokens for r in rows if r.tokens is not None)
    token_stats: dict[str, Any] = {"measured": tokens_measured, "cutoff_len": cutoff_len}
    if tokens_measured:
        token_stats.update(_summary(tokens))
        token_stats.update(
            p50=_percentile(tokens, 0.5) if tokens else None,
            p95=_percentile(tokens, 0.95) if tokens else None,
            count_over_cutoff=sum(t > cutoff_len for t in tokens),
            total=sum(tokens),
        )

    scores = [r.score for r in rows if r.score is not None]
    histogram = [0] * score_bins
    for s in scores:
        histogram[min(score_bins - 1, int(s * score_bins))] += 1
    score_stats: dict[str, Any] = {
        **_summary(scores),
        "count": len(scores),
        "histogram": {"bin_edges": [i / score_bins for i in range(score_bins + 1)], "counts": histogram},
    }

    def error_rate(sub: list[RowSummary]) -> dict[str, Any]:
        calls = sum(r.tool_calls for r in sub)
        errors = sum(r.tool_errors for r in sub)
        return {
            "tool_calls": calls,
            "tool_errors": errors,
            "rate": round(errors / calls, 6) if calls else None,
        }

    per_agent: dict[str, int] = {}
    for r in rows:
        per_agent[r.agent_type] = per_agent.get(r.agent_type, 0) + 1
    return {
        "rows": len(rows),
        "samples_per_agent_type": per_agent,
        "token_length": token_stats,
        "total_tokens": token_stats.get("total"),
        "assistant_turns": _summary([r.assistant_turns for r in rows]),
        "score": score_stats,
        "tool_call_error_rate": {
            "overall": error_rate(rows),
            "per_scaffold": {
                s: error_rate([r for r in rows if r.scaffold == s])
                for s in sorted({r.scaffold for r in rows})
            },
        },
    }
