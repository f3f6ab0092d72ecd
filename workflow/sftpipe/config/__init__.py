"""Load, default, validate and view config.yaml.

One schema (workflow/schemas/config.schema.yaml) is the source of truth for keys, types, enums,
defaults and descriptions; this module fills defaults from it, validates against it, then checks the
cross-field rules a schema cannot express. Every problem is reported at once, each naming its key
path and what was expected.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from ruamel.yaml import YAML

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
VARIANTS_DIR = Path("config/variants")
BASE_MODELS_DIR = Path("artifacts/base_models")
MODEL_ROOT = Path("artifacts/model")
LF_DATA_DIR = Path("artifacts/data/lf_data")
LOGS_DIR = Path("artifacts/logs")
INDEX_PATH = Path("artifacts/index.yaml")
CREDENTIAL_ENV = {"wandb_api_key": "WANDB_API_KEY", "hf_token": "HF_TOKEN"}
REDACTED = "<redacted>"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ConfigError(ValueError):
    """Raised with every problem found, one per line, each starting with its key path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    return YAML(typ="safe").load(SCHEMA_PATH.read_text())


def read_yaml(path: Path) -> dict[str, Any]:
    data = YAML(typ="safe").load(Path(path).read_text())
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
        shown = ", ".join(map(str, allowed)) if len(allowed) <= 12 else (
            ", ".join(map(str, allowed[:12])) + f", ... ({len(allowed)} in all)")
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
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_key_path(e)}: {_describe(e)}" for e in errors]


def _exists(root: Path, value: str) -> bool:
    return (root / value).exists()


def cross_field_problems(data: dict[str, Any], root: Path) -> list[str]:
    """Rules from the run contract that JSON Schema cannot express, plus on-disk checks."""
    problems: list[str] = []
    inp = data["runtime_info"]["input"]
    src, conv, model, train = inp["source"], inp["conversion"], inp["model"], inp["training"]
    infra = inp["infrastructure"]
    p = "runtime_info.input."

    if train["cutoff_len"] > 32768 and train.get("rope_scaling") != "yarn":
        problems.append(
            f"{p}training.rope_scaling: must be 'yarn' when cutoff_len ({train['cutoff_len']}) > 32768, "
            f"got {train.get('rope_scaling')!r}")

    kind = src["type"]
    if kind == "harbor_job":
        job_dir = src["job_dir"] or data["meta_info"]["dependencies"]["trajectories_dir"]
        if not job_dir:
            problems.append(f"{p}source.job_dir: required for source.type harbor_job "
                            "(or set meta_info.dependencies.trajectories_dir)")
        elif not (root / job_dir).is_dir():
            problems.append(f"{p}source.job_dir: Harbor job directory {job_dir!r} does not exist")
        excl = conv["exclude_repos_file"]
        if excl and not (root / excl).is_file():
            problems.append(f"{p}conversion.exclude_repos_file: file {excl!r} does not exist "
                            "(empty string disables repo exclusion)")
    elif kind == "hf_lf":
        if not src["hf_hub_url"]:
            problems.append(f"{p}source.hf_hub_url: required for source.type hf_lf")
    elif kind == "local_lf":
        if not src["lf_path"]:
            problems.append(f"{p}source.lf_path: required for source.type local_lf")
        elif not (root / src["lf_path"]).is_file():
            problems.append(f"{p}source.lf_path: file {src['lf_path']!r} does not exist")

    ds = train.get("deepspeed") or ""
    if ds and not (root / ds).is_file():
        problems.append(f"{p}training.deepspeed: DeepSpeed config {ds!r} does not exist")

    path = model["model_name_or_path"]
    if not (_exists(root, path) or is_buildable_demo_model(path) or _HUB_ID.match(path)):
        problems.append(f"{p}model.model_name_or_path: {path!r} is neither an existing directory, a "
                        f"path under {BASE_MODELS_DIR}/ (built locally), nor a Hub id (org/name)")

    if infra["accelerator"] == "cpu":
        if train.get("bf16"):
            problems.append(f"{p}training.bf16: must be false when infrastructure.accelerator is cpu")
        if train.get("flash_attn") == "fa2":
            problems.append(f"{p}training.flash_attn: fa2 needs CUDA; use auto/sdpa/disabled on cpu")
    for key in ("fp16",):
        if train.get(key) and train.get("bf16"):
            problems.append(f"{p}training.{key}: fp16 and bf16 are mutually exclusive")
    for secret in CREDENTIAL_ENV:
        if secret in train:
            problems.append(f"{p}training.{secret}: credentials belong in runtime_info.input.credentials")
    return problems


def config_warnings(data: dict[str, Any]) -> list[str]:
    """Legal but risky choices, reported by `sft validate` and the dry run."""
    train = data["runtime_info"]["input"]["training"]
    conv = data["runtime_info"]["input"]["conversion"]
    warnings = []
    if train.get("save_only_model"):
        warnings.append("runtime_info.input.training.save_only_model is true: checkpoints cannot be resumed")
    if train["template"].endswith("_nothink") and conv.get("reasoning") == "keep":
        warnings.append("conversion.reasoning is keep but the template is a *_nothink one: <think> text will "
                        "be trained verbatim; use template qwen3 for reasoning data")
    from sftpipe.runs.best import rotation_guard

    _, problems = rotation_guard(dict(train))
    warnings += [f"runtime_info.input.training: {p}" for p in problems]
    return warnings


def is_buildable_demo_model(path: str) -> bool:
    parts = Path(path).parts
    return len(parts) > len(BASE_MODELS_DIR.parts) and Path(*parts[:2]) == BASE_MODELS_DIR


def load_variant(root: Path, name: str) -> dict[str, Any]:
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
        problems += cross_field_problems(data, root)
    except (KeyError, TypeError, AttributeError):
        pass  # the schema problems above already explain the malformed part
    if problems:
        raise ConfigError(problems)
    return data


def load(path: Path | str = "config/config.yaml", root: Path | str = ".", variant: str | None = None
         ) -> RunConfig:
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


def stable_hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunConfig:
    """A validated config with the derived values every stage needs."""

    data: dict[str, Any]
    root: Path

    @property
    def inp(self) -> dict[str, Any]:
        return self.data["runtime_info"]["input"]

    @property
    def variant(self) -> str:
        return self.data.get("variant") or ""

    @property
    def source(self) -> dict[str, Any]:
        return self.inp["source"]

    @property
    def conversion(self) -> dict[str, Any]:
        return self.inp["conversion"]

    @property
    def training(self) -> dict[str, Any]:
        return self.inp["training"]

    @property
    def infrastructure(self) -> dict[str, Any]:
        return self.inp["infrastructure"]

    @property
    def experiment(self) -> dict[str, Any]:
        return self.inp["experiment"]

    @property
    def data_name(self) -> str:
        return self.conversion["data_name"]

    @property
    def job_dir(self) -> str:
        return self.source["job_dir"] or self.data["meta_info"]["dependencies"]["trajectories_dir"]

    @property
    def run_dir(self) -> Path:
        """Contract: relative output_dir → artifacts/model/<basename>; absolute → as-is."""
        out = self.training.get("output_dir") or self.default_run_name()
        path = Path(out)
        return path if path.is_absolute() else MODEL_ROOT / path.name

    @property
    def run_name(self) -> str:
        return self.run_dir.name

    def default_run_name(self) -> str:
        base = self.data_name
        return f"{base}-{self.variant}" if self.variant else base

    @property
    def tracking_name(self) -> str:
        return self.experiment["run_name"] or self.run_name

    @property
    def model_path(self) -> str:
        return self.inp["model"]["model_name_or_path"]

    def credential(self, key: str) -> str:
        """From the credentials block, else the environment; never logged by callers."""
        return self.inp["credentials"].get(key) or os.environ.get(CREDENTIAL_ENV[key], "")

    def config_hash(self) -> str:
        """Everything that defines the run, without secrets and without the written-back output."""
        inp = {k: v for k, v in self.inp.items() if k != "credentials"}
        return stable_hash({"input": inp, "variant": self.variant})

    def training_hash(self) -> str:
        """What a checkpoint depends on: resuming across a change of these would mix two runs."""
        keys = ("model", "training", "dataset")
        subset = {k: self.inp.get(k) for k in keys}
        subset["data_name"] = self.data_name
        subset["world"] = [self.infrastructure["n_nodes"], self.infrastructure["n_gpus_per_node"]]
        subset["training"] = {k: v for k, v in subset["training"].items()
                              if k not in ("save_steps", "logging_steps", "resume_from_checkpoint")}
        return stable_hash(subset)

    def registration_params(self) -> dict[str, Any]:
        """The inputs of `register`: a change here (and only here) re-registers."""
        return {"source": self.source, "data_name": self.data_name,
                "max_instances": self.conversion["max_instances"], "dataset": self.inp["dataset"]}
