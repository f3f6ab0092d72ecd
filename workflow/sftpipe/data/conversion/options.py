"""Conversion options, with the config schema as the one source of their defaults and choices.

`ConversionOptions` is what `convert_job` runs with. The pipeline (`sft convert-config`), `sft dryrun`
and a bare `sft convert` all build it from the `conversion` section of workflow/schemas/config.schema.yaml
(defaults and enums), so the three cannot drift apart; tests assert the dataclass defaults match too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sftpipe.config import load_schema
from sftpipe.data.conversion.harbor_job import ExceptionPolicy, Selection
from sftpipe.data.conversion.lf_format import Reasoning, ToolErrorPolicy

if TYPE_CHECKING:
    from sftpipe.config import RunConfig

OverCutoff = Literal["drop", "keep"]
DamagedTrialPolicy = Literal["skip", "salvage"]
# Template a bare `sft convert` measures with and resolves `reasoning: auto` against: the Qwen3 chat
# template of the shipped config (training.template has no schema default: it is required there).
DEFAULT_TEMPLATE = "qwen3"


@dataclass
class ConversionOptions:
    """Every choice of one conversion; defaults equal the schema's (a test checks)."""

    scaffold: str = "auto"
    """Scaffold key (claude-code | open-code | openhands-sdk | terminus2) or "auto": per trial from its agent name."""
    selection: Selection = "resolved"
    """resolved (reward >= 1.0) | unresolved (a reward below 1.0) | all (any trial with a reward)."""
    exception_policy: ExceptionPolicy = "keep_if_rewarded"
    """Trials with exception_info AND a reward: keep_if_rewarded (the verifier judged them) | drop."""
    max_instances: int = 0
    """> 0: keep the first N instances (conversion order) that yield rows; 0: all."""
    max_trials_per_instance: int = 0
    """> 0: at most this many trials (with rows) per instance; 0: every selected trial."""
    exclude_repos_file: str = ""
    """owner/repo list (`#` comments, case-insensitive) whose instances are skipped; "" disables."""
    keep_subagents: bool = False
    """Write sub-agent conversations (tagged _agent_type=subagent) as samples too."""
    on_damaged_trial: DamagedTrialPolicy = "skip"
    """A trial with a structurally invalid record/file: skip (no rows, status damaged) | salvage (its longest
    valid part, status salvaged, rows flagged `_damaged` in IM metadata)."""
    keep_lossy_fallback: bool = False
    """Keep ATIF-fallback rows of tool-calling scaffolds that lack the system prompt or tool schemas."""
    min_score: float = 0.0
    """Drop main-agent rows whose composite quality score is below this (sub-agents are not scored)."""
    reasoning: Reasoning = "keep"
    """keep: reasoning as a "<think>\\n...\\n</think>\\n\\n" prefix (train with template qwen3) | drop."""
    tool_error_policy: ToolErrorPolicy = "keep"
    """keep failed calls and their errors | drop them together with the assistant turn that made them."""
    over_cutoff: OverCutoff = "drop"
    """Rows longer than cutoff_len tokens: drop (counted) | keep (LF truncates them; counted in stats)."""
    cutoff_len: int = 131072
    """Token limit matching training.cutoff_len."""
    tokenizer_path: str = ""
    """Tokenizer dir/name for token lengths; "" skips measuring (and the over_cutoff policy)."""
    template: str = "qwen3"
    """LF template used for measuring (training.template)."""
    enable_thinking: bool | None = True
    """LF data arg for reasoning templates, as in training (affects the measured length only)."""
    workers: int = 0
    """Worker processes; 0 = automatic (one per core, fewer for small jobs when token lengths are measured: see
    convert.auto_workers); 1 = in-process (no pool)."""

    def __post_init__(self) -> None:
        checks = {
            "selection": (self.selection, ("resolved", "unresolved", "all")),
            "exception_policy": (self.exception_policy, ("keep_if_rewarded", "drop")),
            "reasoning": (self.reasoning, ("keep", "drop")),
            "tool_error_policy": (self.tool_error_policy, ("keep", "drop")),
            "over_cutoff": (self.over_cutoff, ("drop", "keep")),
            "on_damaged_trial": (self.on_damaged_trial, ("skip", "salvage")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{name}={value!r}: expected one of {allowed}")
        for name in ("max_instances", "max_trials_per_instance", "workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.cutoff_len <= 0:
            raise ValueError("cutoff_len must be > 0")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError("min_score must be within [0, 1]")


def conversion_schema() -> dict[str, Any]:
    """The `conversion` properties of the config schema (key -> JSON-schema of the key)."""
    schema = load_schema()
    return schema["properties"]["runtime_info"]["properties"]["input"]["properties"]["conversion"][
        "properties"
    ]


# Conversion-section keys that decide checks on the converted rows (sft inspect), not the conversion itself:
# no option of the converter, no `sft convert` flag, and a change does not reconvert the data.
NOT_OPTIONS = ("allow_failed_checks",)


def default_conversion() -> dict[str, Any]:
    """Every converter option that has a schema default, with that default."""
    return {
        key: spec["default"]
        for key, spec in conversion_schema().items()
        if "default" in spec and key not in NOT_OPTIONS
    }


def conversion_choices(key: str) -> tuple[Any, ...] | None:
    """The schema's enum of a conversion key, None when it has none."""
    enum = conversion_schema()[key].get("enum")
    return tuple(enum) if enum else None


def resolve_reasoning(reasoning: str, template: str) -> Reasoning:
    """`auto`: reasoning templates train <think> text, so keep it; *_nothink ones would train it verbatim."""
    if reasoning == "auto":
        return "drop" if template.endswith("_nothink") else "keep"
    return reasoning  # type: ignore[return-value]


def options_from_config(
    conversion: dict[str, Any],
    training: dict[str, Any],
    *,
    scaffold: str = "auto",
    root: Path | None = None,
    tokenizer_path: str = "",
) -> ConversionOptions:
    """Conversion + the training keys that decide token lengths -> ConversionOptions; missing keys take
    the schema defaults. `root` resolves a relative exclude_repos_file (None: relative to the cwd)."""
    conv = {**default_conversion(), **conversion}
    template = training.get("template", DEFAULT_TEMPLATE)
    exclude = conv["exclude_repos_file"]
    if exclude and root is not None:
        exclude = str(Path(root) / exclude)
    return ConversionOptions(
        scaffold=scaffold,
        selection=conv["selection"],
        exception_policy=conv["exception_policy"],
        max_instances=conv["max_instances"],
        max_trials_per_instance=conv["max_trials_per_instance"],
        exclude_repos_file=exclude,
        keep_subagents=conv["keep_subagents"],
        on_damaged_trial=conv["on_damaged_trial"],
        keep_lossy_fallback=conv["keep_lossy_fallback"],
        min_score=conv["min_score"],
        reasoning=resolve_reasoning(conv["reasoning"], template),
        tool_error_policy=conv["tool_error_policy"],
        over_cutoff=conv["over_cutoff"],
        cutoff_len=training.get("cutoff_len", ConversionOptions.cutoff_len),
        tokenizer_path=tokenizer_path,
        template=template,
        enable_thinking=training.get("enable_thinking", True),
        workers=conv["workers"],
    )


def conversion_options(cfg: RunConfig) -> ConversionOptions:
    """The options of a run config (what `sft convert-config` and `sft dryrun` convert with)."""
    model = cfg.root / cfg.model_path
    return options_from_config(
        cfg.conversion,
        cfg.training,
        scaffold=cfg.source["scaffold"],
        root=cfg.root,
        tokenizer_path=str(model) if model.is_dir() else "",
    )


def default_options() -> ConversionOptions:
    """A bare conversion: schema defaults, the default template, no tokenizer."""
    return options_from_config({}, {})
