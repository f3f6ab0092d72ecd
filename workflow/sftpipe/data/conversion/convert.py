"""Harbor job -> `<data_name>` IM + LF files, stats and report (the `harbor_job` conversion stage).

Trials are read in a process pool (one trial per task, so a worker's peak memory is bounded by
the largest trial); results come back in the deterministic conversion order of `harbor_job`
(sha256 of the instance id, then trial name; each trial's conversations in reader order) and are
streamed to temporary files that replace the outputs atomically at the end. The five outputs are
exactly the paths in `OutputPaths` (the convert rule passes each one); `OutputPaths.in_dir` is the
layout `sft convert --out-dir` uses:

    out_dir/lf_data/<data_name>.json      LF sharegpt rows (JSON array)
    out_dir/<data_name>.im.jsonl           IM records, line i <-> LF row i
    out_dir/<data_name>.stats.json         distributions over the written rows
    out_dir/<data_name>.report.json/.txt   every trial and every dropped row accounted for

Trial policy: a damaged trial (damage.py) yields no rows (`on_damaged_trial: skip`) or its longest
valid part with status `salvaged`; an ATIF fallback of a tool-calling scaffold is completed from a
sibling trial's proxy log (same agent name and version) or, failing that, left out as
`lossy_fallback` unless `keep_lossy_fallback` (status `kept_lossy`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sftpipe.data.conversion.damage import DAMAGE_CODES, damage_of
from sftpipe.data.conversion.harbor_job import TrialRecord, load_excluded_repos, scan_job
from sftpipe.data.conversion.im_format import im_record
from sftpipe.data.conversion.lf_format import conversation_to_lf_row, validate_lf_row
from sftpipe.data.conversion.options import ConversionOptions, default_options
from sftpipe.data.conversion.report import Report, TrialEntry
from sftpipe.data.conversion.scoring import score_conversation
from sftpipe.data.conversion.stats import RowSummary, build_stats
from sftpipe.data.conversion.tool_errors import is_error_result
from sftpipe.util.fs import atomic_write_text

# Reader issue codes that explain why a trial yielded no conversation at all, most specific first.
_NO_CONVERSATION_REASONS = (
    "all_calls_failed",
    "empty_log",
    "unreadable_log",
    "no_trajectory",
    "reader_error",
)


@dataclass
class _Row:
    im: dict[str, Any]
    lf: dict[str, Any]
    summary: RowSummary


# Reader issues whose first occurrence is named in the trial's report entry (besides damage codes).
_NOTABLE_CODES = frozenset({"history_edit", "lossy_fallback", "context_from_sibling", "atif_fallback"})
_TOOL_SCAFFOLDS = ("claude-code", "open-code", "openhands-sdk")  # terminus2's ATIF is its normal path


@dataclass
class _TrialOutcome:
    """What a worker sends back for one trial."""

    trial_name: str
    status: str = "kept"  # kept | salvaged | kept_lossy when rows were produced
    rows: list[_Row] = field(default_factory=list)
    rows_dropped: dict[str, int] = field(default_factory=dict)
    issues: list[tuple[str, int, str]] = field(default_factory=list)  # (code, count, detail)
    first_seen: dict[str, str] = field(default_factory=dict)  # notable code -> where it first occurred
    damage: list[str] = field(default_factory=list)
    skip_reason: str | None = None
    skip_detail: str = ""
    format_changes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputPaths:
    """The five files one conversion writes; nothing else is written."""

    lf: Path
    im: Path
    stats: Path
    report: Path
    report_txt: Path

    @classmethod
    def in_dir(cls, out_dir: Path, data_name: str) -> OutputPaths:
        out_dir = Path(out_dir)
        return cls(
            lf=out_dir / "lf_data" / f"{data_name}.json",
            im=out_dir / f"{data_name}.im.jsonl",
            stats=out_dir / f"{data_name}.stats.json",
            report=out_dir / f"{data_name}.report.json",
            report_txt=out_dir / f"{data_name}.report.txt",
        )

    def as_dict(self) -> dict[str, Path]:
        return {
            "lf": self.lf,
            "im": self.im,
            "stats": self.stats,
            "report": self.report,
            "report_txt": self.report_txt,
        }


def output_paths(out_dir: Path, data_name: str) -> dict[str, Path]:
    """The output files of `data_name` in `out_dir`, by role."""
    return OutputPaths.in_dir(out_dir, data_name).as_dict()


def _convert_trial(rec: TrialRecord, opts: ConversionOptions, donor: Path | None = None) -> _TrialOutcome:
    """Read one trial and turn its conversations into rows; never raises."""
    out = _TrialOutcome(trial_name=rec.trial_name)
    try:
        from sftpipe.data.conversion.read_trial import (
            read_trial,  # part of the reader package; imported where it runs
        )

        assert rec.scaffold is not None
        conversations, issues = read_trial(rec.trial_dir, rec.scaffold, donor)
        out.issues = [(i.code, i.count, i.detail) for i in issues]
        out.first_seen = {
            i.code: i.where for i in issues if i.code in DAMAGE_CODES or i.code in _NOTABLE_CODES
        }
        out.damage, first_damage = damage_of(issues)
        codes = {i.code for i in issues}
        if out.damage and (opts.on_damaged_trial == "skip" or not conversations):
            out.skip_reason, out.skip_detail = "damaged", first_damage
            return out
        if "lossy_fallback" in codes and not opts.keep_lossy_fallback:
            out.skip_reason = "lossy_fallback"
            out.skip_detail = next(i.detail for i in issues if i.code == "lossy_fallback")
            return out
        if out.damage:
            out.status, out.skip_detail = "salvaged", first_damage
        elif "lossy_fallback" in codes:
            out.status = "kept_lossy"
        if not conversations:
            out.skip_reason = next((c for c in _NO_CONVERSATION_REASONS if c in codes), "no_trajectory")
            out.skip_detail = next((i.detail for i in issues if i.code == out.skip_reason), "") or (
                "reader issues: " + ", ".join(sorted(codes)) if codes else ""
            )
            return out
        counter = None
        if opts.tokenizer_path:
            from sftpipe.data.conversion.token_lengths import token_counter

            counter = token_counter(opts.tokenizer_path, opts.template, opts.enable_thinking)
        dropped: Counter[str] = Counter()
        changes: Counter[str] = Counter()
        details: list[str] = []
        for conv in conversations:
            if conv.agent_type == "subagent" and not opts.keep_subagents:
                dropped["subagent_excluded"] += 1
                continue
            conversion = conversation_to_lf_row(conv, opts.reasoning, opts.tool_error_policy)
            changes["trimmed_trailing_turns"] += conversion.trimmed_trailing_turns
            changes["dropped_error_turns"] += conversion.dropped_error_turns
            problems = conversion.problems if conversion.row is None else validate_lf_row(conversion.row)
            if problems or conversion.row is None:
                dropped["invalid_structure"] += 1
                details.append("invalid_structure: " + "; ".join(problems[:3]))
                continue
            score = score_conversation(conv) if conv.agent_type == "main" else None
            if score is not None and score.composite < opts.min_score:
                dropped["below_min_score"] += 1
                continue
            tokens = counter.count(conversion.row) if counter is not None else None
            if tokens is not None and tokens > opts.cutoff_len and opts.over_cutoff == "drop":
                dropped["over_length"] += 1
                details.append(f"over_length: {tokens} tokens > {opts.cutoff_len}")
                continue
            results = [m for m in conv.messages if m.role == "tool"]
            summary = RowSummary(
                scaffold=rec.scaffold,
                agent_type=conv.agent_type,
                assistant_turns=sum(
                    t["from"] in ("gpt", "function_call") for t in conversion.row["conversations"]
                ),
                tool_calls=sum(len(m.tool_calls) for m in conv.messages if m.role == "assistant"),
                tool_errors=sum(is_error_result(m) for m in results),
                tokens=tokens,
                score=score.composite if score is not None else None,
            )
            im = im_record(
                conv,
                instance_id=rec.instance_id or "",
                trial_name=rec.trial_name,
                scaffold=rec.scaffold,
                score=score.to_dict() if score else None,
                instance_metadata=rec.metadata,
            )
            unique = im["meta_info"]["unique_info"]
            if out.damage:  # salvaged: the row is the longest valid part of a damaged trial
                unique["_damaged"] = {"status": "salvaged", "reasons": out.damage, "first": first_damage}
            if "lossy_fallback" in codes:
                unique["_lossy_fallback"] = True
            out.rows.append(_Row(im=im, lf=conversion.row, summary=summary))
        out.rows_dropped = dict(dropped)
        out.format_changes = {k: v for k, v in changes.items() if v}
        if not out.rows:
            out.skip_reason = min(dropped.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            out.skip_detail = details[0] if details else ""
    except Exception as exc:  # noqa: BLE001 - a reader/formatter bug must not sink the whole job: counted per trial
        out.rows, out.rows_dropped = [], {}
        out.skip_reason = "conversion_error"
        out.skip_detail = f"{type(exc).__name__}: {exc} | {traceback.format_exc(limit=-1).strip()[-400:]}"
    return out


def _convert_trial_star(args: tuple[TrialRecord, ConversionOptions, Path | None]) -> _TrialOutcome:
    return _convert_trial(*args)


def context_donors(records: list[TrialRecord]) -> dict[str, Path]:
    """Trial name -> a sibling trial (same agent name and version, tool-calling scaffold) with a proxy log.

    Only trials that could need one (a tool-calling scaffold) are mapped; the donor is the first
    sibling by name that is not the trial itself, so the choice is deterministic.
    """
    from sftpipe.data.conversion.read_trial import PROXY_LOG

    with_log: dict[tuple[str, str], list[TrialRecord]] = {}
    for rec in records:
        version = rec.metadata.get("agent_version")
        if rec.agent_name and isinstance(version, str) and rec.scaffold in _TOOL_SCAFFOLDS:
            log = rec.trial_dir / "agent" / PROXY_LOG
            if log.is_file() and log.stat().st_size > 0:
                with_log.setdefault((rec.agent_name, version), []).append(rec)
    donors: dict[str, Path] = {}
    for rec in records:
        version = rec.metadata.get("agent_version")
        if rec.scaffold not in _TOOL_SCAFFOLDS or not rec.agent_name or not isinstance(version, str):
            continue
        siblings = sorted(
            (r for r in with_log.get((rec.agent_name, version), []) if r is not rec),
            key=lambda r: r.trial_name,
        )
        if siblings:
            donors[rec.trial_name] = siblings[0].trial_dir
    return donors


# With token lengths measured, every pool worker (spawn) imports LLaMA-Factory and torch once: seconds of CPU,
# more than converting a typical trial. `workers: 0` (automatic) gives each worker at least this many trials, so
# a small job (the demo's 3 trials) converts in-process instead of paying two extra LF start-ups on 2 cores.
TRIALS_PER_TOKENIZER_WORKER = 8


def auto_workers(n_trials: int, measures_tokens: bool) -> int:
    """Worker count for `workers: 0`: one per core, fewer when start-ups would cost more than they save."""
    cores = os.cpu_count() or 1
    if not measures_tokens:
        return cores
    return max(1, min(cores, n_trials // TRIALS_PER_TOKENIZER_WORKER))


def _outcomes(
    records: list[TrialRecord], opts: ConversionOptions, donors: dict[str, Path]
) -> Iterator[_TrialOutcome]:
    """Outcomes in the order of `records`; a pool when there is more than one worker and trial."""
    tasks = [(r, opts, donors.get(r.trial_name)) for r in records]
    workers = opts.workers or auto_workers(len(records), bool(opts.tokenizer_path))
    workers = min(workers, len(records))
    if workers <= 1:
        for task in tasks:
            yield _convert_trial(*task)
        return
    # spawn: workers must not inherit the parent's threads (tokenizers, torch) through fork.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_convert_trial_star, tasks, chunksize=1)


class _AtomicWriter:
    """Writes to `<path>.tmp` and renames over `path` on commit; removes the temp file otherwise."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed by commit/abort

    def commit(self) -> None:
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def _entry(rec: TrialRecord, status: str, detail: str) -> TrialEntry:
    return TrialEntry(
        trial_name=rec.trial_name,
        status=status,
        detail=detail,
        instance_id=rec.instance_id,
        scaffold=rec.scaffold,
        reward=rec.reward,
        reward_source=rec.reward_source,
        exception_type=rec.exception_type,
        reasons=list(rec.damage),
    )


def convert_job(
    job_dir: Path, outputs: Path | OutputPaths, data_name: str, options: ConversionOptions | None = None
) -> Report:
    """Convert one Harbor job; `outputs` is either the exact five paths or a dir for `OutputPaths.in_dir`."""
    opts = options or default_options()
    job_dir = Path(job_dir)
    if not data_name or "/" in data_name or "\\" in data_name or data_name.startswith("."):
        raise ValueError(f"data_name {data_name!r} must be a plain file name")
    if not job_dir.is_dir():
        raise FileNotFoundError(f"job dir {job_dir} does not exist")
    paths = outputs if isinstance(outputs, OutputPaths) else OutputPaths.in_dir(Path(outputs), data_name)
    excluded = load_excluded_repos(opts.exclude_repos_file)
    records, job = scan_job(job_dir, opts.scaffold, opts.selection, opts.exception_policy, excluded)
    report = Report(
        job_dir=str(job_dir),
        data_name=data_name,
        options=asdict(opts),
        outputs={k: str(v) for k, v in paths.as_dict().items()},
        job_finished=job.finished,
        job_problem=job.problem,
        tokens_measured=bool(opts.tokenizer_path),
    )
    selectable = [r for r in records if r.skip_reason is None]
    report.trials.extend(_entry(r, r.skip_reason or "", r.skip_detail) for r in records if r.skip_reason)
    donors = context_donors(records)

    lf_out, im_out = _AtomicWriter(paths.lf), _AtomicWriter(paths.im)
    summaries: list[RowSummary] = []
    changes: Counter[str] = Counter()
    trials_per_instance: Counter[str] = Counter()
    outcomes = _outcomes(selectable, opts, donors)
    try:
        lf_out.fh.write("[")
        done = 0
        for outcome in outcomes:
            rec = selectable[done]
            done += 1
            entry = _entry(rec, outcome.skip_reason or outcome.status, outcome.skip_detail)
            entry.rows_dropped = dict(outcome.rows_dropped)
            entry.reasons = list(outcome.damage)
            entry.first_seen = dict(outcome.first_seen)
            for code, count, detail in outcome.issues:
                entry.reader_issues[code] = entry.reader_issues.get(code, 0) + count
                report.add_reader_issue(code, count, detail)
            changes.update(outcome.format_changes)
            instance = rec.instance_id or ""
            if outcome.rows:
                full = opts.max_instances and len(trials_per_instance) >= opts.max_instances
                if instance not in trials_per_instance and full:
                    # Every later trial belongs to a later instance (order is by instance): stop reading.
                    entry.status, entry.detail, entry.rows_dropped = "over_max_instances", "", {}
                    report.trials.append(entry)
                    report.trials.extend(
                        _entry(r, "over_max_instances", "not read") for r in selectable[done:]
                    )
                    break
                if (
                    opts.max_trials_per_instance
                    and trials_per_instance[instance] >= opts.max_trials_per_instance
                ):
                    entry.status, entry.rows_dropped = "over_max_trials_per_instance", {}
                    report.trials.append(entry)
                    continue
                trials_per_instance[instance] += 1
                for row in outcome.rows:
                    lf_out.fh.write(
                        ("\n" if report.rows_written == 0 else ",\n") + json.dumps(row.lf, ensure_ascii=False)
                    )
                    im_out.fh.write(json.dumps(row.im, ensure_ascii=False) + "\n")
                    summaries.append(row.summary)
                    report.rows_written += 1
                entry.rows_written = len(outcome.rows)
            report.trials.append(entry)
        lf_out.fh.write("\n]\n")
        report.instances_written = len(trials_per_instance)
        report.check()  # before the outputs replace earlier ones
    except BaseException:
        lf_out.abort()
        im_out.abort()
        raise
    finally:
        outcomes.close()  # stops the pool when max_instances ended the loop early
    lf_out.commit()
    im_out.commit()

    report.format_changes = dict(sorted(changes.items()))
    stats = build_stats(summaries, opts.cutoff_len, tokens_measured=bool(opts.tokenizer_path))
    atomic_write_text(paths.stats, json.dumps(stats, indent=2) + "\n")
    atomic_write_text(paths.report, report.to_json())
    atomic_write_text(paths.report_txt, report.to_text())
    return report
