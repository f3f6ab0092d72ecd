"""Pipeline overhead benchmarks, measured side by side in one run (ratios, not absolute seconds).

1. Whole pipeline (`snakemake`: convert, register, tokenize, train, metrics, plot, write-back, record) vs bare
   `llamafactory-cli train` on the same rendered config, data and tiny model (2 CPU ranks, ZeRO-3), with the SAME
   tracking settings on both sides (W&B disabled: `report_to: none`). Per repeat the two run back to back, in
   alternating order, so machine noise hits both; medians over `--repeats` are reported.
   * fixed cost = pipeline wall − bare wall, broken down per rule: each rule's wall time (its log file appears
     when Snakemake starts the job's shell and is last written when the job ends; polled every 50 ms) and
     Snakemake's own share (start-up, DAG, scheduling gaps = wall − union of the job intervals);
   * the Snakemake engine's part of it: a chain of as many trivial jobs, same profile, measured in the same run;
   * per-token cost: training tokens/s (`num_input_tokens_seen / train_runtime` of LF's all_results.json) of a
     pipeline run with the fail-fast probe off vs bare. The probe (one forward + backward at the longest
     length, at train begin, inside LF's train_runtime) is a one-off cost: a third run per repeat, the
     default pipeline with the probe on, measures it (train_runtime on − off) and the fixed cost;
   * `--default-tracker` adds a pair with the pipeline's default tracker (W&B offline) on BOTH sides;
     `--tracking offline` measures only that one.
2. `sft` start-up: wall time of `sft record --help` (what every small rule pays before working), median.
3. `snakemake -n` latency: the active profile alone vs 20 config variants in one invocation.

Usage: python bench/bench_pipeline.py [--repeats N] [--json OUT] [--default-tracker] [--skip-dryrun]
                                     [--baseline-tree DIR] [--pycache DIR]
       python bench/bench_pipeline.py --skip-dryrun --preset qwen3-0.6b --accelerator cuda --gpus 8 --bf16
           (on a GPU node: a random-init Qwen3-0.6B-sized model, bf16, ZeRO-3)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "workflow"))

from tests.project import LINKED, edit_config, make_project

BIN = Path(sys.executable).parent
N_VARIANTS = 20
RULE_LOGS = Path("artifacts/logs/rules")


PYCACHE: list[Path] = []  # --pycache: compiled bytecode for every child process (both sides alike)


def child_env(tree: Path = REPO, **extra: str) -> dict[str, str]:
    """Environment of a benchmarked process: the code of `tree`, and bytecode as asked (--pycache)."""
    env = dict(os.environ, PYTHONPATH=str(tree / "workflow"), **extra)
    if PYCACHE:  # as after `uv sync --compile-bytecode`; this machine sets PYTHONDONTWRITEBYTECODE=1
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE[0])
    return env


def run_cmd(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Run to completion; returns the wall time in seconds (exits with the output on failure)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env or child_env(), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


class RuleClock:
    """Wall interval of every Snakemake job, from its rule log file: created when the job's shell starts
    (`> {log}`), last written when it ends. Polling is cheap (one small directory listing per 50 ms)."""

    def __init__(self, root: Path, poll_s: float = 0.05):
        self.dir, self.poll_s = root / RULE_LOGS, poll_s
        self.first_seen: dict[str, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(self.poll_s):
            if self.dir.is_dir():
                for entry in os.scandir(self.dir):
                    self.first_seen.setdefault(entry.name, time.time())

    def intervals(self) -> dict[str, tuple[float, float]]:
        """{rule log name: (start, end)} in epoch seconds."""
        return {
            name: (start, max(start, (self.dir / name).stat().st_mtime))
            for name, start in self.first_seen.items()
        }


def union_length(intervals: list[tuple[float, float]]) -> float:
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            total += (cur_end - cur_start) if cur_end is not None else 0.0
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    return total + ((cur_end - cur_start) if cur_end is not None else 0.0)


HARDWARE: dict[str, Any] = {}  # config overrides for the overhead runs (set from the command line)


def project(
    base: Path, name: str, model: Path, wandb_mode: str, tree: Path = REPO, probe: bool = True
) -> Path:
    root = make_project(base / name)
    if tree != REPO:  # the code (Snakefile, rules, package) of another checkout, e.g. the baseline
        for rel in LINKED:
            (root / rel).unlink()
            (root / rel).symlink_to(tree / rel)
    shutil.copytree(model, root / "artifacts/base_models/tiny-qwen3")

    def apply(d: dict[str, Any]) -> None:
        d["runtime_info"]["input"]["infrastructure"].update(HARDWARE["infrastructure"])
        if not probe:
            d["runtime_info"]["input"]["infrastructure"]["fail_fast_probe"] = False
        d["runtime_info"]["input"]["training"].update(HARDWARE["training"])
        d["runtime_info"]["input"]["experiment"]["wandb_mode"] = wandb_mode

    edit_config(root / "config/config.yaml", apply)
    return root


def train_figures(output_dir: Path) -> dict[str, float | None]:
    """tokens/s and train_runtime from LF's all_results.json; the probe's own seconds if it ran."""
    results = json.loads((output_dir / "all_results.json").read_text())
    tokens, runtime = results.get("num_input_tokens_seen"), results.get("train_runtime")
    from sftpipe.runs.store import RunStore

    return {
        "tokens_per_s": tokens / runtime if tokens and runtime else None,
        "train_runtime_s": runtime,
        "probe_s": (RunStore(output_dir).read_probe() or {}).get("seconds"),
    }


def snakemake(root: Path, *extra: str) -> list[str]:
    return [str(BIN / "snakemake"), "--profile", "profiles/default", "--cores", "2", *extra]


def run_pipeline(
    base: Path, tag: str, model: Path, wandb_mode: str, tree: Path = REPO, probe: bool = True
) -> dict[str, Any]:
    root = project(base, f"pipeline-{tag}", model, wandb_mode, tree, probe)
    start = time.time()
    with RuleClock(root) as clock:
        wall = run_cmd(snakemake(root), root, child_env(tree))
    rules = {name.removesuffix(".log"): (s, e) for name, (s, e) in clock.intervals().items()}
    per_rule = {name: e - s for name, (s, e) in rules.items()}
    snakemake_own = wall - union_length(list(rules.values()))
    first_job = min((s for s, _ in rules.values()), default=start)
    return {
        "wall_s": wall,
        "per_rule_s": per_rule,
        "snakemake_own_s": snakemake_own,
        "snakemake_startup_s": first_job - start,
        "n_jobs": len(rules),
        **train_figures(root / "artifacts/model/demo-run"),
    }


def run_bare(base: Path, tag: str, model: Path, wandb_mode: str) -> dict[str, Any]:
    from sftpipe import config as sc
    from sftpipe.lf import render as lf_config

    root = project(base, f"bare-{tag}", model, wandb_mode)
    # Same data, already converted and registered (not timed); then LLaMA-Factory's own CLI and nothing else.
    run_cmd(snakemake(root, "--until", "register"), root)
    cfg = sc.load(root=root)
    lf = lf_config.render(cfg)  # report_to follows wandb_mode, exactly as in the pipeline's run
    lf["output_dir"] = "artifacts/model/bare"
    lf_config.dump(lf, root / "bare.yaml")
    env = child_env(
        FORCE_TORCHRUN="1",
        NPROC_PER_NODE=str(cfg.infrastructure["n_gpus_per_node"]),
        MASTER_PORT="29611",
        WANDB_MODE=wandb_mode,
        WANDB_DIR=str(root / "artifacts/model/bare"),
        TOKENIZERS_PARALLELISM="false",
    )
    if cfg.infrastructure["accelerator"] == "cpu":
        env.update(CUDA_VISIBLE_DEVICES="", DS_ACCELERATOR="cpu")
    wall = run_cmd([str(BIN / "llamafactory-cli"), "train", "bare.yaml"], root, env)
    return {"wall_s": wall, **train_figures(root / "artifacts/model/bare")}


def med(values: list[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return statistics.median(clean) if clean else None


def spread(values: list[float | None]) -> str:
    clean = [v for v in values if v is not None]
    return f"{min(clean):.1f}-{max(clean):.1f}" if clean else "-"


def bench_overhead(
    base: Path, model: Path, repeats: int, wandb_mode: str, baseline: Path | None
) -> dict[str, Any]:
    pipes, noprobes, bares, olds = [], [], [], []
    for i in range(repeats):
        tag = f"{wandb_mode}-{i}"
        order = [
            (pipes, run_pipeline, (base, tag, model, wandb_mode)),
            (noprobes, run_pipeline, (base, f"{tag}-noprobe", model, wandb_mode, REPO, False)),
            (bares, run_bare, (base, tag, model, wandb_mode)),
        ]
        if baseline:
            order.append((olds, run_pipeline, (base, f"{tag}-baseline", model, wandb_mode, baseline)))
        for out, fn, fn_args in (
            order[i % len(order) :] + order[: i % len(order)]
        ):  # rotate: load drift hits all
            out.append(fn(*fn_args))
    pipe_wall, bare_wall = [p["wall_s"] for p in pipes], [b["wall_s"] for b in bares]
    pipe_tps, bare_tps = [p["tokens_per_s"] for p in pipes], [b["tokens_per_s"] for b in bares]
    noprobe_tps = [p["tokens_per_s"] for p in noprobes]
    rules = sorted({r for p in pipes for r in p["per_rule_s"]})
    per_rule = {r: med([p["per_rule_s"].get(r) for p in pipes]) for r in rules}
    # Per-repeat ratios (same machine state) are less noisy than the ratio of medians.
    tps_ratios = [p / b for p, b in zip(pipe_tps, bare_tps) if p and b]
    per_token_ratios = [p / b for p, b in zip(noprobe_tps, bare_tps) if p and b]
    fixed = [p - b for p, b in zip(pipe_wall, bare_wall)]
    if olds:
        old_wall, old_tps = [p["wall_s"] for p in olds], [p["tokens_per_s"] for p in olds]
        baseline_summary = {
            "tree": str(baseline),
            "pipeline_wall_s": med(old_wall),
            "pipeline_wall_range_s": spread(old_wall),
            "wall_ratio": med([p / b for p, b in zip(old_wall, bare_wall)]),
            "fixed_cost_s": med([p - b for p, b in zip(old_wall, bare_wall)]),
            "per_rule_s": {
                r: med([p["per_rule_s"].get(r) for p in olds])
                for r in sorted({r for p in olds for r in p["per_rule_s"]})
            },
            "snakemake_own_s": med([p["snakemake_own_s"] for p in olds]),
            "pipeline_tokens_per_s": med(old_tps),
            "tokens_per_s_ratio": med([p / b for p, b in zip(old_tps, bare_tps) if p and b]),
            "runs": olds,
        }
    n_jobs = max((p["n_jobs"] for p in pipes), default=0)
    engine = bench_engine(base, n_jobs, repeats)
    return {
        "wandb_mode": wandb_mode,
        "repeats": repeats,
        "bytecode": bool(PYCACHE),
        **({"baseline": baseline_summary} if olds else {}),
        "pipeline_wall_s": med(pipe_wall),
        "bare_wall_s": med(bare_wall),
        "pipeline_wall_range_s": spread(pipe_wall),
        "bare_wall_range_s": spread(bare_wall),
        "wall_ratio": med([p / b for p, b in zip(pipe_wall, bare_wall)]),
        "fixed_cost_s": med(fixed),
        "fixed_costs_s": fixed,
        "per_rule_s": per_rule,
        "snakemake_own_s": med([p["snakemake_own_s"] for p in pipes]),
        "snakemake_startup_s": med([p["snakemake_startup_s"] for p in pipes]),
        "snakemake_engine_s": engine,
        "n_jobs": n_jobs,
        "pipeline_tokens_per_s": med(pipe_tps),
        "pipeline_noprobe_tokens_per_s": med(noprobe_tps),
        "bare_tokens_per_s": med(bare_tps),
        "tokens_per_s_ratio": med(tps_ratios),
        "tokens_per_s_ratios": tps_ratios,
        "per_token_ratio": med(per_token_ratios),
        "per_token_ratios": per_token_ratios,
        "train_runtime_s": {
            "pipeline": med([p["train_runtime_s"] for p in pipes]),
            "pipeline_noprobe": med([p["train_runtime_s"] for p in noprobes]),
            "bare": med([b["train_runtime_s"] for b in bares]),
        },
        "probe_cost_s": med([p["train_runtime_s"] - q["train_runtime_s"] for p, q in zip(pipes, noprobes)]),
        "probe_seconds_recorded": med([p["probe_s"] for p in pipes]),
        "runs": {"pipeline": pipes, "pipeline_noprobe": noprobes, "bare": bares},
    }


ENGINE_SNAKEFILE = """\
N = {n}


rule all:
    input:
        f"out/{{N}}.txt",


rule step:
    output:
        "out/{{i}}.txt",
    input:
        lambda w: [] if int(w.i) == 0 else [f"out/{{int(w.i) - 1}}.txt"],
    localrule: True
    shell:
        "touch {{output}}"
"""


def bench_engine(base: Path, n_jobs: int, repeats: int) -> float:
    """Wall time of Snakemake alone: a chain of `n_jobs` trivial jobs (plus `all`), the pipeline's profile."""
    root = base / "engine"
    (root / "profiles").mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "profiles/default", root / "profiles/default", dirs_exist_ok=True)
    (root / "Snakefile").write_text(ENGINE_SNAKEFILE.format(n=max(0, n_jobs - 1)))
    walls = []
    for _ in range(repeats):
        shutil.rmtree(root / "out", ignore_errors=True)
        shutil.rmtree(root / ".snakemake", ignore_errors=True)
        walls.append(run_cmd(snakemake(root), root))
    return statistics.median(walls)


def bench_startup(repeats: int, baseline: Path | None) -> dict[str, float]:
    """Wall time of the CLI start-up every small rule pays (argument parsing only, no work)."""
    n, out = max(repeats, 5), {}
    for name, tree in [
        ("sft_record_help_s", REPO),
        *([("baseline_sft_record_help_s", baseline)] if baseline else []),
    ]:
        out[name] = statistics.median(
            run_cmd([str(BIN / "sft"), "record", "--help"], REPO, child_env(tree)) for _ in range(n)
        )
    out["python_bare_s"] = statistics.median(run_cmd([sys.executable, "-c", "pass"], REPO) for _ in range(n))
    return out


def bench_dryrun(base: Path, model: Path, repeats: int) -> dict[str, float]:
    root = project(base, "dryrun", model, "offline")
    variants = root / "config/variants"
    for i in range(N_VARIANTS):
        (variants / f"bench{i:02d}.yaml").write_text(
            "runtime_info:\n  input:\n    training:\n"
            f"      learning_rate: {1e-4 * (i + 1):.6g}\n      output_dir: bench-run-{i:02d}\n"
        )
    names = ",".join(f"bench{i:02d}" for i in range(N_VARIANTS))
    cmd = [str(BIN / "snakemake"), "--profile", "profiles/default", "-n", "--quiet", "all"]
    one = [run_cmd(cmd, root) for _ in range(repeats)]
    many = [run_cmd([*cmd, "--config", f"variants={names}"], root) for _ in range(repeats)]
    return {
        "dryrun_one_s": statistics.median(one),
        f"dryrun_{N_VARIANTS}_variants_s": statistics.median(many),
        "ratio": statistics.median(many) / statistics.median(one),
    }


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def print_overhead(o: dict[str, Any]) -> None:
    print(
        f"\n== pipeline vs bare llamafactory-cli, tracking: wandb_mode={o['wandb_mode']} on both sides, "
        f"median of {o['repeats']} =="
    )
    print(
        f"wall      pipeline {fmt(o['pipeline_wall_s'])} s (range {o['pipeline_wall_range_s']})   "
        f"bare {fmt(o['bare_wall_s'])} s (range {o['bare_wall_range_s']})   ratio {fmt(o['wall_ratio'], '.2f')}"
    )
    print(f"fixed cost (pipeline - bare): {fmt(o['fixed_cost_s'])} s")
    print(f"  {'snakemake start-up (before the first job)':44s} {fmt(o['snakemake_startup_s'], '6.1f')} s")
    print(f"  {'snakemake own (start-up + scheduling gaps)':44s} {fmt(o['snakemake_own_s'], '6.1f')} s")
    for rule, secs in o["per_rule_s"].items():
        print(f"  rule {rule:39s} {fmt(secs, '6.1f')} s")
    print(
        f"  {'snakemake engine alone (' + str(o['n_jobs']) + ' trivial jobs)':44s} {fmt(o['snakemake_engine_s'], '6.1f')} s"
    )
    ratios = ", ".join(f"{r:.3f}" for r in o["per_token_ratios"])
    rt = o["train_runtime_s"]
    print(
        f"per-token cost: training tokens/s pipeline (probe off) {fmt(o['pipeline_noprobe_tokens_per_s'])} vs bare "
        f"{fmt(o['bare_tokens_per_s'])}: ratio {fmt(o['per_token_ratio'], '.3f')} (per repeat: {ratios})"
    )
    print(
        f"fail-fast probe: a one-off {fmt(o['probe_cost_s'], '.2f')} s of train_runtime (on - off; it records "
        f"{fmt(o['probe_seconds_recorded'], '.2f')} s, taking the first step's warm-up); default pipeline "
        f"tokens/s ratio {fmt(o['tokens_per_s_ratio'], '.3f')}; train_runtime pipeline {fmt(rt['pipeline'], '.2f')} "
        f"/ probe off {fmt(rt['pipeline_noprobe'], '.2f')} / bare {fmt(rt['bare'], '.2f')} s",
        flush=True,
    )
    if b := o.get("baseline"):
        print(
            f"baseline {b['tree']}: wall {fmt(b['pipeline_wall_s'])} s (range {b['pipeline_wall_range_s']}), "
            f"ratio to bare {fmt(b['wall_ratio'], '.2f')}, fixed cost {fmt(b['fixed_cost_s'])} s, "
            f"snakemake own {fmt(b['snakemake_own_s'])} s, tokens/s ratio {fmt(b['tokens_per_s_ratio'], '.3f')}"
        )
        print(
            "  per rule (baseline -> this tree): "
            + ", ".join(f"{r} {fmt(v)}->{fmt(o['per_rule_s'].get(r))}" for r, v in b["per_rule_s"].items()),
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-dryrun", action="store_true")
    parser.add_argument(
        "--default-tracker",
        action="store_true",
        help="same as --tracking disabled,offline (the pipeline's default tracker on both sides)",
    )
    parser.add_argument(
        "--tracking",
        default="disabled",
        help="comma-separated wandb_mode values to compare, each on both sides (default: disabled)",
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="another checkout (e.g. `git archive` of main): its pipeline runs side by side too",
    )
    parser.add_argument(
        "--pycache",
        type=Path,
        help="bytecode cache for every child process (PYTHONPYCACHEPREFIX), as after "
        "`uv sync --compile-bytecode`; default: as the environment is",
    )
    parser.add_argument("--preset", default="tiny", help="tiny | qwen3-0.6b (random-init Qwen3 architecture)")
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--gpus", type=int, default=2, help="ranks per node")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=32,
        help="training steps (the demo has 8; 32 separates one-offs from per-token)",
    )
    args = parser.parse_args()
    from sftpipe.data.tiny_model import build_tiny_model

    HARDWARE.update(
        infrastructure={"accelerator": args.accelerator, "n_gpus_per_node": args.gpus},
        training={
            "bf16": args.bf16,
            "max_steps": args.max_steps,
            **({"flash_attn": "sdpa"} if args.accelerator == "cuda" else {}),
        },
    )
    if args.pycache:
        PYCACHE.append(args.pycache.resolve())
    baseline = args.baseline_tree.resolve() if args.baseline_tree else None
    results: dict[str, Any] = {"startup": bench_startup(args.repeats, baseline)}
    s = results["startup"]
    print(
        f"sft record --help {s['sft_record_help_s']:.2f} s"
        + (f" (baseline {s['baseline_sft_record_help_s']:.2f} s)" if baseline else "")
        + f"; python -c pass {s['python_bare_s']:.2f} s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="sft-bench-") as tmp:
        base = Path(tmp)
        model = build_tiny_model(base / "model", preset=args.preset)
        if not args.skip_dryrun:
            results["dryrun"] = bench_dryrun(base, model, args.repeats)
            d = results["dryrun"]
            print(
                f"snakemake -n: 1 run {d['dryrun_one_s']:.2f} s, {N_VARIANTS} variants "
                f"{d[f'dryrun_{N_VARIANTS}_variants_s']:.2f} s (ratio {d['ratio']:.2f})",
                flush=True,
            )
        if not args.skip_training:
            modes = [m for m in args.tracking.split(",") if m]
            if args.default_tracker and "offline" not in modes:
                modes.append("offline")
            for mode in modes:
                results[f"overhead_{mode}"] = bench_overhead(base, model, args.repeats, mode, baseline)
                print_overhead(results[f"overhead_{mode}"])
                if args.json:  # partial results survive a later failure
                    args.json.write_text(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
