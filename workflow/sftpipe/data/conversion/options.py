"""Conversion options of a run profile: config.yaml's conversion keys (+ the training keys that decide token
lengths) mapped onto ConversionOptions."""

from __future__ import annotations

from sftpipe.config import RunConfig
from sftpipe.data.conversion.convert import ConversionOptions


def conversion_options(cfg: RunConfig) -> ConversionOptions:
    """Map config.yaml (conversion + the training keys that decide token lengths) onto ConversionOptions."""
    conv, train = cfg.conversion, cfg.training
    reasoning = conv["reasoning"]
    if reasoning == "auto":  # reasoning templates train <think> text; *_nothink ones would train it verbatim
        reasoning = "drop" if train["template"].endswith("_nothink") else "keep"
    model = cfg.root / cfg.model_path
    return ConversionOptions(
        scaffold=cfg.source["scaffold"], selection=conv["selection"], exception_policy=conv["exception_policy"],
        max_instances=conv["max_instances"], max_trials_per_instance=conv["max_trials_per_instance"],
        exclude_repos_file=str(cfg.root / conv["exclude_repos_file"]) if conv["exclude_repos_file"] else "",
        keep_subagents=conv["keep_subagents"], min_score=conv["min_score"], reasoning=reasoning,
        tool_error_policy=conv["tool_error_policy"], over_cutoff=conv["over_cutoff"],
        cutoff_len=train["cutoff_len"], tokenizer_path=str(model) if model.is_dir() else "",
        template=train["template"], enable_thinking=train.get("enable_thinking", True), workers=conv["workers"])
