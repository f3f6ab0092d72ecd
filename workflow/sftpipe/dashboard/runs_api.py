"""JSON for the run pages: the run list and one run's series, checkpoints, events, log and records.

Every function reads files under the project root and returns plain JSON-able data; none writes.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from sftpipe.dashboard import sources
from sftpipe.paths import CODE_DIFF, ENVIRONMENT, TRAINER_LOG
from sftpipe.paths import DATASET_FINGERPRINT as DATASET
from sftpipe.paths import RESOLVED_CONFIG as RUN_CONFIG

MAX_TEXT = 200_000  # characters of a record file shown; the rest is cut with a note
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class NotFound(LookupError):
    """A run or file the dashboard cannot show (HTTP 404)."""


def _ref(root: Path, ref: str) -> sources.RunRef:
    # Runs are named by id or directory name only: a path would let a page read any directory.
    if not _REF.fullmatch(ref):
        raise NotFound(f"{ref!r} is not a run id or run name")
    try:
        return sources.resolve_run(root, ref)
    except sources.RunNotFound as exc:
        raise NotFound(str(exc)) from exc


def runs(
    root: Path, status: str | None = None, variant: str | None = None, data: str | None = None
) -> list[dict[str, Any]]:
    """Exactly `sft runs --json` (same function, same arguments)."""
    return sources.list_runs(root, status, variant, data)


def run(root: Path, ref: str) -> dict[str, Any]:
    """Exactly `sft status <ref> --json`."""
    return sources.run_report(_ref(root, ref))


def series(root: Path, ref: str) -> dict[str, Any]:
    """Train loss, learning rate and eval loss by step from trainer_log.jsonl, resume duplicates dropped.

    The log is what a live run appends to; a finished run without one falls back to its metrics.
    """
    run_dir = _ref(root, ref).run_dir
    warnings: list[str] = []
    out: dict[str, Any] = {
        "train": {"step": [], "loss": [], "lr": []},
        "eval": {"step": [], "loss": []},
        "warnings": warnings,
        "source": TRAINER_LOG,
    }
    log = run_dir / TRAINER_LOG
    try:
        if log.is_file():
            lines = sources.read_trainer_log(log, warnings)[0]
            rows = [
                {
                    "step": ln["current_steps"],
                    "loss": ln.get("loss"),
                    "lr": ln.get("lr"),
                    "eval_loss": ln.get("eval_loss"),
                }
                for ln in lines
            ]
        else:
            out["source"] = "metrics"
            rows = [
                {
                    "step": r["step"],
                    "loss": r.get("loss"),
                    "lr": r.get("learning_rate"),
                    "eval_loss": r.get("eval_loss"),
                }
                for r in sources.extract_metrics(run_dir)["series"]
            ]
    except sources.MetricsError as exc:
        warnings.append(str(exc))
        return out
    for r in rows:
        if _num(r["loss"]):
            out["train"]["step"].append(r["step"])
            out["train"]["loss"].append(r["loss"])
            out["train"]["lr"].append(r["lr"] if _num(r["lr"]) else None)
        if _num(r["eval_loss"]):
            out["eval"]["step"].append(r["step"])
            out["eval"]["loss"].append(r["eval_loss"])
    return out


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def checkpoints(root: Path, ref: str) -> dict[str, Any]:
    """`sft checkpoints`' table with each row marked best / latest (latest = newest complete)."""
    result = sources.best_checkpoint(_ref(root, ref).run_dir)
    best = (result["best"] or {}).get("step")
    latest = (result["latest"] or {}).get("step")
    rows = [{**r, "best": r["step"] == best, "latest": r["step"] == latest} for r in result["checkpoints"]]
    return {"metric": result["metric"], "best_step": best, "latest_step": latest, "checkpoints": rows}


def events(root: Path, ref: str) -> dict[str, Any]:
    """The structured events log (events.jsonl); a damaged line is reported, not fatal."""
    run_dir = _ref(root, ref).run_dir
    try:
        return {"events": sources.read_events(run_dir), "error": None}
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {"events": [], "error": f"events.jsonl unreadable: {exc}"}


def _tail(path: Path, max_chars: int) -> tuple[str, bool]:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if size > max_chars:
            fh.seek(size - max_chars)
        data = fh.read()
    return data.decode("utf-8", errors="replace"), size > max_chars


def log_tail(root: Path, ref: str, lines: int = 200) -> dict[str, Any]:
    """The last `lines` lines of the run's console log (artifacts/logs/<run>_<time>.log), redacted."""
    run_ref = _ref(root, ref)
    name = (run_ref.entry or {}).get("log")
    if not name:
        return {"path": None, "text": "", "truncated": False}
    path = Path(name) if Path(name).is_absolute() else Path(root) / name
    if not path.is_file():
        return {"path": str(name), "text": "", "truncated": False, "error": "log file not found"}
    text, cut = _tail(path, MAX_TEXT)
    kept = text.splitlines()[-max(1, lines) :]
    return {
        "path": str(name),
        "text": sources.redact("\n".join(kept)),
        "truncated": cut or len(kept) < len(text.splitlines()),
    }


def _redact_config(text: str) -> str:
    """run_config.yaml is written redacted; redact again in case an older or foreign run was not."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return sources.redact(text)
    creds = (
        (((data or {}).get("runtime_info") or {}).get("input") or {}).get("credentials")
        if isinstance(data, dict)
        else None
    )
    if isinstance(creds, dict):
        for key, value in creds.items():
            if value:
                creds[key] = "<redacted>"
        text = yaml.safe_dump(data, sort_keys=False)
    return sources.redact(text)


def records(root: Path, ref: str) -> dict[str, Any]:
    """Resolved config, code diff, environment and dataset fingerprint of the run, and why it failed."""
    run_ref = _ref(root, ref)
    out: dict[str, Any] = {}
    for key, name in (
        ("config", RUN_CONFIG),
        ("code_diff", CODE_DIFF),
        ("environment", ENVIRONMENT),
        ("dataset", DATASET),
    ):
        path = run_ref.run_dir / name
        if not path.is_file():
            out[key] = None
            continue
        text, cut = (
            _tail(path, MAX_TEXT)
            if path.stat().st_size > MAX_TEXT
            else (path.read_text(encoding="utf-8", errors="replace"), False)
        )
        text = _redact_config(text) if key == "config" else sources.redact(text)
        out[key] = {"file": name, "text": text, "truncated": cut}
    entry = run_ref.entry or {}
    out["error"] = sources.redact(str(entry["error"])) if entry.get("error") else None
    return out
