"""Run records written into the run directory, for reproducing and diagnosing a run.

At start (`write_start_records`): `code.diff` (uncommitted changes of the checkout), `environment.json`
(Python, key package versions, CUDA/GPU when present, uv.lock hash), `dataset.json` (sha256, rows and
size of the LF data file the run trains on, plus its dataset_info.json entry) and a first
`events.jsonl` record. While running: `heartbeat.json` every ~15 s (`heartbeat()`, read by
sftpipe.runs.status to tell a live run on another host from a dead one). At the end:
`checkpoints.jsonl` (`write_checkpoint_index`).

No credential may reach any of these files: every text written goes through `redact()`, which
replaces the values of the run's credentials and of secret-named environment variables, and masks
`key: value` lines whose key names a secret (a code diff of a config holding a token).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from sftpipe.util.fs import atomic_write_json, atomic_write_text, file_lock
from sftpipe.util.redact import redact, redact_obj, register_secrets
from sftpipe.util.git import code_diff, git_commit

CODE_DIFF = "code.diff"
ENVIRONMENT = "environment.json"
DATASET = "dataset.json"
EVENTS = "events.jsonl"
CHECKPOINT_INDEX = "checkpoints.jsonl"
HEARTBEAT = "heartbeat.json"
HEARTBEAT_INTERVAL_S = 15.0
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PACKAGES = ("torch", "transformers", "llamafactory", "deepspeed", "accelerate", "datasets", "peft", "trl",
            "tokenizers", "flash-attn", "liger-kernel", "wandb", "snakemake", "sftpipe")
def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _utc_now() -> str:
    from sftpipe.runs.index import utc_now
    return utc_now()


# --------------------------------------------------------------------------------------- events
def log_event(run_dir: Path, level: str, message: str, /, **data: Any) -> dict[str, Any]:
    """Append one structured record {timestamp, level, message, data} to events.jsonl (redacted)."""
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"level {level!r} is not one of {', '.join(LEVELS)}")
    record = {"timestamp": _utc_now(), "level": level, "message": message, "data": data}
    line = redact(json.dumps(record, ensure_ascii=False, default=str)) + "\n"
    path = Path(run_dir) / EVENTS
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path), open(path, "a", encoding="utf-8") as fh:  # one line per write: no interleaving
        fh.write(line)
        fh.flush()
    return json.loads(line)


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / EVENTS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------------- environment
def _gpu_info() -> list[dict[str, str]]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=index,name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20, check=False)
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
    env_keys = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_JOB_NODELIST", "NCCL_DEBUG", "NCCL_SOCKET_IFNAME",
                "WANDB_MODE", "HF_HUB_OFFLINE", "OMP_NUM_THREADS")
    return {
        "recorded_at": _utc_now(),
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
        return {"data_name": data_name, "dataset_info": str(info_path),
                "error": f"no entry {data_name!r} in dataset_info.json"}
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
def write_start_records(cfg: Any, run_dir: Path) -> dict[str, str]:
    """code.diff, environment.json, dataset.json and a `run started` event; returns the file paths.

    `cfg` is a sftpipe.config.RunConfig; its credential values are registered for redaction first.
    """
    from sftpipe.config import CREDENTIAL_ENV
    from sftpipe.paths import LF_DATA_DIR

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    register_secrets(cfg.credential(key) for key in CREDENTIAL_ENV)
    root = Path(cfg.root)
    atomic_write_text(run_dir / CODE_DIFF, redact(code_diff(root)))
    atomic_write_json(run_dir / ENVIRONMENT, redact_obj(environment_info(root)))
    fingerprint = dataset_fingerprint(root / LF_DATA_DIR, cfg.data_name)
    atomic_write_json(run_dir / DATASET, redact_obj(fingerprint))
    log_event(run_dir, "INFO", "run started", run_dir=str(cfg.run_dir), variant=cfg.variant or None,
              data_name=cfg.data_name, dataset_sha256=fingerprint.get("sha256"),
              config_hash=cfg.config_hash(), training_hash=cfg.training_hash())
    if "error" in fingerprint:
        log_event(run_dir, "WARNING", "dataset fingerprint incomplete", error=fingerprint["error"])
    return {name: str(run_dir / name) for name in (CODE_DIFF, ENVIRONMENT, DATASET, EVENTS)}


def write_checkpoint_index(run_dir: Path, model_only: bool = False) -> list[dict[str, Any]]:
    """Rewrite checkpoints.jsonl: one line per checkpoint (path, step, loss/eval_loss, complete, time)."""
    from sftpipe.runs.best import checkpoint_table

    rows = checkpoint_table(run_dir, model_only)
    atomic_write_text(Path(run_dir) / CHECKPOINT_INDEX,
                      "".join(redact(json.dumps(row, default=str)) + "\n" for row in rows))
    return rows


def write_end_records(run_dir: Path, status: str, exit_code: int | None, model_only: bool = False) -> None:
    """checkpoints.jsonl and a `run ended` event (level by status); never raises into the launcher's trap."""
    try:
        rows = write_checkpoint_index(run_dir, model_only)
    except Exception as exc:  # noqa: BLE001 - the launcher must still record the run's end
        log_event(run_dir, "ERROR", "checkpoint index not written", error=str(exc))
        rows = []
    level = "INFO" if status in ("completed", "stopped") else "WARNING" if status != "failed" else "ERROR"
    log_event(run_dir, level, "run ended", status=status, exit_code=exit_code,
              checkpoints=len(rows), complete_checkpoints=sum(1 for r in rows if r["complete"]))


# ----------------------------------------------------------------------------------- heartbeat
class Heartbeat:
    """A daemon thread rewriting heartbeat.json every `interval_s` while the launcher waits."""

    def __init__(self, run_dir: Path, interval_s: float = HEARTBEAT_INTERVAL_S, **info: Any):
        self.path = Path(run_dir) / HEARTBEAT
        self.interval_s = interval_s
        self.info = info
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sft-heartbeat", daemon=True)

    def beat(self, alive: bool = True) -> None:
        self.beats += 1
        atomic_write_json(self.path, {"pid": os.getpid(), "host": socket.gethostname(), "alive": alive,
                                      "time": _utc_now(), "unix_time": time.time(),
                                      "interval_s": self.interval_s, "beats": self.beats, **self.info})

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(OSError):  # a full or flaky filesystem must not kill the launcher
                self.beat()

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval_s + 5)
        with contextlib.suppress(OSError):
            self.beat(alive=False)


@contextlib.contextmanager
def heartbeat(run_dir: Path, interval_s: float = HEARTBEAT_INTERVAL_S, **info: Any) -> Iterator[Heartbeat]:
    """`with heartbeat(run_dir, run_id=...):` around the launcher's wait for torchrun."""
    hb = Heartbeat(run_dir, interval_s, **info).start()
    try:
        yield hb
    finally:
        hb.stop()
