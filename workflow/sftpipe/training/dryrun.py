"""`sft dryrun`: everything that can fail before a GPU is requested, checked on CPU in seconds.

1. config: schema + cross-field rules;
2. the rendered LLaMA-Factory YAML parsed by LLaMA-Factory's own argument parser;
3. the data: every row checked against the rules LLaMA-Factory crashes on or silently skips, then
   loaded and tokenized by LLaMA-Factory's own pipeline with the configured template (tokenizer only,
   no model weights), with row counts, dropped rows and token-length statistics.
Nothing under artifacts/ is modified: registration and conversion (for harbor_job) happen in a temp dir.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from sftpipe.config import RunConfig, config_warnings


def _load_rows(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def check_rows(rows: list[Any]) -> dict[str, Any]:
    """Our own validation of every row (LLaMA-Factory crashes on some, silently drops others)."""
    from sftpipe.data.conversion.lf_format import validate_lf_row

    bad: dict[str, int] = {}
    examples: list[str] = []
    n_bad = 0
    for i, row in enumerate(rows):
        problems = validate_lf_row(row) if isinstance(row, dict) else [f"row is a {type(row).__name__}"]
        n_bad += bool(problems)
        for problem in problems:
            key = problem.split(":")[0]
            bad[key] = bad.get(key, 0) + 1
        if problems and len(examples) < 10:
            examples.append(f"row {i}: {'; '.join(problems)}")
    return {"rows": len(rows), "invalid_rows": n_bad, "problems": bad, "examples": examples}


def _data_file(cfg: RunConfig, workdir: Path) -> tuple[Path | None, str]:
    """The LF file the config would train on; converting a Harbor job into `workdir` if needed."""
    kind = cfg.source["type"]
    if kind == "local_lf":
        return cfg.root / cfg.source["lf_path"], "local_lf file"
    if kind == "harbor_job":
        from sftpipe.data.conversion.convert import convert_job
        from sftpipe.data.conversion.options import conversion_options

        convert_job(cfg.root / cfg.job_dir, workdir, cfg.data_name, conversion_options(cfg))
        return workdir / "lf_data" / f"{cfg.data_name}.json", "converted in a temp dir"
    return None, "hf_lf: rows are pulled from the Hub by LLaMA-Factory"


def run(cfg: RunConfig) -> dict[str, Any]:
    from sftpipe.data.registration import dataset_entry
    from sftpipe.lf import checks as lf_dataset
    from sftpipe.lf import render as lf_config
    from sftpipe.lf.memory import memory_warnings

    warnings = config_warnings(cfg.data) + memory_warnings(cfg)
    report: dict[str, Any] = {"ok": False, "config": {"ok": True, "warnings": warnings}}
    report["memory"] = _memory(cfg)
    rendered = lf_config.render(cfg)
    report["llamafactory_config"] = rendered
    with tempfile.TemporaryDirectory(prefix="sft-dryrun-") as tmp:
        workdir = Path(tmp)
        data_file, origin = _data_file(cfg, workdir)
        report["data"] = {"origin": origin, "file": str(data_file) if data_file else None}
        entry = dataset_entry(cfg)
        if data_file is not None:
            entry["file_name"] = str(data_file.resolve())
            rows = check_rows(_load_rows(data_file))
            report["data"]["validation"] = rows
        info_dir = workdir / "dataset_info"
        info_dir.mkdir()
        (info_dir / "dataset_info.json").write_text(json.dumps({cfg.data_name: entry}))
        checked = dict(rendered, dataset_dir=str(info_dir))
        lf_dataset.parse_train_args(checked)
        report["llamafactory_args"] = {"ok": True}
        invalid = report["data"].get("validation", {}).get("invalid_rows", 0)
        if invalid:  # LLaMA-Factory would crash on such rows or drop them silently: stop here
            report["stage"] = "data"
            report["tokenization"] = {"skipped": f"{invalid} invalid row(s): fix them first"}
            return report
        report["tokenization"] = lf_dataset.tokenize_dataset(checked)
        if data_file is not None:  # the token-view checks; a violated one fails unless allowed
            from sftpipe.data.inspect import failed_checks, inspect_dataset

            report["inspection"] = inspect_dataset(cfg, _load_rows(data_file))
            if failed_checks(report["inspection"]):
                report["stage"] = "inspect"
                return report
    if report["memory"].get("fits") is False and not cfg.infrastructure.get("allow_memory_overcommit"):
        report["stage"] = "memory"  # the plan says it would OOM: fail here, not hours into the job
        return report
    report["ok"] = True
    return report


def _memory(cfg: RunConfig) -> dict[str, Any]:
    """The memory plan (sftpipe.lf.memory); its absence (no config.json yet) is reported, not fatal."""
    from sftpipe.lf.memory import MemoryPlanError, memory_plan

    try:
        return memory_plan(cfg)
    except MemoryPlanError as exc:
        return {"error": str(exc)}
