"""The conversion's output-path flags, shared by `sft convert` and `sft convert-config` (the convert rule passes
all five paths; by hand `--out-dir` is enough). Light on purpose: every `sft` command's parser loads it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sftpipe.data.conversion.convert import OutputPaths

OUTPUT_FLAGS = {
    "lf": "--lf",
    "im": "--im",
    "stats": "--stats",
    "report": "--report",
    "report_txt": "--report-txt",
}


def add_output_args(p: argparse.ArgumentParser) -> None:
    """--out-dir, or the five exact output paths (the convert rule passes all five)."""
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="writes lf_data/<name>.json, <name>.im.jsonl, <name>.stats.json, <name>.report.json/.txt",
    )
    for field, flag in OUTPUT_FLAGS.items():
        p.add_argument(
            flag, dest=f"out_{field}", type=Path, default=None, help=f"exact path of the {field} file"
        )


def output_paths_from_args(args: argparse.Namespace, data_name: str) -> OutputPaths:
    """The exact paths: all five flags, or --out-dir with any flag overriding its file."""
    from sftpipe.data.conversion.convert import (
        OutputPaths,  # here, not at import: `sft record` must not load it
    )

    given = {f: getattr(args, f"out_{f}") for f in OUTPUT_FLAGS}
    if args.out_dir is None:
        missing = [OUTPUT_FLAGS[f] for f, v in given.items() if v is None]
        if missing:
            raise ValueError(f"pass --out-dir or every output path (missing: {' '.join(missing)})")
        return OutputPaths(**given)
    base = OutputPaths.in_dir(args.out_dir, data_name).as_dict()
    return OutputPaths(**{f: given[f] or base[f] for f in OUTPUT_FLAGS})
