"""The config schema (workflow/schemas/config.schema.yaml): the ONE source of keys, types, enums, defaults
and descriptions. Defaults are filled from it and documents validated against it; every problem names its key path.
"""

from __future__ import annotations

import copy
import difflib
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from ruamel.yaml import YAML

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
# LLaMA-Factory's own argument names (its HfArgumentParser dataclasses), for checking pass-through keys.
LF_KEYS_PATH = SCHEMA_PATH.with_name("lf_argument_keys.txt")


class ConfigError(ValueError):
    """Raised with every problem found, one per line, each starting with its key path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The parsed schema (cached)."""
    return YAML(typ="safe").load(SCHEMA_PATH.read_text())


def apply_defaults(data: Any, schema: dict[str, Any]) -> Any:
    """Fill schema defaults into mappings, recursing into present (or defaulted) sub-objects."""
    if not isinstance(data, dict) or "properties" not in schema:
        return data
    for key, sub in schema["properties"].items():
        if key not in data and "default" in sub:
            data[key] = copy.deepcopy(sub["default"])
        if key in data:
            data[key] = apply_defaults(data[key], sub)
    return data


def _key_path(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "enum":
        allowed = error.validator_value
        shown = (
            ", ".join(map(str, allowed))
            if len(allowed) <= 12
            else (", ".join(map(str, allowed[:12])) + f", ... ({len(allowed)} in all)")
        )
        return f"expected one of [{shown}], got {error.instance!r}"
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return f"unknown key(s) {', '.join(hints)}; allowed: {', '.join(known)}"
    if error.validator == "required":
        return f"missing required key: {error.message.split(' ')[0]}"
    if error.validator == "const":
        return f"must be {error.validator_value!r}, got {error.instance!r}"
    return error.message


def schema_problems(data: dict[str, Any]) -> list[str]:
    """Every JSON-schema violation of `data` as 'key.path: message', sorted by key path; [] when valid."""
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_key_path(e)}: {_describe(e)}" for e in errors]


@lru_cache(maxsize=1)
def lf_argument_keys() -> frozenset[str]:
    """Every argument LLaMA-Factory's training parser accepts (kept in sync by a test)."""
    return frozenset(line.strip() for line in LF_KEYS_PATH.read_text().splitlines() if line.strip())


def defaults_of(*path: str) -> dict[str, Any]:
    """The schema defaults of the section at `path` (e.g. "runtime_info", "input", "conversion")."""
    node = load_schema()
    for key in path:
        node = node["properties"][key]
    return apply_defaults({}, node)


def did_you_mean(key: str, known: list[str] | frozenset[str]) -> str:
    """` (did you mean 'x'?)` for the closest known key, else ''."""
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
