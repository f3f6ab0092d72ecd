"""YAML scalars that every reader (YAML 1.1 PyYAML, YAML 1.2 ruamel) reads back the same."""

from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.representer import RoundTripRepresenter


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


class Yaml11SafeRepresenter(RoundTripRepresenter):
    """Floats and nulls that YAML 1.1 readers (PyYAML, used by Snakemake) read back the same."""


def _represent_float(rep: RoundTripRepresenter, value: float) -> Any:
    if math.isnan(value):
        text = ".nan"
    elif math.isinf(value):
        text = ".inf" if value > 0 else "-.inf"
    else:
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        if exponent and exponent[0] not in "+-":
            exponent = "+" + exponent
        text = mantissa + ("e" + exponent if exponent else "")
    return rep.represent_scalar("tag:yaml.org,2002:float", text)


def _represent_str(rep: RoundTripRepresenter, value: str) -> Any:
    if needs_quotes(value):
        return rep.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return rep.represent_str(value)


Yaml11SafeRepresenter.add_representer(float, _represent_float)
Yaml11SafeRepresenter.add_representer(str, _represent_str)
Yaml11SafeRepresenter.add_representer(
    type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
)


def dump_yaml11(data: Any) -> str:
    """Block-style YAML that YAML 1.1 readers (PyYAML, OmegaConf: LLaMA-Factory) read back to the same values:
    strings such as `no`, `on` or `1e-5` are quoted."""
    yaml = YAML(typ="rt")
    yaml.Representer = Yaml11SafeRepresenter
    yaml.default_flow_style = False
    yaml.width = 4096
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


def read_yaml_mapping(path: Path | str) -> dict[str, Any]:
    """A YAML file's top-level mapping; {} when it is missing, unreadable or not a mapping (records, not config)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}
