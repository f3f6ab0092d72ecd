"""JSON for the Data page: datasets under artifacts/data, their reports, a sample browser, the token view.

Files read (written by `sft convert`): `<data>.report.json`, `<data>.stats.json`, `<data>.im.jsonl`
(line i = LF row i) and `lf_data/<data>.json`. Nothing is written; samples are parsed once per file
version (path, size, mtime) and kept in memory.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from sftpipe.config import ConfigError, RunConfig, load, stable_hash
from sftpipe.paths import LF_DATA_DIR, VARIANTS_DIR

DATA_DIR = LF_DATA_DIR.parent
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Trial statuses that are a choice of the conversion (filters, limits); any other non-kept status means the
# trial's files were broken or unreadable: "damaged".
POLICY_SKIPS = frozenset(
    {
        "excluded_repo",
        "no_reward",
        "not_selected",
        "over_max_instances",
        "over_max_trials_per_instance",
        "below_min_score",
        "subagent_excluded",
        "over_length",
        "incomplete",
        "unknown_scaffold",
    }
)
SAMPLE_STATES = ("kept", "skipped", "damaged")
_CHECKS: dict[tuple[Any, ...], dict[str, Any]] = {}


class DataNotFound(LookupError):
    """A dataset or sample that is not there (HTTP 404)."""


class DataUnavailable(RuntimeError):
    """The dataset exists but this view cannot be computed (no config for it, no inspector)."""


def _name(name: str) -> str:
    if not _NAME.fullmatch(name) or name == "dataset_info":
        raise DataNotFound(f"{name!r} is not a dataset name")
    return name


def _read_json(path: Path) -> tuple[Any, str | None]:
    if not path.is_file():
        return None, None
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path.name}: unreadable ({exc})"


def datasets(root: Path) -> list[dict[str, Any]]:
    """Every dataset with any conversion output, sorted by name."""
    base = Path(root) / DATA_DIR
    names = {p.name[: -len(".report.json")] for p in base.glob("*.report.json")}
    names |= {p.name[: -len(".stats.json")] for p in base.glob("*.stats.json")}
    names |= {p.stem for p in (Path(root) / LF_DATA_DIR).glob("*.json") if p.stem != "dataset_info"}
    out = []
    for name in sorted(n for n in names if _NAME.fullmatch(n)):
        files = _files(root, name)
        out.append({"name": name, **{f"has_{k}": v.is_file() for k, v in files.items()}})
    return out


def _files(root: Path, name: str) -> dict[str, Path]:
    base = Path(root) / DATA_DIR
    return {
        "report": base / f"{name}.report.json",
        "stats": base / f"{name}.stats.json",
        "im": base / f"{name}.im.jsonl",
        "lf": Path(root) / LF_DATA_DIR / f"{name}.json",
    }


def dataset(root: Path, name: str) -> dict[str, Any]:
    """The conversion report and stats of one dataset (None where a file is absent)."""
    files = _files(root, _name(name))
    if not any(p.is_file() for p in files.values()):
        raise DataNotFound(f"no dataset {name!r} under {DATA_DIR}")
    report, problem_r = _read_json(files["report"])
    stats, problem_s = _read_json(files["stats"])
    if isinstance(report, dict):
        report = {k: v for k, v in report.items() if k != "trial_details"}  # the sample browser shows those
    return {
        "name": name,
        "report": report,
        "stats": stats,
        "problems": [p for p in (problem_r, problem_s) if p],
    }


def _version(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


@lru_cache(maxsize=8)
def _im_records(version: tuple[str, int, int]) -> tuple[list[dict[str, Any]], list[str]]:
    records, problems = [], []
    with open(version[0], encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"line {lineno}: not JSON ({exc.msg})")
                rec = {}
            records.append(rec if isinstance(rec, dict) else {})
    return records, problems


@lru_cache(maxsize=8)
def _lf_rows(version: tuple[str, int, int]) -> list[Any]:
    data = json.loads(Path(version[0]).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise DataUnavailable(f"{Path(version[0]).name}: not a JSON list of rows")
    return data


def _score(rec: dict[str, Any]) -> float | None:
    score = ((rec.get("meta_info") or {}).get("unique_info") or {}).get("_score")
    value = score.get("composite_score") if isinstance(score, dict) else score
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _summary(index: int, rec: dict[str, Any], trial: dict[str, Any] | None) -> dict[str, Any]:
    meta = rec.get("meta_info") or {}
    unique = meta.get("unique_info") or {}
    messages = rec.get("messages") if isinstance(rec.get("messages"), list) else []
    return {
        "index": index,
        "state": "kept",
        "trial_name": meta.get("trial_name"),
        "instance_id": unique.get("_instance_id"),
        "scaffold": meta.get("scaffold"),
        "agent_type": unique.get("_agent_type"),
        "score": _score(rec),
        "messages": len(messages),
        "assistant_turns": sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant"),
        "reader_issues": (trial or {}).get("reader_issues") or {},
        "reason": None,
    }


def all_samples(root: Path, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """One summary per written row (kept) and per trial that wrote none (skipped or damaged)."""
    files = _files(root, _name(name))
    report, problem = _read_json(files["report"])
    problems = [problem] if problem else []
    trials = {t.get("trial_name"): t for t in (report or {}).get("trial_details", []) if isinstance(t, dict)}
    rows: list[dict[str, Any]] = []
    if files["im"].is_file():
        records, bad = _im_records(_version(files["im"]))
        problems += [f"{files['im'].name} {b}" for b in bad]
        for i, rec in enumerate(records):
            rows.append(_summary(i, rec, trials.get((rec.get("meta_info") or {}).get("trial_name"))))
    for trial in trials.values():
        status = str(trial.get("status"))
        if status == "kept":
            continue
        rows.append(
            {
                "index": None,
                "state": "skipped" if status in POLICY_SKIPS else "damaged",
                "trial_name": trial.get("trial_name"),
                "instance_id": trial.get("instance_id"),
                "scaffold": trial.get("scaffold"),
                "agent_type": None,
                "score": None,
                "messages": 0,
                "assistant_turns": 0,
                "reader_issues": trial.get("reader_issues") or {},
                "reason": status + (f": {trial['detail']}" if trial.get("detail") else ""),
            }
        )
    return rows, problems


def samples(
    root: Path,
    name: str,
    state: str | None = None,
    scaffold: str | None = None,
    agent_type: str | None = None,
    min_score: float | None = None,
    max_score: float | None = None,
    offset: int = 0,
    limit: int = 100,
) -> dict[str, Any]:
    """The sample browser: summaries filtered by state, scaffold, agent type and score range."""
    if state is not None and state not in SAMPLE_STATES:
        raise ValueError(f"state must be one of {', '.join(SAMPLE_STATES)}")
    rows, problems = all_samples(root, name)
    facets = {
        "state": sorted({r["state"] for r in rows}),
        "scaffold": sorted({r["scaffold"] for r in rows if r["scaffold"]}),
        "agent_type": sorted({r["agent_type"] for r in rows if r["agent_type"]}),
    }
    picked = [
        r
        for r in rows
        if (state is None or r["state"] == state)
        and (scaffold is None or r["scaffold"] == scaffold)
        and (agent_type is None or r["agent_type"] == agent_type)
        and (min_score is None or (r["score"] is not None and r["score"] >= min_score))
        and (max_score is None or (r["score"] is not None and r["score"] <= max_score))
    ]
    offset, limit = max(0, offset), max(0, limit)
    return {
        "total": len(rows),
        "matched": len(picked),
        "offset": offset,
        "facets": facets,
        "samples": picked[offset : offset + limit],
        "problems": problems,
    }


def sample(root: Path, name: str, index: int) -> dict[str, Any]:
    """Written row `index`: its IM record (messages with tool calls, score, metadata) and its LF row."""
    files = _files(root, _name(name))
    out: dict[str, Any] = {"index": index, "im": None, "lf": None}
    if files["im"].is_file():
        records = _im_records(_version(files["im"]))[0]
        if 0 <= index < len(records):
            out["im"] = records[index]
    out["lf"] = _lf_row(root, name, index)
    if out["im"] is None and out["lf"] is None:
        raise DataNotFound(f"dataset {name!r} has no sample {index}")
    return out


def _lf_row(root: Path, name: str, index: int) -> dict[str, Any] | None:
    path = _files(root, name)["lf"]
    if not path.is_file():
        return None
    try:
        rows = _lf_rows(_version(path))
    except (ValueError, OSError) as exc:  # unreadable or not JSON
        raise DataUnavailable(f"{path.name}: {exc}") from exc
    return rows[index] if 0 <= index < len(rows) and isinstance(rows[index], dict) else None


def config_for(root: Path, name: str) -> RunConfig:
    """The config that trains on `name`: the active profile, else the first variant with that data_name."""
    root = Path(root)
    problems = []
    candidates: list[str | None] = [None] + sorted(
        p.name[:-5] for p in (root / VARIANTS_DIR).glob("*.yaml") if not p.name.endswith(".output.yaml")
    )
    for variant in candidates:
        try:
            cfg = load(root=root, variant=variant)
        except (ConfigError, OSError, ValueError) as exc:
            problems.append(f"{variant or 'base'}: {exc}")
            continue
        if cfg.data_name == name:
            return cfg
    raise DataUnavailable(
        f"no config (config/config.yaml or a variant) has data_name {name!r}"
        + (f"; invalid: {'; '.join(problems)}" if problems else "")
    )


def _inspect():  # the token view and checks live in the data layer (sftpipe.data.inspect)
    try:
        from sftpipe.data import inspect
    except ImportError as exc:
        raise DataUnavailable(f"token inspection is not available: {exc}") from exc
    return inspect


def tokens(root: Path, name: str, index: int) -> dict[str, Any]:
    """LF row `index` as training sees it: LF's template and tokenizer, trained/masked tokens, cutoff."""
    row = _lf_row(root, _name(name), index)
    if row is None:
        raise DataNotFound(f"dataset {name!r} has no LF row {index}")
    inspect = _inspect()
    try:
        return inspect.render_sample(config_for(root, name), row)
    except (inspect.RenderError, inspect.InspectError) as exc:  # LF would drop or crash on this row
        raise DataUnavailable(f"sample {index}: {exc}") from exc


def checks(root: Path, name: str) -> dict[str, Any]:
    """The dataset checks over every LF row (`sft inspect NAME --json`)."""
    path = _files(root, _name(name))["lf"]
    if not path.is_file():
        raise DataNotFound(f"dataset {name!r} has no {LF_DATA_DIR}/{name}.json")
    cfg = config_for(root, name)
    try:
        version = _version(path)
        rows = _lf_rows(version)
    except (ValueError, OSError) as exc:
        raise DataUnavailable(f"{path.name}: {exc}") from exc
    key = (version, stable_hash(cfg.data))
    if key not in _CHECKS:  # every row goes through LF's tokenizer: compute once per file and config
        inspect = _inspect()
        if len(_CHECKS) >= 8:
            _CHECKS.clear()
        try:
            _CHECKS[key] = inspect.inspect_dataset(cfg, list(rows))
        except inspect.InspectError as exc:
            raise DataUnavailable(str(exc)) from exc
    return _CHECKS[key]
