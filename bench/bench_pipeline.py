"""Pipeline overhead benchmarks, measured side by side in one run (ratios, not absolute seconds).

1. Whole pipeline (`snakemake`: register, tokenize, train, metrics, plot, write-back, record) vs bare
   `llamafactory-cli train` on the same rendered config, data and tiny model (2 CPU ranks, ZeRO-3).
2. `snakemake -n` latency: the active profile alone vs 20 config variants in one invocation.

Usage: python bench/bench_pipeline.py [--repeats N] [--json OUT]
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

from tests.project import make_project

BIN = Path(sys.executable).parent
N_VARIANTS = 20


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


def project(base: Path, name: str, model: Path) -> Path:
    root = make_project(base / name)
    shutil.copytree(model, root / "artifacts/base_models/tiny-qwen3")
    return root


def bench_overhead(base: Path, model: Path) -> dict[str, float]:
    from sftpipe import config as sc
    from sftpipe import lf_config

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
               MASTER_PORT="29611", CUDA_VISIBLE_DEVICES="", DS_ACCELERATOR="cpu", WANDB_MODE="disabled")
    bare = timed([str(BIN / "llamafactory-cli"), "train", "bare.yaml"], bare_root, env)
    return {"pipeline_s": snake, "bare_llamafactory_s": bare, "ratio": snake / bare}


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
    args = parser.parse_args()
    from sftpipe.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="sft-bench-") as tmp:
        base = Path(tmp)
        model = build_tiny_model(base / "model")
        results = {"dryrun": bench_dryrun(base, model, args.repeats)}
        print(f"snakemake -n: 1 run {results['dryrun']['dryrun_one_s']:.2f} s, {N_VARIANTS} variants "
              f"{results['dryrun'][f'dryrun_{N_VARIANTS}_variants_s']:.2f} s "
              f"(ratio {results['dryrun']['ratio']:.2f})", flush=True)
        if not args.skip_training:
            results["overhead"] = bench_overhead(base, model)
            o = results["overhead"]
            print(f"whole pipeline {o['pipeline_s']:.1f} s vs bare llamafactory-cli {o['bare_llamafactory_s']:.1f} s "
                  f"(ratio {o['ratio']:.2f})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
