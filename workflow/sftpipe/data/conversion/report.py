"""`<data_name>.report.json` / `.report.txt`: every trial accounted for, every dropped row counted.

Trial statuses with rows: ``kept``, ``salvaged`` (a damaged trial's longest valid part, only with
``on_damaged_trial: salvage``) and ``kept_lossy`` (an ATIF fallback without system prompt or tool
schemas, only with ``keep_lossy_fallback``). Without rows: ``damaged`` (structurally invalid record or
file; ``reasons`` lists the damage codes, ``detail`` the first offending line or file),
``lossy_fallback``, ``incomplete`` (no trial result.json; ``reward_source`` names a job-level claim),
or another skip reason, e.g. ``missing_config``, ``invalid_name``, ``symlink_loop``,
``missing_instance_id``, ``invalid_instance_id``, ``unknown_scaffold``, ``excluded_repo``,
``exception``, ``no_reward``, ``not_selected``, ``over_max_instances``,
``over_max_trials_per_instance``, ``no_trajectory`` (or the reader's own reason such as
``all_calls_failed``), ``conversion_error``, or — when every row of a trial was dropped — the most
frequent row drop reason (``invalid_structure``, ``over_length``, ``below_min_score``,
``subagent_excluded``). Row drop reasons are counted separately. `check()` asserts the totals add up.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrialEntry:
    """What happened to one trial in a conversion, for the report."""

    trial_name: str
    status: str  # "kept" or a skip reason
    detail: str = ""
    instance_id: str | None = None
    scaffold: str | None = None
    reward: float | None = None
    reward_source: str = "none"
    exception_type: str | None = None
    rows_written: int = 0
    rows_dropped: dict[str, int] = field(default_factory=dict)
    reader_issues: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # damage codes (damaged / salvaged)
    # Damage and notable codes (history_edit, lossy_fallback, ...) -> where each first occurred.
    first_seen: dict[str, str] = field(default_factory=dict)


# Statuses whose trials wrote rows; every other status is a trial left out.
ROW_STATUSES = ("kept", "salvaged", "kept_lossy")
# Outcomes a user must be able to find trial by trial in the text report.
ATTENTION_STATUSES = ("damaged", "salvaged", "incomplete", "lossy_fallback", "kept_lossy")


@dataclass
class Report:
    """The conversion report of one job: options, outputs, per-trial entries and issue totals."""

    job_dir: str
    data_name: str
    options: dict[str, Any]
    outputs: dict[str, str]
    job_finished: bool
    job_problem: str
    tokens_measured: bool
    trials: list[TrialEntry] = field(default_factory=list)
    rows_written: int = 0
    instances_written: int = 0
    # Issue code -> {"count", "trials", "examples"} over all trials.
    reader_issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    format_changes: dict[str, int] = field(default_factory=dict)

    @property
    def trials_by_status(self) -> dict[str, int]:
        return dict(sorted(Counter(t.status for t in self.trials).items()))

    @property
    def rows_dropped(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for t in self.trials:
            total.update(t.rows_dropped)
        return dict(sorted(total.items()))

    def add_reader_issue(self, code: str, count: int, detail: str) -> None:
        entry = self.reader_issues.setdefault(code, {"count": 0, "trials": 0, "examples": []})
        entry["count"] += count
        entry["trials"] += 1
        if detail and len(entry["examples"]) < 3:
            entry["examples"].append(detail[:300])

    def check(self) -> None:
        """The accounting invariants; a violation is a bug in the converter, not bad input."""
        by_status = self.trials_by_status
        assert sum(by_status.values()) == len(self.trials)
        assert sum(t.rows_written for t in self.trials) == self.rows_written, "rows written do not add up"
        kept = [t for t in self.trials if t.status in ROW_STATUSES]
        assert all(t.rows_written > 0 for t in kept), "a kept trial without rows"
        assert all(t.rows_written == 0 for t in self.trials if t.status not in ROW_STATUSES), (
            "a skipped trial with rows"
        )
        assert all(t.reasons for t in self.trials if t.status in ("damaged", "salvaged")), (
            "damage without reasons"
        )
        assert len({t.trial_name for t in self.trials}) == len(self.trials), "a trial reported twice"

    def to_dict(self) -> dict[str, Any]:
        by_status = self.trials_by_status
        kept = sum(by_status.get(s, 0) for s in ROW_STATUSES)
        dropped = self.rows_dropped
        return {
            "job_dir": self.job_dir,
            "data_name": self.data_name,
            "options": self.options,
            "outputs": self.outputs,
            "job": {"finished": self.job_finished, "problem": self.job_problem},
            "token_lengths": "measured" if self.tokens_measured else "not measured: no tokenizer configured",
            "trials": {
                "total": len(self.trials),
                "kept": kept,
                "skipped": len(self.trials) - kept,
                "by_status": by_status,
            },
            "instances_written": self.instances_written,
            "rows": {
                "candidates": self.rows_written + sum(dropped.values()),
                "written": self.rows_written,
                "dropped": sum(dropped.values()),
                "dropped_by_reason": dropped,
            },
            "reader_issues": dict(sorted(self.reader_issues.items())),
            "format_changes": self.format_changes,
            "history_edits": {
                "count": self.reader_issues.get("history_edit", {}).get("count", 0),
                "trials": [t.trial_name for t in self.trials if "history_edit" in t.reader_issues],
            },
            "trial_details": [asdict(t) for t in self.trials],
        }

    def to_text(self) -> str:
        d = self.to_dict()
        lines = [
            f"conversion report: {self.data_name}",
            f"job: {self.job_dir} ({'finished' if self.job_finished else 'running or unknown'})"
            + (f" [{self.job_problem}]" if self.job_problem else ""),
            f"trials: {d['trials']['total']} total, {d['trials']['kept']} kept, {d['trials']['skipped']} skipped",
        ]
        lines += [f"  {status:<32} {n}" for status, n in d["trials"]["by_status"].items()]
        r = d["rows"]
        lines.append(
            f"rows: {r['candidates']} candidates, {r['written']} written, {r['dropped']} dropped "
            f"({d['instances_written']} instances)"
        )
        lines += [f"  dropped {reason:<24} {n}" for reason, n in r["dropped_by_reason"].items()]
        lines.append(f"token lengths: {d['token_lengths']}")
        if self.format_changes:
            lines.append("format changes: " + ", ".join(f"{k}={v}" for k, v in self.format_changes.items()))
        if self.reader_issues:
            lines.append("reader issues (code: occurrences / trials):")
            lines += [f"  {code:<32} {v['count']} / {v['trials']}" for code, v in d["reader_issues"].items()]
        lines += self._attention_lines()
        return "\n".join(lines) + "\n"

    def _attention_lines(self) -> list[str]:
        """One line per trial that was damaged, salvaged, incomplete, lossy, or had a history edit."""
        out: list[str] = []
        for t in self.trials:
            if t.status in ATTENTION_STATUSES:
                reasons = f" [{', '.join(t.reasons)}]" if t.reasons else ""
                claim = (
                    f" (reward claimed by {t.reward_source})"
                    if t.status == "incomplete" and t.reward is not None
                    else ""
                )
                out.append(f"  {t.status:<15} {t.trial_name}{reasons}{claim}: {t.detail}")
            if "history_edit" in t.reader_issues:
                out.append(
                    f"  {'history_edit':<15} {t.trial_name} x{t.reader_issues['history_edit']}: "
                    f"{t.first_seen.get('history_edit', '')}"
                )
        return (
            ["trials needing attention (status trial [reasons]: first offending line or file):", *out]
            if out
            else []
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
