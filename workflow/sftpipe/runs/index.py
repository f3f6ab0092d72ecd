"""The run history, ``artifacts/index.yaml``: a YAML list, one entry per run, newest last.

Entries have a fixed field order so diffs stay readable. The index is read and written with PyYAML's libyaml
bindings (YAML 1.1, fast on long histories; strings such as times are quoted). Every write happens under an exclusive
``fcntl`` lock on a sidecar ``<index>.lock`` file and replaces the index atomically (temp file in
the same directory, fsync, ``os.replace``), so readers never see a half-written file and writers
from many processes never lose an entry. An update re-renders only its own entry's lines: the
header comment and every other entry keep their exact bytes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sftpipe.runs.ending import ACTIVE_STATUSES, STATUSES
from sftpipe.util.fs import atomic_write_bytes, file_lock
from sftpipe.util.timefmt import utc_now
from sftpipe.util.yamltext import YamlValueError, needs_quotes, plain_yaml_value

FIELDS = (
    "id",
    "block",
    "variant",
    "status",
    "exit_code",
    "run_dir",
    "log",
    "started_at",
    "last_updated",
    "completed_at",
    "config_hash",
    "git_commit",
    "data_name",
    "checkpoint_path",
    "best_checkpoint",
    "final_loss",
    "tokens_per_second_per_gpu",
    "mfu",
    "slurm_job_id",
    "slurm_nodes",
    "slurm_restart_count",
    "requeue",
    "records",
    "error",
)
TIME_FIELDS = ("started_at", "last_updated", "completed_at")
HEADER = "# Run history: one entry per run, newest last (written by sftpipe.runs.index; times UTC).\n"
_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RunIndexError(RuntimeError):
    """An invalid entry or an index file that cannot be read; nothing was written."""


def _validate(entry: dict[str, Any]) -> dict[str, Any]:
    unknown = set(entry) - set(FIELDS)
    if unknown:
        raise RunIndexError(
            f"unknown run-index fields: {', '.join(sorted(unknown))} (allowed: {', '.join(FIELDS)})"
        )
    status = entry.get("status")
    if status not in STATUSES:
        raise RunIndexError(f"status {status!r} is not one of {', '.join(sorted(STATUSES))}")
    for name in TIME_FIELDS:
        value = entry.get(name)
        if value is not None and not (isinstance(value, str) and _TIME_RE.match(value)):
            raise RunIndexError(f"{name} {value!r} is not UTC ISO 8601 with Z (e.g. {utc_now()})")
    if not isinstance(entry.get("id"), str) or not entry["id"]:
        raise RunIndexError("an entry needs a non-empty string id")
    code = entry.get("exit_code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise RunIndexError(f"exit_code {code!r} is not an integer")
    try:
        return {name: plain_yaml_value(entry.get(name), name) for name in FIELDS}
    except YamlValueError as exc:  # e.g. a datetime from an unquoted hand-edited time
        raise RunIndexError(str(exc)) from exc


class _EntryDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Multi-line strings (error tails) as literal blocks, readable in the index."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else "'" if needs_quotes(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_EntryDumper.add_representer(str, _represent_str)


def render_entry(entry: dict[str, Any]) -> str:
    """One validated entry as a YAML list item, fields in FIELDS order."""
    return yaml.dump(
        [_validate(entry)],
        Dumper=_EntryDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
        indent=2,
    )


def _parse(index_path: Path, text: str) -> list[dict[str, Any]]:
    """Entries of an index text; libyaml's C parser keeps this fast on long histories."""
    try:
        doc = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        raise RunIndexError(f"{index_path}: not valid YAML: {exc}") from exc
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise RunIndexError(f"{index_path}: expected a block-style YAML list of run entries")
    for i, item in enumerate(doc):
        if not isinstance(item, dict) or "id" not in item:
            raise RunIndexError(f"{index_path}: entry {i + 1} is not a mapping with an id")
    return doc


def _load(index_path: Path) -> tuple[str, list[dict[str, Any]], list[int]]:
    """(text, entries, first line of each entry). Entries are block list items at column 0."""
    try:
        text = index_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "", [], []
    entries = _parse(index_path, text)
    starts = [n for n, line in enumerate(text.split("\n")) if line.startswith("- ") or line.rstrip() == "-"]
    if len(starts) != len(entries):
        raise RunIndexError(
            f"{index_path}: {len(entries)} entries but {len(starts)} '- ' item lines at "
            "column 0; not the layout this module writes (fix it by hand)"
        )
    return text, entries, starts


def _next_id(doc: list[dict[str, Any]]) -> str:
    numbers = [int(m.group(1)) for item in doc if (m := re.fullmatch(r"run_(\d+)", str(item["id"])))]
    return f"run_{max(numbers, default=0) + 1:03d}"


def append_entry(index_path: Path, entry: dict[str, Any]) -> str:
    """Append a run entry (id run_NNN assigned when absent); return its id."""
    index_path = Path(index_path)
    with file_lock(index_path):
        text, doc, _ = _load(index_path)
        entry = {"block": "sft", **entry}
        entry.setdefault("id", _next_id(doc))
        entry.setdefault("last_updated", utc_now())
        if any(item["id"] == entry["id"] for item in doc):
            raise RunIndexError(f"{index_path}: run id {entry['id']!r} already exists")
        block = render_entry(entry)
        if not text:
            text = HEADER
        elif not text.endswith("\n"):
            text += "\n"
        atomic_write_bytes(index_path, (text + block).encode())
        return entry["id"]


def _is_filler(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def update_entry(index_path: Path, run_id: str, **fields: Any) -> dict[str, Any]:
    """Change fields of one entry (last_updated refreshed; completed_at stamped when the status
    becomes terminal); only that entry's lines are rewritten. Returns the updated entry."""
    index_path = Path(index_path)
    with file_lock(index_path):
        text, doc, starts = _load(index_path)
        matches = [i for i, item in enumerate(doc) if item["id"] == run_id]
        if len(matches) != 1:
            raise RunIndexError(f"{index_path}: run id {run_id!r} found {len(matches)} times, expected once")
        i = matches[0]
        current = doc[i]
        unknown = set(current) - set(FIELDS)
        if unknown:
            raise RunIndexError(f"{index_path}: entry {run_id!r} has unknown fields {sorted(unknown)}")
        updated = current | fields
        if "last_updated" not in fields:
            updated["last_updated"] = utc_now()
        if (
            updated.get("status") not in ACTIVE_STATUSES
            and updated.get("status") != "unknown"
            and updated.get("completed_at") is None
            and "completed_at" not in fields
        ):
            updated["completed_at"] = updated["last_updated"]
        if updated["id"] != run_id:
            raise RunIndexError("update_entry cannot change a run's id")
        block = render_entry(updated)
        lines = [line + "\n" for line in text.split("\n")]
        lines[-1] = lines[-1][:-1]
        start = starts[i]
        end = starts[i + 1] if i + 1 < len(starts) else len(lines)
        while end - 1 > start and _is_filler(lines[end - 1]):  # comments after an entry stay put
            end -= 1
        if end == len(lines) and lines[-1] and not lines[-1].endswith("\n"):
            block = block.rstrip("\n")
        new_text = "".join(lines[:start]) + block + "".join(lines[end:])
        expected = list(doc)
        expected[i] = _validate(updated)
        if _parse(index_path, new_text) != expected:
            raise RunIndexError(
                f"{index_path}: rewriting entry {run_id!r} would change other entries; not written"
            )
        atomic_write_bytes(index_path, new_text.encode())
        return expected[i]


def read_entries(index_path: Path) -> list[dict[str, Any]]:
    """All entries, oldest first, as plain dicts (empty when the index does not exist yet)."""
    return _load(Path(index_path))[1]


def find_entry(index_path: Path, run_id: str) -> dict[str, Any] | None:
    return next((e for e in read_entries(index_path) if e["id"] == run_id), None)
