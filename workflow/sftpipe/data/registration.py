"""Register data_name in LLaMA-Factory's dataset_info.json (merge; other datasets are preserved)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sftpipe.config import RunConfig
from sftpipe.paths import LF_DATA_DIR
from sftpipe.util.fs import atomic_write_json, file_lock

SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system", "tools": "tools"}


class RegistrationError(RuntimeError):
    """The dataset cannot be registered (unknown source type, unreadable file)."""


def dataset_entry(cfg: RunConfig, dataset_dir: Path | None = None) -> dict[str, Any]:
    """The dataset_info.json entry for this config's source (contract: 'derived from data_name').

    File names are relative to `dataset_dir` (the directory of dataset_info.json; default artifacts/data/lf_data).
    """
    dataset_dir = Path(dataset_dir) if dataset_dir is not None else cfg.root / LF_DATA_DIR
    src, overrides = cfg.source, cfg.inp["dataset"]
    entry: dict[str, Any]
    if src["type"] == "harbor_job":
        entry = {"file_name": f"{cfg.data_name}.json"}
    elif src["type"] == "local_lf":
        # Relative to dataset_dir when inside the project, so a checkout can move; else absolute.
        lf_path = (cfg.root / src["lf_path"]).resolve()
        lf_dir = dataset_dir.resolve()
        try:
            lf_path.relative_to(cfg.root.resolve())
            entry = {"file_name": os.path.relpath(lf_path, lf_dir)}
        except ValueError:
            entry = {"file_name": str(lf_path)}
    elif src["type"] == "hf_lf":
        entry = {"hf_hub_url": src["hf_hub_url"], "split": src["hf_split"]}
        if src["hf_subset"]:
            entry["subset"] = src["hf_subset"]
    else:  # the schema enum makes this unreachable; fail loudly if it ever changes
        raise RegistrationError(f"unknown source.type {src['type']!r}")
    entry["formatting"] = overrides.get("formatting", "sharegpt")
    if entry["formatting"] == "sharegpt":
        entry["columns"] = dict(overrides.get("columns") or SHAREGPT_COLUMNS)
        if overrides.get("tags"):
            entry["tags"] = dict(overrides["tags"])
    elif overrides.get("columns"):
        entry["columns"] = dict(overrides["columns"])
    if cfg.conversion["max_instances"] > 0 and src["type"] != "harbor_job":
        entry["num_samples"] = cfg.conversion["max_instances"]
    return entry


def count_rows(path: Path) -> int:
    """Rows in a JSON array or JSONL file; raises RegistrationError naming the file when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistrationError(f"cannot read dataset file {path}: {exc}") from exc
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            rows = json.loads(text)
            return len(rows)
        return sum(
            1 for n, line in enumerate(text.splitlines(), 1) if line.strip() and json.loads(line) is not None
        )
    except json.JSONDecodeError as exc:
        raise RegistrationError(f"dataset file {path} is not valid JSON/JSONL: {exc}") from exc


def merge_entry(dataset_info: Path, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Insert/replace one entry under a lock; a corrupt dataset_info.json is an error, never overwritten."""
    with file_lock(dataset_info):
        existing: dict[str, Any] = {}
        if dataset_info.exists():
            try:
                existing = json.loads(dataset_info.read_text(encoding="utf-8") or "{}")
            except json.JSONDecodeError as exc:
                raise RegistrationError(
                    f"{dataset_info} is not valid JSON ({exc}); fix or move it - refusing to overwrite it, "
                    "it may hold other datasets' registrations"
                ) from exc
            if not isinstance(existing, dict):
                raise RegistrationError(f"{dataset_info} must hold a JSON object of dataset entries")
        existing[name] = entry
        atomic_write_json(dataset_info, existing)
    return existing


def register(cfg: RunConfig, dataset_info: Path, marker: Path) -> dict[str, Any]:
    """Register cfg's dataset; write `marker` (the Snakemake output) with the entry and row count."""
    entry = dataset_entry(cfg, Path(dataset_info).parent)
    rows = None
    if "file_name" in entry:
        data_file = (Path(dataset_info).parent / entry["file_name"]).resolve()
        if not data_file.is_file():
            raise RegistrationError(f"dataset file {data_file} for {cfg.data_name!r} does not exist")
        rows = count_rows(data_file)
        if rows == 0:
            raise RegistrationError(f"dataset file {data_file} has no rows")
    merge_entry(dataset_info, cfg.data_name, entry)
    record = {"data_name": cfg.data_name, "entry": entry, "rows": rows}
    if rows is not None and entry.get("num_samples", 0) > rows:
        record["warning"] = f"num_samples {entry['num_samples']} > {rows} rows: LF samples with replacement"
    atomic_write_json(marker, record)
    return record
