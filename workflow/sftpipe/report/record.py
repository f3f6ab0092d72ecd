"""The last two stages of a run: the config write-back (runtime_info.output) and its run-history entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sftpipe import paths
from sftpipe.config import RunConfig
from sftpipe.report import output_block
from sftpipe.report.writeback import write_output_block
from sftpipe.runs import index as run_index
from sftpipe.runs.store import read_json, read_manifest
from sftpipe.util.fs import atomic_write_json, atomic_write_text


def writeback_target(cfg: RunConfig, config_path: Path) -> Path:
    """Where a run's output block goes: config.yaml, or a variant's own file next to the variant."""
    if not cfg.variant:
        return config_path
    return cfg.root / paths.VARIANTS_DIR / f"{cfg.variant}{paths.VARIANT_OUTPUT_SUFFIX}"


def write_back(
    cfg: RunConfig, config_path: Path, manifest: Path, metrics: Path, plot: Path, marker: Path
) -> dict[str, Any]:
    """Rewrite only runtime_info.output of the run's target file; the marker records what was written."""
    block = output_block.build(cfg, read_manifest(manifest), read_json(metrics) or {}, plot)
    target = writeback_target(cfg, config_path)
    if not target.exists():  # a variant's first result: a file of its own, never the variant itself
        atomic_write_text(
            target,
            f"# Results of variant {cfg.variant!r}, written by the pipeline.\n"
            "runtime_info:\n  output: {}\n",
        )
    write_output_block(target, block)
    written = {"target": str(target), "output": block}
    atomic_write_json(marker, written)
    return written


def record_run(cfg: RunConfig, manifest: Path, writeback: Path, marker: Path) -> dict[str, Any]:
    """Complete the run's history entry with its results and record paths; the marker is a copy of it."""
    run_id = read_manifest(manifest)["run_id"]
    written = read_json(writeback) or {}
    output = written["output"]
    records = dict(output["artifacts"])
    records["writeback"] = written["target"]
    metrics = output["training_metrics"]
    fields: dict[str, Any] = {
        "final_loss": metrics["final_loss"],
        "checkpoint_path": output["checkpoint_path"],
        "records": records,
        "mfu": metrics.get("mfu"),
        "tokens_per_second_per_gpu": metrics.get("tokens_per_second_per_gpu"),
    }
    if output.get("best_checkpoint"):
        fields["best_checkpoint"] = output["best_checkpoint"]
    entry = run_index.update_entry(cfg.root / paths.INDEX_PATH, run_id, **fields)
    atomic_write_json(marker, entry)
    return entry
