"""Benchmark `convert_job` on a synthetic job of long Claude-Code-shaped trials.

Prints:
* throughput: MB of proxy log converted per second per worker process;
* ratio of conversion time to plain `json.loads` of the same bytes (the floor any reader pays);
* ratio of conversion time to a naive all-pairs prefix comparison of the requests (the original
  converter's dedup strategy: every request checked against every later one);
* peak RSS of a worker vs the largest trial's log size.

Usage: python bench/bench_convert.py [--trials 2] [--turns 200] [--payload 800] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit" / "conversion"))

from harbor_job_builder import make_trial, write_job_result
from sftpipe.conversion.convert import ConversionOptions, convert_job

_STRIP = ("cache_control", "signature")


def _normalise(value):
    """The naive converter's normalisation: drop cache_control/signature keys and thinking blocks."""
    if isinstance(value, dict):
        if value.get("type") in ("thinking", "redacted_thinking"):
            return None
        return {k: _normalise(v) for k, v in value.items() if k not in _STRIP}
    if isinstance(value, list):
        return [x for x in (_normalise(v) for v in value) if x is not None]
    return value


def naive_all_pairs(log: Path) -> int:
    """Parse, normalise, then test every request against every later one for a prefix relation."""
    requests = []
    with log.open("rb") as fh:
        for line in fh:
            rec = json.loads(line)
            requests.append(_normalise(rec["request_body"]["messages"]))
    superseded = 0
    for i, a in enumerate(requests):  # every pair, as a converter that must also find branches does
        for b in requests[i + 1:]:
            if len(a) <= len(b) and b[: len(a)] == a:
                superseded += 1
    return superseded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--payload", type=int, default=800, help="characters per tool result")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job"
        rewards = {}
        for i in range(args.trials):
            name = f"bench__repo-{i}__t{i}"
            make_trial(job, name, f"bench__repo-{i}", n_turns=args.turns, payload_chars=args.payload)
            rewards[name] = 1.0
        write_job_result(job, rewards)
        logs = sorted(job.glob("*/agent/litellm-trajectory.jsonl"))
        sizes = [p.stat().st_size for p in logs]
        total_mb = sum(sizes) / 1e6

        t0 = time.perf_counter()
        for p in logs:
            with p.open("rb") as fh:
                for line in fh:
                    json.loads(line)
        t_json = time.perf_counter() - t0

        t0 = time.perf_counter()
        report = convert_job(job, Path(tmp) / "out", "bench", ConversionOptions(workers=args.workers))
        t_convert = time.perf_counter() - t0
        workers = min(args.workers, args.trials)
        peak_child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if workers <= 1:
            peak_child_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        t0 = time.perf_counter()
        for p in logs:
            naive_all_pairs(p)
        t_naive = time.perf_counter() - t0

    assert report.rows_written == args.trials, report.to_text()
    print(f"trials={args.trials} turns={args.turns} log={total_mb:.1f} MB "
          f"(largest trial {max(sizes) / 1e6:.1f} MB) workers={workers}")
    print(f"convert: {t_convert:.2f} s wall -> {total_mb / t_convert / workers:.1f} MB/s per worker")
    print(f"json.loads only: {t_json:.2f} s (1 core) -> convert/json.loads per core = "
          f"{t_convert * workers / t_json:.2f}x")
    print(f"naive all-pairs prefix dedup: {t_naive:.2f} s (1 core) -> naive/convert per core = "
          f"{t_naive / (t_convert * workers):.2f}x")
    print(f"peak worker RSS {peak_child_kb / 1024:.0f} MiB vs largest trial {max(sizes) / 2**20:.0f} MiB "
          f"-> {peak_child_kb * 1024 / max(sizes):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
