"""Training metrics of one LLaMA-Factory run directory: a summary plus a per-step series.

(Long module: the merge of trainer_state.json and trainer_log.jsonl across resumes and the summary built on it
are one algorithm, read together.)

Sources, in order of trust:
* ``trainer_state.json`` (``log_history``): the clean record (loss, grad_norm, learning_rate, eval
  points, final summary entry). LF writes it to the run directory only when training ends; while a
  run is going, the newest ``checkpoint-N/trainer_state.json`` holds the history up to step N.
* ``trainer_log.jsonl``: the live record, one line per ``on_log``. After a resume LF appends to it,
  so steps after the last checkpoint appear twice: the last line per (step, kind) wins. No grad_norm.
* ``train_results.json`` / ``all_results.json``: end-of-run summary (final train_loss, runtime...).

Summary keys: finished (the run directory's trainer_state.json ends with the end-of-train entry and
covers the last logged step); final_loss (train_results train_loss, or after a resume the
step-weighted mean of the logged losses, because transformers' train_loss is then wrong);
train_results_train_loss (as written); loss_step_weighted_mean; last_loss, mean_loss (of logged
points), best_loss(+_step), best_eval_loss(+_step), eval_loss_last, eval_points, final_eval_loss
(all_results); logged_steps, total_steps (last step reached), max_steps (planned), epochs;
train_runtime, train_samples_per_second, train_steps_per_second (last attempt only after a resume),
num_input_tokens_seen, total_flos; live progress from the last trainer_log line (percentage,
elapsed_time, remaining_time, throughput_tokens_per_second); resumed, resumed_duplicate_lines;
tokens_per_second_per_gpu, mfu, peak_gpu_memory_gb (sftpipe.runs.throughput; details and their own
warnings under `throughput`); sources (files read); warnings. Series rows: step, loss, eval_loss,
learning_rate, grad_norm, epoch, num_input_tokens_seen, and tokens_per_second_per_gpu / mfu averaged
from the start of the attempt to that step (None where not logged at that step).

Partial results are explicit: a value that cannot be known yet is ``None`` and the reason is listed
in ``summary["warnings"]``; a file that cannot be parsed raises :class:`MetricsError`.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

from sftpipe import paths
from sftpipe.util.fs import atomic_write_bytes
from sftpipe.util.timefmt import parse_duration

# Fields of one series row, in output order.
SERIES_FIELDS = (
    "step",
    "loss",
    "eval_loss",
    "learning_rate",
    "grad_norm",
    "epoch",
    "num_input_tokens_seen",
    "tokens_per_second_per_gpu",
    "mfu",
)
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class MetricsError(RuntimeError):
    """A run directory whose records are missing or unreadable."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MetricsError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} col {exc.colno})"
        ) from exc
    except OSError as exc:
        raise MetricsError(f"{path}: cannot read ({exc.strerror})") from exc


def _finite(value: Any) -> float | None:
    """A real number or None; NaN/inf (diverged training) are kept out of means and minima."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def ema(values: list[float], weight: float) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing): early points are not pulled to 0."""
    out: list[float] = []
    avg, norm = 0.0, 0.0
    for v in values:
        avg = weight * avg + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(avg / norm)
    return out


def smoothing_weight(n_points: int) -> float:
    """Heavier smoothing for longer runs: ~n/10 points of memory, between 0 and 0.95."""
    span = n_points / 10
    return 0.0 if span <= 1 else min(0.95, 1 - 2 / (span + 1))


def read_trainer_log(path: Path, warnings: list[str]) -> tuple[list[dict[str, Any]], int, int]:
    """Parse trainer_log.jsonl; return (deduplicated lines in step order, lines replaced, restarts).

    A restart (a resume appended to the same file) shows as a step going back or repeating, or as
    elapsed_time starting over.

    A line is keyed by (current_steps, kind) where kind is eval (has eval_loss), train (has loss)
    or other (end-of-train summary, eval progress): at the same step LF writes a train line and an
    eval line, which are not duplicates of each other. Only an unterminated last line (a writer cut
    off mid-append) is skipped, with a warning; any other unparsable line is an error.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MetricsError(f"{path}: cannot read ({exc.strerror})") from exc
    lines = text.split("\n")
    terminated = text.endswith("\n")
    kept: dict[tuple[int, str], dict[str, Any]] = {}
    order: dict[tuple[int, str], int] = {}
    replaced = restarts = 0
    prev_step, prev_elapsed = -1, -1
    attempt_of: dict[tuple[int, str], int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        is_last = lineno == len(lines)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if is_last and not terminated:
                warnings.append(
                    f"{path.name}: skipped unterminated last line {lineno} (write in progress or cut off)"
                )
                continue
            raise MetricsError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
        step = record.get("current_steps") if isinstance(record, dict) else None
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise MetricsError(f"{path}:{lineno}: line has no integer 'current_steps'")
        kind = "eval" if "eval_loss" in record else "train" if "loss" in record else "other"
        key = (step, kind)
        if key in kept:
            replaced += 1
        seconds = parse_duration(record.get("elapsed_time"))
        elapsed = None if seconds is None else int(seconds)
        # A key already written in this same attempt can only come back from a new attempt.
        if (
            step < prev_step
            or attempt_of.get(key) == restarts
            or (elapsed is not None and elapsed < prev_elapsed)
        ):
            restarts += 1
        prev_step, prev_elapsed = step, elapsed if elapsed is not None else prev_elapsed
        attempt_of[key] = restarts
        kept[key] = record
        order[key] = lineno
    # Step order; at equal steps keep write order (train before eval before the summary).
    keys = sorted(kept, key=lambda k: (k[0], order[k]))
    return [kept[k] for k in keys], replaced, restarts


def _latest_checkpoint_state(run_dir: Path) -> Path | None:
    best: tuple[int, Path] | None = None
    for child in run_dir.iterdir() if run_dir.is_dir() else ():
        match = _CHECKPOINT_RE.match(child.name)
        state = child / paths.TRAINER_STATE
        if match and state.is_file() and (best is None or int(match.group(1)) > best[0]):
            best = (int(match.group(1)), state)
    return best[1] if best else None


def _same(a: Any, b: Any) -> bool:
    fa, fb = _finite(a), _finite(b)
    if fa is None or fb is None:
        return (fa is None) == (fb is None)
    return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)


def _row(step: int) -> dict[str, Any]:
    return {field: None for field in SERIES_FIELDS} | {"step": step}


def _merge_state(
    rows: dict[int, dict[str, Any]], log_history: list[Any], path: Path
) -> dict[str, Any] | None:
    """Overlay trainer_state log_history onto rows; return its end-of-train summary entry, if any."""
    final: dict[str, Any] | None = None
    for i, entry in enumerate(log_history):
        if not isinstance(entry, dict) or not isinstance(entry.get("step"), int):
            raise MetricsError(f"{path}: log_history[{i}] has no integer 'step'")
        # The end-of-train entry carries train_loss. Per-step entries may carry train_runtime too
        # (transformers 4.57 adds it, with train_tokens_per_second, under include_num_input_tokens_seen).
        if "train_loss" in entry and "loss" not in entry:
            final = entry
            continue
        row = rows.setdefault(entry["step"], _row(entry["step"]))
        for src, dst in (
            ("loss", "loss"),
            ("eval_loss", "eval_loss"),
            ("learning_rate", "learning_rate"),
            ("grad_norm", "grad_norm"),
            ("epoch", "epoch"),
            ("num_input_tokens_seen", "num_input_tokens_seen"),
        ):
            if src in entry:
                row[dst] = entry[src]
    return final


def _merge_log(rows: dict[int, dict[str, Any]], log_lines: list[dict[str, Any]], covered_to: int) -> None:
    """Add trainer_log.jsonl points after the steps trainer_state already covers."""
    for line in log_lines:
        step = line["current_steps"]
        if step <= covered_to or ("loss" not in line and "eval_loss" not in line):
            continue
        row = rows.setdefault(step, _row(step))
        for src, dst in (
            ("loss", "loss"),
            ("eval_loss", "eval_loss"),
            ("lr", "learning_rate"),
            ("epoch", "epoch"),
            ("total_tokens", "num_input_tokens_seen"),
        ):
            if src in line:
                row[dst] = line[src]


def extract_metrics(run_dir: Path) -> dict[str, Any]:
    """Summary and per-step series of a finished, running or resumed LF run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MetricsError(f"{run_dir}: run directory does not exist")
    warnings: list[str] = []
    sources: dict[str, str] = {}

    state_path = run_dir / paths.TRAINER_STATE
    if not state_path.is_file():
        state_path = _latest_checkpoint_state(run_dir)
        if state_path is not None:
            warnings.append(
                f"no {paths.TRAINER_STATE} in the run directory (run not finished): "
                f"history up to the newest checkpoint from {state_path.relative_to(run_dir)}"
            )
    state: dict[str, Any] | None = None
    if state_path is not None:
        state = _read_json(state_path)
        if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
            raise MetricsError(f"{state_path}: no 'log_history' list")
        sources["trainer_state"] = str(state_path)

    log_path = run_dir / paths.TRAINER_LOG
    log_lines: list[dict[str, Any]] = []
    duplicates = restarts = 0
    if log_path.is_file():
        log_lines, duplicates, restarts = read_trainer_log(log_path, warnings)
        sources["trainer_log"] = str(log_path)
    if state is None and not log_path.is_file():
        raise MetricsError(
            f"{run_dir}: no training records ({paths.TRAINER_STATE}, checkpoint-*/{paths.TRAINER_STATE} "
            f"or {paths.TRAINER_LOG}); training has not logged a step yet or this is not a run dir"
        )

    rows: dict[int, dict[str, Any]] = {}
    final_entry: dict[str, Any] | None = None
    state_step = -1
    if state is not None:
        final_entry = _merge_state(rows, state["log_history"], state_path)
        state_step = (
            state.get("global_step") if isinstance(state.get("global_step"), int) else max(rows, default=-1)
        )
    # Both records take a step's loss from the same log_history entry, so they must agree; if not,
    # trainer_state.json is likely left over from an earlier run in this directory.
    mismatched = [
        line["current_steps"]
        for line in log_lines
        if "loss" in line
        and line["current_steps"] in rows
        and rows[line["current_steps"]]["loss"] is not None
        and not _same(line["loss"], rows[line["current_steps"]]["loss"])
    ]
    if mismatched:
        warnings.append(
            f"{paths.TRAINER_LOG} and {state_path.name if state_path else paths.TRAINER_STATE} disagree on the "
            f"loss at steps {mismatched[:10]}: the state file may be from an earlier run in this "
            f"directory; values shown are the state file's"
        )
    _merge_log(rows, log_lines, state_step)
    series = [rows[s] for s in sorted(rows)]

    last_log = log_lines[-1] if log_lines else {}
    current_step = max([state_step, *(line["current_steps"] for line in log_lines)])
    # Results files describe the end of a training call; after a resume that goes beyond it they are stale.
    results: dict[str, Any] = {}
    for name in (paths.ALL_RESULTS, paths.TRAIN_RESULTS):  # train_results wins on shared keys
        path = run_dir / name
        if path.is_file():
            data = _read_json(path)
            if not isinstance(data, dict):
                raise MetricsError(f"{path}: expected a JSON object")
            results.update(data)
            sources[name.removesuffix(".json")] = str(path)
    finished = final_entry is not None and state_step >= current_step
    if results and not finished:
        warnings.append(
            f"{paths.TRAIN_RESULTS}/{paths.ALL_RESULTS} ignored: the run directory's {paths.TRAINER_STATE} does not "
            f"confirm they cover the last logged step {current_step} (resumed or still writing)"
        )
        results = {}
    if not finished:
        warnings.append("run not finished: final_loss, train_runtime and throughput summaries are unknown")
    summary_src = (final_entry or {}) | results if finished else {}

    train_pts = [(r["step"], v) for r in series if (v := _finite(r["loss"])) is not None]
    # A logged loss averages the steps since the previous log: weight it by that interval.
    weighted_mean = None
    if train_pts:
        prev, total = 0, 0.0
        for step, value in train_pts:
            total += value * (step - prev)
            prev = step
        weighted_mean = total / prev if prev else train_pts[-1][1]
    final_loss = summary_src.get("train_loss")
    if finished and restarts:
        # transformers divides the loss summed since the resume by ALL steps (Trainer._total_loss_scalar
        # restarts at 0), so train_results.json's train_loss is too low after a resume.
        warnings.append(
            f"resumed run: {paths.TRAIN_RESULTS} train_loss {final_loss} only sums the steps after the "
            f"resume; final_loss is the step-weighted mean of the logged losses instead, and "
            f"train_runtime/samples/steps per second cover the last attempt only"
        )
        final_loss = weighted_mean
    eval_pts = [(r["step"], v) for r in series if (v := _finite(r["eval_loss"])) is not None]
    nonfinite = sum(
        1 for r in series for k in ("loss", "eval_loss") if r[k] is not None and _finite(r[k]) is None
    )
    if nonfinite:
        warnings.append(f"{nonfinite} non-finite loss values (NaN/inf) left out of mean/best")
    best = min(train_pts, key=lambda p: p[1]) if train_pts else None
    best_eval = min(eval_pts, key=lambda p: p[1]) if eval_pts else None
    # The live line knows about a max_steps raised on resume; trainer_state may be older.
    max_steps = last_log.get("total_steps", state.get("max_steps") if state else None)
    tokens = summary_src.get("num_input_tokens_seen")
    if tokens is None and series:  # a running total: only the newest step's value is the total so far
        tokens = series[-1]["num_input_tokens_seen"]

    perf = _throughput(
        run_dir, series, log_lines, tokens, summary_src.get("train_runtime"), current_step, restarts > 0
    )
    summary: dict[str, Any] = {
        "finished": finished,
        "final_loss": final_loss,
        "train_results_train_loss": summary_src.get("train_loss"),
        "loss_step_weighted_mean": weighted_mean,
        "last_loss": train_pts[-1][1] if train_pts else None,
        "mean_loss": statistics.fmean(v for _, v in train_pts) if train_pts else None,
        "best_loss": best[1] if best else None,
        "best_loss_step": best[0] if best else None,
        "best_eval_loss": best_eval[1] if best_eval else None,
        "best_eval_step": best_eval[0] if best_eval else None,
        "eval_loss_last": eval_pts[-1][1] if eval_pts else None,
        "eval_points": len(eval_pts),
        "final_eval_loss": summary_src.get("eval_loss"),
        "logged_steps": len(train_pts),
        "total_steps": current_step if current_step >= 0 else None,
        "max_steps": max_steps,
        "epochs": summary_src.get("epoch", series[-1]["epoch"] if series else None),
        "train_runtime": summary_src.get("train_runtime"),
        "train_samples_per_second": summary_src.get("train_samples_per_second"),
        "train_steps_per_second": summary_src.get("train_steps_per_second"),
        "num_input_tokens_seen": tokens,
        "total_flos": summary_src.get("total_flos"),
        "throughput_tokens_per_second": last_log.get("throughput"),
        "percentage": last_log.get("percentage"),
        "elapsed_time": last_log.get("elapsed_time"),
        "remaining_time": None if finished else last_log.get("remaining_time"),
        "tokens_per_second_per_gpu": perf["tokens_per_second_per_gpu"],
        "mfu": perf["mfu"],
        "peak_gpu_memory_gb": perf["peak_gpu_memory_gb"],
        "throughput": perf,
        "resumed": restarts > 0,
        "resumed_duplicate_lines": duplicates,
        "sources": sources,
        "warnings": warnings,
    }
    return {"summary": summary, "series": series}


def _throughput(
    run_dir: Path,
    series: list[dict[str, Any]],
    log_lines: list[dict[str, Any]],
    tokens: Any,
    runtime: Any,
    step: int,
    resumed: bool,
) -> dict[str, Any]:
    """Run-level throughput (sftpipe.runs.throughput) and the per-row running figures, filled into series."""
    from sftpipe.runs.throughput import rates, run_context, run_throughput

    elapsed = {
        ln["current_steps"]: s
        for ln in log_lines
        if "loss" in ln and (s := parse_duration(ln.get("elapsed_time")))
    }
    if runtime is None and log_lines:  # a live run: the last logged elapsed time
        runtime = parse_duration(log_lines[-1].get("elapsed_time"))
    # After a resume runtime and elapsed restart at 0 while the token count carries on: no honest rate.
    perf = run_throughput(run_dir, None if resumed else _finite(tokens), runtime, step if step > 0 else None)
    if resumed:
        perf["warnings"].append(
            "resumed run: the token count spans attempts but the runtime only the last; "
            "tokens/s and MFU are left unknown"
        )
    ctx = run_context(run_dir)
    for row in series:
        secs = elapsed.get(row["step"])
        if resumed or not secs or not isinstance(row["num_input_tokens_seen"], (int, float)):
            continue
        at = rates(ctx, row["num_input_tokens_seen"], secs, row["step"])
        row["tokens_per_second_per_gpu"], row["mfu"] = at["tokens_per_second_per_gpu"], at["mfu"]
    return perf


def write_metrics(
    run_dir: Path, out_json: Path | None = None, out_jsonl: Path | None = None
) -> dict[str, Any]:
    """Write metrics.json (summary + series) and metrics.jsonl (one object per logged step)."""
    run_dir = Path(run_dir)
    metrics = extract_metrics(run_dir)
    out_json = Path(out_json) if out_json else run_dir / paths.METRICS_JSON
    out_jsonl = Path(out_jsonl) if out_jsonl else run_dir / paths.METRICS_JSONL
    atomic_write_bytes(out_json, (json.dumps(metrics, indent=2) + "\n").encode())
    atomic_write_bytes(out_jsonl, "".join(json.dumps(row) + "\n" for row in metrics["series"]).encode())
    return metrics
