"""Credential redaction for every text a record writes: registered values, secret-named env vars, `key: value`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "<redacted>"
# Names of secrets (env vars, config keys): api keys, auth tokens, passwords; not tokenizer words.
SECRET_NAME = re.compile(
    r"(api[_-]?key|access[_-]?key|private[_-]?key|(?:^|[_.-])(?:hf|wandb|auth|access|api|github|gh|hub|bearer|"
    r"hugging_face_hub|huggingface|refresh|session|slack)[_-]?token$|^token$|secret|password|passwd|credential)",
    re.IGNORECASE,
)
# `wandb_api_key: abc`, `HF_TOKEN=abc`, `"hf_token": "abc"` (in diffs, logs): mask the value.
_SECRET_ASSIGN = re.compile(
    r"""(?P<key>["']?[\w.-]*(?:api[_-]?key|access[_-]?key|(?:hf|wandb|auth|api|hub|bearer)[_-]?token|secret|"""
    r"""password|passwd)["']?\s*[:=]\s*)(?P<val>["']?[^\s"',}]+["']?)""",
    re.IGNORECASE,
)
_EMPTY_VALUES = {'""', "''", "null", "~", "none", "None", REDACTED, f'"{REDACTED}"', f"'{REDACTED}'"}
_registered: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Add values (credentials of this run) that every record of this process must redact."""
    _registered.update(v for v in values if isinstance(v, str) and len(v) >= 4)


def secret_values() -> set[str]:
    """Registered credentials plus values of secret-named environment variables."""
    env = {v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 8}
    return _registered | env


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every known secret value (plus `secrets`) and the value of every non-empty
    secret-named assignment replaced by REDACTED."""
    values = sorted(secret_values() | set(secrets or ()), key=len, reverse=True)
    for value in values:
        text = text.replace(value, REDACTED)

    def mask(m: re.Match[str]) -> str:
        return m.group(0) if m.group("val") in _EMPTY_VALUES else m.group("key") + REDACTED

    return _SECRET_ASSIGN.sub(mask, text)


def redact_obj(obj: Any) -> Any:
    """A redacted copy of a JSON-like object (non-JSON values become strings)."""
    return json.loads(redact(json.dumps(obj, default=str)))
