"""Pipeline overhead benchmarks, measured side by side in one run (ratios, not absolute seconds).

1. Whole pipeline (`snakemake`: register, tokenize, train, metrics, plot, write-back, record) vs bare
   `llamafactory-cli train` on the same rendered config, data and tiny model (2 CPU ranks, ZeRO-3).
2. `snakemake -n` latency: the active profile alone vs 20 config variants in one invocation.

Usage: python bench/bench_pipeline.py [--repeats N] [--json OUT]
       python bench/bench_pipeline.py --skip-dryrun --preset qwen3-0.6b --accelerator cuda --gpus 8 --bf16
           (on a GPU node: a random-init Qwen3-0.6B-sized model, bf16, ZeRO-3; also prints tokens/s of both)
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "workflow"))

from tests.project import edit_config, make_project

BIN = Path(sys.executable).parent
N_VARIANTS = 20


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


HARDWARE: dict[str, object] = {}  # config overrides for the overhead runs (set from the command line)


def project(base: Path, name: str, model: Path) -> Path:
    root = make_project(base / name)
    shutil.copytree(model, root / "artifacts/base_models/tiny-qwen3")
    if HARDWARE:
        def apply(d):
            d["runtime_info"]["input"]["infrastructure"].update(HARDWARE["infrastructure"])
            d["runtime_info"]["input"]["training"].update(HARDWARE["training"])
        edit_config(root / "config/config.yaml", apply)
    return root


def tokens_per_second(run_dir: Path) -> float | None:
    results = json.loads((run_dir / "all_results.json").read_text())
    tokens, runtime = results.get("num_input_tokens_seen"), results.get("train_runtime")
    return tokens / runtime if tokens and runtime else None


def bench_overhead(base: Path, model: Path) -> dict[str, float]:
    from sftpipe import config as sc
    from sftpipe.lf import render as lf_config

    root = project(base, "pipeline", model)
    snake = timed([str(BIN / "snakemake"), "--profile", "profiles/default", "--cores", "2"], root)

    bare_root = project(base, "bare", model)
    # Same data, already registered; the bare run trains with LLaMA-Factory's own CLI and nothing else.
    timed([str(BIN / "snakemake"), "--profile", "profiles/default", "--cores", "2", "--until", "register"],
          bare_root)
    cfg = sc.load(root=bare_root)
    lf = lf_config.render(cfg)
    lf["output_dir"] = "artifacts/model/bare"
    lf_config.dump(lf, bare_root / "bare.yaml")
    env = dict(os.environ, FORCE_TORCHRUN="1", NPROC_PER_NODE=str(cfg.infrastructure["n_gpus_per_node"]),
               MASTER_PORT="29611", WANDB_MODE="disabled")
    if cfg.infrastructure["accelerator"] == "cpu":
        env.update(CUDA_VISIBLE_DEVICES="", DS_ACCELERATOR="cpu")
    bare = timed([str(BIN / "llamafactory-cli"), "train", "bare.yaml"], bare_root, env)
    return {"pipeline_s": snake, "bare_llamafactory_s": bare, "ratio": snake / bare,
            "pipeline_train_tokens_per_s": tokens_per_second(root / "artifacts/model/demo-run"),
            "bare_train_tokens_per_s": tokens_per_second(bare_root / "artifacts/model/bare")}


def bench_dryrun(base: Path, model: Path, repeats: int) -> dict[str, float]:
    root = project(base, "dryrun", model)
    variants = root / "config/variants"
    for i in range(N_VARIANTS):
        (variants / f"bench{i:02d}.yaml").write_text(
            "runtime_info:\n  input:\n    training:\n"
            f"      learning_rate: {1e-4 * (i + 1):.6g}\n      output_dir: bench-run-{i:02d}\n")
    names = ",".join(f"bench{i:02d}" for i in range(N_VARIANTS))
    cmd = [str(BIN / "snakemake"), "--profile", "profiles/default", "-n", "--quiet", "all"]
    one = [timed(cmd, root) for _ in range(repeats)]
    many = [timed([*cmd, "--config", f"variants={names}"], root) for _ in range(repeats)]
    return {"dryrun_one_s": statistics.median(one), f"dryrun_{N_VARIANTS}_variants_s": statistics.median(many),
            "ratio": statistics.median(many) / statistics.median(one)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-dryrun", action="store_true")
    parser.add_argument("--preset", default="tiny", help="tiny | qwen3-0.6b (random-init Qwen3 architecture)")
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--gpus", type=int, default=2, help="ranks per node")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--max-steps", type=int, default=8)
    args = parser.parse_args()
    from sftpipe.data.tiny_model import build_tiny_model

    HARDWARE.update(infrastructure={"accelerator": args.accelerator, "n_gpus_per_node": args.gpus},
                    training={"bf16": args.bf16, "max_steps": args.max_steps,
                              **({"flash_attn": "sdpa"} if args.accelerator == "cuda" else {})})
    with tempfile.TemporaryDirectory(prefix="sft-bench-") as tmp:
        base = Path(tmp)
        model = build_tiny_model(base / "model", preset=args.preset)
        results = {}
        if not args.skip_dryrun:
            results["dryrun"] = bench_dryrun(base, model, args.repeats)
            d = results["dryrun"]
            print(f"snakemake -n: 1 run {d['dryrun_one_s']:.2f} s, {N_VARIANTS} variants "
                  f"{d[f'dryrun_{N_VARIANTS}_variants_s']:.2f} s (ratio {d['ratio']:.2f})", flush=True)
        if not args.skip_training:
            results["overhead"] = bench_overhead(base, model)
            o = results["overhead"]
            print(f"whole pipeline {o['pipeline_s']:.1f} s vs bare llamafactory-cli {o['bare_llamafactory_s']:.1f} s "
                  f"(ratio {o['ratio']:.2f}); training tokens/s pipeline {o['pipeline_train_tokens_per_s']} "
                  f"vs bare {o['bare_train_tokens_per_s']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
