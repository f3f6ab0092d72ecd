"""Report commands: metrics, plot, compare, publish."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sftpipe import paths
from sftpipe.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    CommandError,
    add_json,
    add_root,
    add_run_arg,
    print_json,
)

# Each command imports its work inside (see cli/pipeline.py): `metrics` and `plot` are rule jobs.


def cmd_metrics(args: argparse.Namespace) -> int:
    from sftpipe.runs.metrics import extract_metrics, write_metrics

    if args.write or args.out_json or args.out_jsonl:
        metrics = write_metrics(args.run_dir, args.out_json, args.out_jsonl)
    else:
        metrics = extract_metrics(args.run_dir)
    print(json.dumps(metrics["summary"], indent=2) if args.json else _format_summary(metrics["summary"]))
    return EXIT_OK


def _format_summary(summary: dict[str, Any]) -> str:
    lines = []
    for key, value in summary.items():
        if key in ("sources", "warnings"):
            continue
        lines.append(f"{key:28s} {value:.6g}" if isinstance(value, float) else f"{key:28s} {value}")
    lines += [f"source {k:21s} {v}" for k, v in summary["sources"].items()]
    lines += [f"warning: {w}" for w in summary["warnings"]]
    return "\n".join(lines)


def cmd_plot(args: argparse.Namespace) -> int:
    from sftpipe.report.plotting import plot_training
    from sftpipe.runs.metrics import extract_metrics

    if args.metrics:
        try:
            metrics = json.loads(args.metrics.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"{args.metrics}: cannot read metrics ({exc})") from exc
    else:
        metrics = extract_metrics(args.run_dir)
    out = args.out or args.run_dir / paths.LOSS_PLOT
    plot_training(metrics, out, args.title or f"Training: {args.run_dir.resolve().name}")
    print(out)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from sftpipe.report.compare import compare, format_table, plot_comparison

    result = compare(args.root, args.runs)
    out = args.out or args.root / paths.COMPARE_DIR / (
        "_vs_".join(r["label"] for r in result["runs"]) + ".png"
    )
    result["plot"] = str(plot_comparison(result, out))
    if args.json:
        for r in result["runs"]:
            r.pop("series")
        print_json(result)
    else:
        print(format_table(result))
        print(f"\nloss curves: {result['plot']}")
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from sftpipe.report.publish import MANIFEST, publish, read_manifest, verify

    if args.verify:
        problems = verify(args.verify)
        if args.json:
            print_json({"dir": str(args.verify), "ok": not problems, "problems": problems})
        else:
            print("\n".join(problems) if problems else f"ok: every file of {args.verify} matches {MANIFEST}")
        return EXIT_FAILURE if problems else EXIT_OK
    if not (args.name and args.version):
        args.parser.error("--name and --version are required (or use --verify DIR)")
    path = publish(args.root, args.run, args.name, args.version, args.checkpoint, args.out)
    manifest = read_manifest(path)
    if args.json:
        print_json({"dir": str(path), "manifest": manifest})
    else:
        print(
            f"published {args.name} {args.version} from {manifest['source']['checkpoint']} "
            f"({manifest['source']['selected_as']}) to {path}: {len(manifest['files'])} files"
        )
    return EXIT_OK


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("metrics", help="summarise a run directory's training metrics")
    p.add_argument("run_dir", type=Path, help="LLaMA-Factory output_dir of the run")
    p.add_argument(
        "--write",
        action="store_true",
        help=f"also write {paths.METRICS_JSON} and {paths.METRICS_JSONL} there",
    )
    p.add_argument(
        "--out-json", type=Path, help=f"write the metrics here instead of RUN_DIR/{paths.METRICS_JSON}"
    )
    p.add_argument(
        "--out-jsonl", type=Path, help=f"write the series here instead of RUN_DIR/{paths.METRICS_JSONL}"
    )
    add_json(p)
    p.set_defaults(func=cmd_metrics)

    p = subparsers.add_parser("plot", help="draw a run's loss / learning-rate curves to a PNG")
    p.add_argument("run_dir", type=Path, help="LLaMA-Factory output_dir of the run")
    p.add_argument(
        "--metrics", type=Path, help=f"{paths.METRICS_JSON} written by `sft metrics` (default: read RUN_DIR)"
    )
    p.add_argument("--out", type=Path, help=f"PNG path (default RUN_DIR/{paths.LOSS_PLOT})")
    p.add_argument("--title", help="figure title (default: the run directory name)")
    p.set_defaults(func=cmd_plot)

    p = subparsers.add_parser(
        "compare", help="compare runs: config differences, key metrics, loss curves PNG"
    )
    p.add_argument(
        "runs", nargs="+", metavar="RUN", help="run ids, run names or run directories (two or more)"
    )
    p.add_argument("--out", type=Path, help=f"PNG path (default {paths.COMPARE_DIR}/<run>_vs_<run>.png)")
    add_root(p)
    add_json(p)
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser(
        "publish", help="publish a checkpoint as a versioned model directory (or --verify one)"
    )
    add_run_arg(p)
    p.add_argument("--checkpoint", default="best", help="best | latest | STEP (default best)")
    p.add_argument("--name", help="model name")
    p.add_argument("--version", help="version X.Y.Z")
    p.add_argument(
        "--out", type=Path, help=f"target directory (default {paths.PUBLISHED_ROOT}/<name>/<version>)"
    )
    p.add_argument(
        "--verify", type=Path, metavar="DIR", help="re-check every file hash of a published directory"
    )
    add_root(p)
    add_json(p)
    p.set_defaults(func=cmd_publish, parser=p)
