"""YAML scalars that every reader (YAML 1.1 PyYAML, YAML 1.2 ruamel) reads back the same."""

from __future__ import annotations

import os
import re
from typing import Any


class YamlValueError(ValueError):
    """A value that has no plain YAML form (e.g. a datetime or an object)."""


# Plain scalars that a YAML 1.1 or 1.2 reader may resolve to bool/number/null/timestamp (quoted to be safe).
_YAML11_AMBIGUOUS = re.compile(r"^(?:(?i:y|n|yes|no|on|off|true|false|null|~)|[-+.0-9].*|=|<<)$", re.DOTALL)


def needs_quotes(value: str) -> bool:
    """True for a string some YAML reader (1.1 or 1.2) would take for a bool/number/null/date plain."""
    return bool(_YAML11_AMBIGUOUS.match(value)) and "\n" not in value



def plain_yaml_value(value: Any, where: str = "value") -> Any:
    """Plain YAML-representable values; paths become strings, anything else unknown is refused."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): plain_yaml_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_yaml_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise YamlValueError(f"{where}: cannot write a {type(value).__name__} value into YAML")
