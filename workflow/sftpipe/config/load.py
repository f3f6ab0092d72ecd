"""Read config.yaml and its variants, merge, fill defaults, validate: one complete, checked dict."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from sftpipe.config.rules import cross_field_problems, unknown_training_keys
from sftpipe.config.run_config import RunConfig
from sftpipe.config.schema import ConfigError, apply_defaults, load_schema, schema_problems
from sftpipe.paths import DEFAULT_CONFIG, VARIANTS_DIR
from sftpipe.util.redact import REDACTED


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping; a syntax error is one ConfigError line with file, line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file does not exist"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read ({exc})"]) from None
    try:
        data = YAML(typ="safe").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError([f"{where}: not valid YAML: {what}"]) from None
    except YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {str(exc).splitlines()[0]}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping at the top level, got {type(data).__name__}"])
    return data


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides win; mappings merge key by key; anything else (lists too) is replaced."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_variant(root: Path, name: str) -> dict[str, Any]:
    """The overrides of config/variants/<name>.yaml; ConfigError for a bad name, a missing file
    or a variant that sets runtime_info.output."""
    path = root / VARIANTS_DIR / f"{name}.yaml"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ConfigError([f"variant: {name!r} is not a valid variant name"])
    if not path.is_file():
        raise ConfigError([f"variant: {path} does not exist"])
    overrides = read_yaml(path)
    if "output" in overrides.get("runtime_info", {}):
        raise ConfigError([f"{path}: runtime_info.output is written by the pipeline, not set by a variant"])
    return overrides


def resolve(raw: dict[str, Any], root: Path | str = ".", variant: str | None = None) -> dict[str, Any]:
    """Variant merge + defaults + schema + cross-field checks. Returns a new, complete dict."""
    root = Path(root)
    data = copy.deepcopy(raw)
    name = variant if variant is not None else (data.get("variant") or "")
    if name:
        data = deep_merge(data, load_variant(root, name))
    data["variant"] = name
    apply_defaults(data, load_schema())
    problems = schema_problems(data)
    try:
        problems += unknown_training_keys(data["runtime_info"]["input"]["training"])
        problems += cross_field_problems(data, root)
    except (KeyError, TypeError, AttributeError):
        pass  # the schema problems above already explain the malformed part
    if problems:
        raise ConfigError(problems)
    return data


def load(path: Path | str = DEFAULT_CONFIG, root: Path | str = ".", variant: str | None = None) -> RunConfig:
    """Read, resolve and validate the run profile at `root`/`path` (with `variant` applied)."""
    return RunConfig(resolve(read_yaml(Path(root) / path), root, variant), Path(root))


def redacted(data: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to write anywhere: every credential value replaced."""
    out = copy.deepcopy(data)
    creds = out.get("runtime_info", {}).get("input", {}).get("credentials")
    if isinstance(creds, dict):
        for key, value in creds.items():
            if value:
                creds[key] = REDACTED
    return out
