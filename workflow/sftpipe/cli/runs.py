"""Run management commands: status, runs, history, checkpoints, variants, stop."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sftpipe.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    add_json,
    add_root,
    add_run_arg,
    fmt_value,
    print_json,
)
from sftpipe.paths import DEFAULT_CONFIG, INDEX_PATH, VARIANTS_DIR
from sftpipe.runs.best import METRICS, best_checkpoint
from sftpipe.runs.ending import ACTIVE_STATUSES, STATUSES
from sftpipe.runs.index import read_entries
from sftpipe.runs.status import list_runs, reconcile, resolve_run, run_report
from sftpipe.runs.variants import list_variants
from sftpipe.training.stop import request_run_stop, wait_for_end


def format_report(rep: dict[str, Any]) -> str:
    p = rep["progress"]
    status = rep["status"] + (
        "" if rep["status"] == rep["recorded_status"] else f" (index says {rep['recorded_status']})"
    )
    lines = [f"run        {rep['run_id'] or '-'}  {rep['run_dir']}", f"status     {status}: {rep['reason']}"]
    if rep.get("variant") or rep.get("data_name"):
        lines.append(f"variant    {rep.get('variant') or '-'}   data {rep.get('data_name') or '-'}")
    if p["step"] is not None:
        lines.append(
            f"progress   step {p['step']}/{fmt_value(p['total_steps'])} ({fmt_value(p['percentage'], 1)}%)  "
            f"elapsed {p['elapsed'] or '-'}  ETA {p['eta'] or '-'}"
        )
        lines.append(
            f"loss       {fmt_value(p['loss'])} (EMA {fmt_value(p['loss_ema'])})  eval {fmt_value(p['eval_loss'])}"
            f"{' @ step ' + str(p['eval_step']) if p['eval_step'] is not None else ''}  "
            f"lr {fmt_value(p['learning_rate'], 3) if p['learning_rate'] is None else format(p['learning_rate'], '.3g')}"
        )
        lines.append(
            f"tokens/s   {fmt_value(p['tokens_per_second'], 1)}  (tokens seen {fmt_value(p['total_tokens'])}; "
            f"per GPU {fmt_value(p['tokens_per_second_per_gpu'], 1)}, MFU "
            f"{'-' if p['mfu'] is None else format(p['mfu'], '.1%')})"
        )
    else:
        lines.append("progress   no step logged yet")
    lines.append(f"checkpoint {p['latest_checkpoint'] or '-'} (latest complete)")
    if rep.get("final_loss") is not None:
        lines.append(f"final loss {fmt_value(rep['final_loss'])}")
    if rep.get("log"):
        lines.append(f"log        {rep['log']}")
    if rep.get("slurm_job_id"):
        ev = rep.get("evidence") or {}
        left = ev.get("slurm_time_left_s")
        lines.append(
            f"slurm      job {rep['slurm_job_id']} {ev.get('slurm_state') or '-'} on "
            f"{rep.get('slurm_nodes') or '-'}" + (f", {left / 60:.0f} min left" if left else "")
        )
    if rep.get("error"):
        lines.append("error      " + str(rep["error"]).replace("\n", "\n           "))
    lines += [f"warning: {w}" for w in p["warnings"]]
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    """Print one run's status report; --reconcile first records derived terminal states in the index."""
    rep = run_report(resolve_run(args.root, args.run))
    if args.reconcile:
        rep["reconciled"] = reconcile(args.root)
    if args.json:
        print_json(rep)
        return EXIT_OK
    print(format_report(rep))
    for change in rep.get("reconciled", []):
        print(f"reconciled {change['id']}: {change['from']} -> {change['to']} ({change['reason']})")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    """Print the runs (filtered by status/variant/data) as a table, newest first."""
    rows = list_runs(args.root, args.status, args.variant, args.data)
    if args.json:
        print_json(rows)
        return EXIT_OK
    print(
        f"{'id':9s} {'status':11s} {'variant':14s} {'data':24s} {'started_at':21s} {'progress':>11s} "
        f"{'final_loss':>10s}"
    )
    for r in rows:
        prog = f"{r['step']}/{r['total_steps']}" if r["step"] is not None else "-"
        print(
            f"{r['id']:9s} {r['status']:11s} {r['variant'] or '-'!s:14s} {r['data_name'] or '-'!s:24s} "
            f"{r['started_at'] or '-':21s} {prog:>11s} {fmt_value(r['final_loss']):>10s}"
        )
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    """Print the run index entries in index order (only the last N with --last)."""
    entries = read_entries(args.index or args.root / INDEX_PATH)
    entries = entries[-args.last :] if args.last else entries
    if args.json:
        print_json(entries)
        return EXIT_OK
    print(f"{'id':10s} {'status':12s} {'variant':16s} {'started_at':21s} {'final_loss':>10s}  checkpoint")
    for e in entries:
        print(
            f"{e['id']:10s} {e.get('status') or '-':12s} {e.get('variant') or '-'!s:16s} "
            f"{e.get('started_at') or '-':21s} {fmt_value(e.get('final_loss')):>10s}  "
            f"{e.get('checkpoint_path') or '-'}"
        )
    return EXIT_OK


def cmd_checkpoints(args: argparse.Namespace) -> int:
    """Print a run's checkpoints with their completeness and losses, marking the best and the latest."""
    ref = resolve_run(args.root, args.run)
    result = best_checkpoint(ref.run_dir, args.metric)
    result["run_dir"] = str(ref.run_dir)
    if args.json:
        print_json(result)
        return EXIT_OK
    best_path = result["best"]["path"] if result["best"] else None
    latest_path = result["latest"]["path"] if result["latest"] else None
    print(f"{'step':>7s} {'complete':8s} {'loss':>8s} {'eval_loss':>9s} {'time':21s} path")
    for r in result["checkpoints"]:
        tags = [t for t, p in (("best", best_path), ("latest", latest_path)) if p == r["path"]]
        done = "yes" if r["complete"] else "NO"
        print(
            f"{r['step']:7d} {done:8s} {fmt_value(r['loss']):>8s} {fmt_value(r['eval_loss']):>9s} {r['time']:21s} "
            f"{r['path']}{'  <- ' + ', '.join(tags) if tags else ''}"
            f"{'  (' + r['problem'] + ')' if r['problem'] else ''}"
        )
    if not result["checkpoints"]:
        print(f"no checkpoints in {ref.run_dir}")
    print(f"best by {result['metric']}: {best_path or '-'}")
    return EXIT_OK


def cmd_variants(args: argparse.Namespace) -> int:
    """Print every config/variants/*.yaml with its validity and last run."""
    rows = list_variants(args.root, args.config)
    if args.json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print(f"no variants in {args.root / VARIANTS_DIR}")
        return EXIT_OK
    print(f"{'variant':20s} {'status':11s} {'last_run':9s} {'runs':>4s}  run_dir")
    for r in rows:
        status = r["status"] or ("INVALID" if not r["valid"] else "never run")
        print(
            f"{r['variant']:20s} {status:11s} {r['last_run'] or '-':9s} {r['runs']:4d}  {r['run_dir'] or '-'}"
        )
        for problem in r["problems"]:
            print(f"    {problem}")
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    """Ask a run to stop (optionally waiting for it to end); exit 1 if it is still active after --wait."""
    ref = resolve_run(args.root, args.run)
    action = request_run_stop(ref)
    if args.wait:
        action["final_status"] = wait_for_end(ref, args.timeout)
    if args.json:
        print_json(action)
    else:
        print(f"{action['action']} for {ref.name} ({action['run_dir']})")
        if "final_status" in action:
            print(f"final status: {action['final_status']}")
    return EXIT_OK if action.get("final_status", "stopped") not in ACTIVE_STATUSES else EXIT_FAILURE


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `sft status`, `runs`, `history`, `checkpoints`, `variants` and `stop`."""
    p = subparsers.add_parser("status", help="status and live progress of one run (default: the newest)")
    add_run_arg(p)
    p.add_argument(
        "--reconcile",
        action="store_true",
        help="record derived terminal states (e.g. crashed) of dead runs in artifacts/index.yaml",
    )
    add_root(p)
    add_json(p)
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("runs", help="list runs, newest first, with their derived status")
    p.add_argument("--status", choices=sorted(STATUSES))
    p.add_argument("--variant", help="only runs of this variant ('' = the base config)")
    p.add_argument("--data", help="only runs trained on this data_name")
    add_root(p)
    add_json(p)
    p.set_defaults(func=cmd_runs)

    p = subparsers.add_parser("history", help=f"list the run history ({INDEX_PATH})")
    p.add_argument("--index", type=Path, default=None, help=f"run index file (default <root>/{INDEX_PATH})")
    p.add_argument("--last", type=int, default=0, help="only the newest N runs")
    add_root(p)
    add_json(p)
    p.set_defaults(func=cmd_history)

    p = subparsers.add_parser("checkpoints", help="list a run's checkpoints with metrics; mark the best")
    add_run_arg(p)
    p.add_argument(
        "--metric",
        choices=METRICS,
        default="auto",
        help="rank by eval_loss, train loss, or auto (eval_loss when evaluated)",
    )
    add_root(p)
    add_json(p)
    p.set_defaults(func=cmd_checkpoints)

    p = subparsers.add_parser(
        "variants", help="list config variants with their run directory and last status"
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="base profile")
    add_root(p)
    add_json(p)
    p.set_defaults(func=cmd_variants)

    p = subparsers.add_parser("stop", help="stop a run gracefully (complete checkpoint, then exit)")
    add_run_arg(p, required=True)
    p.add_argument("--wait", action="store_true", help="wait for the run to end and print its final status")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="with --wait: give up after N seconds (exit 1 while the run is still active)",
    )
    add_root(p)
    add_json(p)
    p.set_defaults(func=cmd_stop)
