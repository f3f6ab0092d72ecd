"""Provenance records of a run, written into its directory at start: how to reproduce and diagnose it.

`code.diff` (uncommitted changes of the checkout), `environment.json` (Python, key package versions, CUDA/GPU
when present, uv.lock hash), `dataset.json` (sha256, rows and size of the LF data file the run trains on, plus
its dataset_info.json entry) and a `run started` event; at the end the checkpoint index and a `run ended`
event. The run store (`sftpipe.runs.store`) writes the files and redacts every text: no credential reaches them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from sftpipe.config import CREDENTIAL_ENV, RunConfig
from sftpipe.paths import LF_DATA_DIR
from sftpipe.runs.best import checkpoint_table
from sftpipe.runs.store import RunStore
from sftpipe.util.git import code_diff, git_commit
from sftpipe.util.redact import register_secrets
from sftpipe.util.timefmt import utc_now

PACKAGES = (
    "torch",
    "transformers",
    "llamafactory",
    "deepspeed",
    "accelerate",
    "datasets",
    "peft",
    "trl",
    "tokenizers",
    "flash-attn",
    "liger-kernel",
    "wandb",
    "snakemake",
    "sftpipe",
)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------- environment
def _gpu_info() -> list[dict[str, str]]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            gpus.append(dict(zip(("index", "name", "memory_total", "driver_version"), parts)))
    return gpus


def environment_info(root: Path) -> dict[str, Any]:
    """What the run executes with; no imports of the heavy packages (versions from metadata)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cuda = None
    with contextlib.suppress(Exception):
        torch_dir = Path(metadata.distribution("torch").locate_file("torch"))
        version_py = (torch_dir / "version.py").read_text()
        m = re.search(r"^cuda\s*(?::\s*\w+)?\s*=\s*['\"]([^'\"]+)['\"]", version_py, re.MULTILINE)
        cuda = m.group(1) if m else None
    lock = Path(root) / "uv.lock"
    env_keys = (
        "CUDA_VISIBLE_DEVICES",
        "SLURM_JOB_ID",
        "SLURM_JOB_NODELIST",
        "NCCL_DEBUG",
        "NCCL_SOCKET_IFNAME",
        "WANDB_MODE",
        "HF_HUB_OFFLINE",
        "OMP_NUM_THREADS",
    )
    return {
        "recorded_at": utc_now(),
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "packages": versions,
        "torch_cuda_build": cuda,
        "gpus": _gpu_info(),
        "cpu_count": os.cpu_count(),
        "uv_lock_sha256": sha256_file(lock) if lock.is_file() else None,
        "git_commit": git_commit(Path(root)),
        "env": {k: os.environ[k] for k in env_keys if k in os.environ},
    }


# ------------------------------------------------------------------------------------- dataset
def dataset_fingerprint(dataset_dir: Path, data_name: str) -> dict[str, Any]:
    """sha256/rows/size of the file LF reads for `data_name`, from dataset_info.json's entry."""
    from sftpipe.data.registration import RegistrationError, count_rows

    info_path = Path(dataset_dir) / "dataset_info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return {"data_name": data_name, "dataset_info": str(info_path), "error": f"cannot read: {exc}"}
    entry = info.get(data_name) if isinstance(info, dict) else None
    if not isinstance(entry, dict):
        return {
            "data_name": data_name,
            "dataset_info": str(info_path),
            "error": f"no entry {data_name!r} in dataset_info.json",
        }
    out: dict[str, Any] = {"data_name": data_name, "dataset_info": str(info_path), "entry": entry}
    if "file_name" not in entry:  # hf_hub_url and friends: pulled at train time, nothing local to hash
        out["source"] = "hub"
        return out
    path = Path(entry["file_name"])
    path = path if path.is_absolute() else Path(dataset_dir) / path
    out["file"] = str(path.resolve())
    if not path.is_file():
        out["error"] = f"dataset file {path} does not exist"
        return out
    out["sha256"] = sha256_file(path)
    out["size_bytes"] = path.stat().st_size
    try:
        out["rows"] = count_rows(path)
    except RegistrationError as exc:
        out["rows"], out["error"] = None, str(exc)
    return out


# ---------------------------------------------------------------------------------- start/end
def write_start_records(cfg: RunConfig, store: RunStore) -> dict[str, Any]:
    """code.diff, environment.json, dataset.json and a `run started` event; returns the fingerprint.

    The run's credential values are registered for redaction first.
    """
    store.dir.mkdir(parents=True, exist_ok=True)
    register_secrets(cfg.credential(key) for key in CREDENTIAL_ENV)
    root = Path(cfg.root)
    store.write_code_diff(code_diff(root))
    store.write_environment(environment_info(root))
    fingerprint = dataset_fingerprint(root / LF_DATA_DIR, cfg.data_name)
    store.write_dataset_fingerprint(fingerprint)
    store.log_event(
        "INFO",
        "run started",
        run_dir=str(cfg.run_dir),
        variant=cfg.variant or None,
        data_name=cfg.data_name,
        dataset_sha256=fingerprint.get("sha256"),
        config_hash=cfg.config_hash(),
        training_hash=cfg.training_hash(),
    )
    if "error" in fingerprint:
        store.log_event("WARNING", "dataset fingerprint incomplete", error=fingerprint["error"])
    return fingerprint


def write_checkpoint_index(store: RunStore, model_only: bool = False) -> list[dict[str, Any]]:
    """Rewrite checkpoints.jsonl: one line per checkpoint (path, step, loss/eval_loss, complete, time)."""
    rows = checkpoint_table(store.dir, model_only)
    store.write_checkpoint_index(rows)
    return rows


def write_end_records(store: RunStore, status: str, exit_code: int | None, model_only: bool = False) -> None:
    """checkpoints.jsonl and a `run ended` event (level by status); never raises into the launcher's trap."""
    try:
        rows = write_checkpoint_index(store, model_only)
    except Exception as exc:  # noqa: BLE001 - the launcher must still record the run's end
        store.log_event("ERROR", "checkpoint index not written", error=str(exc))
        rows = []
    level = "INFO" if status in ("completed", "stopped") else "WARNING" if status != "failed" else "ERROR"
    store.log_event(
        level,
        "run ended",
        status=status,
        exit_code=exit_code,
        checkpoints=len(rows),
        complete_checkpoints=sum(1 for r in rows if r["complete"]),
    )
