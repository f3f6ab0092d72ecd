"""Helpers to run the real pipeline (Snakemake + LLaMA-Factory + DeepSpeed on CPU) in a throwaway project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.project import make_project

BIN = Path(sys.executable).parent
DEMO_MODEL = "artifacts/base_models/tiny-qwen3"


def demo_project(dest: Path, tiny_model_dir: Path) -> Path:
    """A copy of the shipped project with the demo model pre-built (the build rule is tested on its own)."""
    root = make_project(dest)
    shutil.copytree(tiny_model_dir, root / DEMO_MODEL)
    return root


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}:{e.get('PATH', '')}"
    e.pop("WANDB_API_KEY", None)
    e.update(extra)
    return e


def snakemake(
    root: Path, *args: str, check: bool = True, timeout: int = 900, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "snakemake"), "--profile", "profiles/default", "--cores", "2", *args]
    proc = subprocess.run(
        cmd,
        cwd=root,
        env=env(**(extra_env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-6000:]}"
        )
    return proc


def planned_jobs(root: Path, *args: str) -> set[str]:
    """Rule names a dry run would execute (parsed from the job-stats table)."""
    out = snakemake(root, "-n", "--quiet", "rules", *args).stdout
    jobs = set()
    in_table = False
    for line in out.splitlines():
        if line.startswith(("job ", "job\t")):
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if not parts or parts[0] == "total":
                break
            if parts[0] != "all" and not set(parts[0]) <= {"-"}:
                jobs.add(parts[0])
    return jobs
