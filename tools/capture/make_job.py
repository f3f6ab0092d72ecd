#!/usr/bin/env python3
"""Write a Harbor job's `config.json` and `result.json` from its captured trials.

Reads every `<job_dir>/<trial>/result.json` (written by capture_trial.py) and
aggregates them the way Harbor's job result does: one eval key
`<agent>__<model>__<dataset>` with reward_stats (string reward keys → trial
names) and exception_stats (exception type → trial names). Stdlib only.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-dir", required=True, type=Path)
    parser.add_argument("--job-id", required=True)
    args = parser.parse_args(argv)

    trials = []
    for result_path in sorted(args.job_dir.glob("*/result.json")):
        trials.append(json.loads(result_path.read_text()))
    if not trials:
        raise SystemExit(f"no trial result.json under {args.job_dir}")

    evals: dict[str, dict] = {}
    for trial in trials:
        agent = trial["agent_info"]["name"]
        model = trial["agent_info"]["model_info"]["name"]
        key = f"{agent}__{model}__{trial['source']}"
        entry = evals.setdefault(
            key,
            {
                "n_trials": 0,
                "n_errors": 0,
                "metrics": [],
                "pass_at_k": {},
                "reward_stats": {"reward": {}},
                "exception_stats": {},
            },
        )
        entry["n_trials"] += 1
        rewards = (trial.get("verifier_result") or {}).get("rewards") or {}
        for name, value in rewards.items():
            entry["reward_stats"].setdefault(name, {}).setdefault(str(float(value)), []).append(
                trial["trial_name"]
            )
        if trial.get("exception_info"):
            entry["n_errors"] += 1
            exc = trial["exception_info"]["exception_type"]
            entry["exception_stats"].setdefault(exc, []).append(trial["trial_name"])

    totals: dict[str, float] = defaultdict(float)
    for trial in trials:
        for field in ("n_input_tokens", "n_cache_tokens", "n_output_tokens", "cost_usd"):
            totals[field] += trial["agent_result"].get(field) or 0
    n_errored = sum(1 for t in trials if t.get("exception_info"))
    started = min(t["started_at"] for t in trials)
    finished = max(t["finished_at"] for t in trials)
    result = {
        "id": args.job_id,
        "started_at": started,
        "updated_at": finished,
        "finished_at": finished,
        "n_total_trials": len(trials),
        "stats": {
            "n_completed_trials": len(trials),
            "n_errored_trials": n_errored,
            "n_running_trials": 0,
            "n_pending_trials": 0,
            "n_cancelled_trials": 0,
            "n_retries": 0,
            "evals": evals,
            "n_input_tokens": int(totals["n_input_tokens"]),
            "n_cache_tokens": int(totals["n_cache_tokens"]),
            "n_output_tokens": int(totals["n_output_tokens"]),
            "cost_usd": totals["cost_usd"],
        },
    }
    first = trials[0]["config"]
    config = {
        "job_name": args.job_dir.name,
        "jobs_dir": "jobs",
        "n_attempts": 1,
        "timeout_multiplier": 1.0,
        "orchestrator": {"type": "local", "n_concurrent_trials": 1},
        "environment": first["environment"],
        "verifier": first["verifier"],
        "agents": [
            {
                "name": first["agent"]["name"],
                "model_name": first["agent"]["model_name"],
                "kwargs": first["agent"]["kwargs"],
            }
        ],
        "datasets": [
            {
                "path": str(Path(first["task"]["path"]).parent),
                "task_names": sorted({t["task_name"] for t in trials}),
            }
        ],
    }
    (args.job_dir / "config.json").write_text(json.dumps(config, indent=4) + "\n")
    (args.job_dir / "result.json").write_text(json.dumps(result, indent=4) + "\n")
    print(f"{args.job_dir}: {len(trials)} trials, evals={list(evals)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
