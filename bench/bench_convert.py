"""Benchmark Harbor trajectory conversion on a synthetic job of long Claude Code trials.

The job is built from the captured fixture's real request shapes (bench/claude_code_job.py). Prints,
with CPU seconds (process time: this machine may be shared, so wall time is printed beside it):

* reader throughput per core: `read_trial` on each trial (stream the proxy log, link chains,
  normalise the tails), MB of log per CPU second;
* the ratio of that time to plain `json.loads` (and `orjson.loads`, when installed) of the same bytes;
* the ratio of a naive all-pairs prefix comparison to it: parse every request, normalise and
  serialise each of its messages, then compare every pair of requests for a prefix relation;
* `convert_job` end to end (reader + LF rows + scoring + writing) with 1 worker, per core;
* `convert_job` with N workers (process pool across trials): wall time and scaling;
* peak RSS of a worker vs the largest trial's log size, for the whole job and for its first trial
  only (equal peaks: memory is bounded by the largest trial, not by the job size).

Usage: python bench/bench_convert.py [--trials 2] [--turns 200] [--payload 400] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claude_code_job import build_job, write_job_result

# The naive comparator normalises exactly as the reader does before comparing.
from sftpipe.data.conversion.history_keys import clean_for_linking
from sftpipe.data.conversion.issues import IssueLog
from sftpipe.data.conversion.read_trial import read_proxy_conversations


def _cpu() -> float:
    return time.process_time()


def json_loads_seconds(logs: list[Path]) -> dict[str, float]:
    """CPU seconds to parse every line of the logs (the floor any reader that parses pays)."""
    parsers: dict[str, Any] = {"json.loads": json.loads}
    try:
        import orjson

        parsers["orjson.loads"] = orjson.loads
    except ImportError:
        pass
    out = {}
    for name, loads in parsers.items():
        best = float("inf")
        for _ in range(2):
            started = _cpu()
            for log in logs:
                with log.open("rb") as fh:
                    for line in fh:
                        loads(line)
            best = min(best, _cpu() - started)
        out[name] = best
    return out


def naive_all_pairs(log: Path) -> int:
    """Parse every request, normalise + serialise each message, compare every pair for a prefix."""
    requests: list[list[str]] = []
    with log.open("rb") as fh:
        for line in fh:
            body = json.loads(line)["request_body"]
            history = ([{"role": "system", "content": body["system"]}] if body.get("system") else []) + body[
                "messages"
            ]
            requests.append(
                [json.dumps(clean_for_linking(m), sort_keys=True, ensure_ascii=False) for m in history]
            )
    superseded = 0
    for i, a in enumerate(requests):  # every pair, as a converter that must also find branches does
        for b in requests[i + 1 :]:
            if len(a) <= len(b) and b[: len(a)] == a:
                superseded += 1
    return superseded


def reader_seconds(logs: list[Path]) -> float:
    read_proxy_conversations(logs[0], IssueLog())  # warm caches and lazy imports
    best = float("inf")
    for _ in range(2):
        started = _cpu()
        for log in logs:
            read_proxy_conversations(log, IssueLog())
        best = min(best, _cpu() - started)
    return best


def _peak_rss_kb() -> int:
    """This process's peak RSS. VmHWM (Linux) starts afresh at exec; ru_maxrss would include the
    parent's size at fork time for a spawned child."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _convert_in_child(job: str, out: str, workers: int, warm_job: str) -> dict[str, Any]:
    """Runs in a fresh process: convert the job and report CPU, wall and peak RSS."""
    from sftpipe.data.conversion.convert import ConversionOptions, convert_job

    convert_job(Path(warm_job), Path(out) / "warm", "warm", ConversionOptions(workers=1))  # imports, caches
    base_kb = _peak_rss_kb()
    cpu0, wall0 = _cpu(), time.perf_counter()
    report = convert_job(Path(job), Path(out) / "run", "bench", ConversionOptions(workers=workers))
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall": wall,
        "cpu": cpu,
        "rows": report.rows_written,
        "trials_read": sum(1 for t in report.trials if t.status == "kept"),
        "self_base_kb": base_kb,
        "self_peak_kb": _peak_rss_kb(),
        "child_peak_kb": children.ru_maxrss,
        "child_cpu": children.ru_utime + children.ru_stime,
    }


def _child_main(conn: Any, *args: Any) -> None:
    conn.send(_convert_in_child(*args))
    conn.close()


def convert_in_fresh_process(job: Path, out: Path, workers: int, warm_job: Path) -> dict[str, Any]:
    """A fresh (non-daemonic, so it may start its own pool) process, for clean RSS numbers."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child_main, args=(sender, str(job), str(out), workers, str(warm_job)))
    process.start()
    sender.close()
    try:
        result = receiver.recv()
    except EOFError:
        raise RuntimeError(
            f"conversion process failed (exit code {process.join() or process.exitcode})"
        ) from None
    process.join()
    return result


def first_trial_job(job: Path, log: Path, target: Path) -> Path:
    """A job holding only the trial of `log` (linked, not copied)."""
    trial = log.parents[1]
    target.mkdir()
    (target / trial.name).symlink_to(trial, target_is_directory=True)
    write_job_result(target, {trial.name: 1.0})
    return target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--turns", type=int, default=200, help="main-agent turns per trial")
    ap.add_argument("--payload", type=int, default=400, help="characters added to each tool result")
    ap.add_argument(
        "--subagent-every", type=int, default=25, help="a sub-agent chain every N main turns (0: none)"
    )
    ap.add_argument(
        "--vary-billing",
        action="store_true",
        help="a new cch= value in the billing line of every request (system message never byte-equal)",
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--naive-trials", type=int, default=1, help="trials the (slow) naive comparison runs on")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        logs = build_job(
            tmp / "job", args.trials, args.turns, args.payload, args.subagent_every, args.vary_billing
        )
        build_job(tmp / "warm", 1, 3, 10, 0)
        sizes = [p.stat().st_size for p in logs]
        mb, largest = sum(sizes) / 1e6, max(sizes)
        print(
            f"job: {args.trials} Claude Code trials x {args.turns} turns (captured shapes"
            f"{', cch= varies per request' if args.vary_billing else ''}), "
            f"{mb:.1f} MB of proxy log, largest trial {largest / 1e6:.1f} MB"
        )

        floors = json_loads_seconds(logs)
        t_read = reader_seconds(logs)
        print(f"reader (read_trial, 1 core): {t_read:.3f} s CPU -> {mb / t_read:.0f} MB/s per core")
        for name, seconds in floors.items():
            print(
                f"  {name} of the same bytes: {seconds:.3f} s CPU ({mb / seconds:.0f} MB/s) "
                f"-> reader / {name} = {t_read / seconds:.2f}x"
            )

        naive_logs = logs[: max(1, args.naive_trials)]
        naive_mb = sum(p.stat().st_size for p in naive_logs) / 1e6
        started = _cpu()
        for log in naive_logs:
            naive_all_pairs(log)
        t_naive = _cpu() - started
        t_read_naive = reader_seconds(naive_logs)
        print(
            f"  naive all-pairs prefix comparison on {len(naive_logs)} trial(s) ({naive_mb:.1f} MB): "
            f"{t_naive:.2f} s CPU -> naive / reader = {t_naive / t_read_naive:.1f}x"
        )

        one = convert_in_fresh_process(tmp / "job", tmp / "out1", 1, tmp / "warm")
        assert one["trials_read"] == args.trials, one
        print(
            f"convert_job, 1 worker: {one['cpu']:.2f} s CPU ({one['wall']:.2f} s wall, "
            f"{one['cpu'] / one['wall']:.2f} cores busy) -> {mb / one['cpu']:.0f} MB/s per core "
            f"({mb / one['wall']:.0f} MB/s wall), {one['rows']} rows"
        )
        pooled = convert_in_fresh_process(tmp / "job", tmp / "outN", args.workers, tmp / "warm")
        workers = min(args.workers, args.trials)
        busy = (pooled["child_cpu"] + pooled["cpu"]) / pooled["wall"]
        print(
            f"convert_job, {workers} workers: {pooled['wall']:.2f} s wall, {pooled['child_cpu']:.2f} s CPU in "
            f"workers (start-up included) + {pooled['cpu']:.2f} s in the parent, {busy:.2f} cores busy -> "
            f"{mb / pooled['wall']:.0f} MB/s; wall speed-up vs 1 worker {one['wall'] / pooled['wall']:.2f}x "
            f"({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})"
        )
        first = convert_in_fresh_process(
            first_trial_job(tmp / "job", logs[0], tmp / "job1"), tmp / "out_first", 1, tmp / "warm"
        )

        def growth(r: dict[str, Any]) -> float:
            return (r["self_peak_kb"] - r["self_base_kb"]) * 1024

        print(
            f"peak RSS (1-worker process, after imports {one['self_base_kb'] / 1024:.0f} MiB): whole job "
            f"+{growth(one) / 2**20:.0f} MiB, first trial only +{growth(first) / 2**20:.0f} MiB; "
            f"largest trial log {largest / 2**20:.0f} MiB -> {growth(one) / largest:.2f}x of it"
        )
        if workers > 1:
            print(
                f"peak RSS of a pool worker: {pooled['child_peak_kb'] / 1024:.0f} MiB "
                f"(= its imports + one trial at a time)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
