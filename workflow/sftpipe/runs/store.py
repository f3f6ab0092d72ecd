"""The run directory store: the ONLY reader and writer of the pipeline's records inside a run directory.

Every record has a typed read/write pair here (names from `sftpipe.paths`): run.json (the current attempt and
how it ended), the stop request every rank polls, stop_reason.json (written by the training entry point), the
heartbeat, the structured events log, the checkpoint index, the train manifest and the start records
(code diff, environment, dataset fingerprint). Files LLaMA-Factory writes are read through here too.
Writes are atomic (readers never see a torn file) and every text passes credential redaction.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

from sftpipe import paths
from sftpipe.util.fs import atomic_write_json, atomic_write_text, file_lock
from sftpipe.util.redact import redact, redact_obj
from sftpipe.util.timefmt import utc_now

HEARTBEAT_INTERVAL_S = 15.0
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class StopRequest(TypedDict, total=False):
    """stop_request.json: why the ranks are asked to stop and when."""

    reason: str  # stopped | timeout | preempted | interrupted
    detail: str
    requested_at: str


class Manifest(TypedDict, total=False):
    """The train manifest: the run's outcome as the train rule declares it."""

    run_id: str
    run_dir: str
    status: str
    checkpoint_path: str | None
    final_loss: float | None
    config_hash: str
    training_hash: str
    console_log: str


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`; None when missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class RunStore:
    """One run directory (artifacts/model/<run>, or an absolute training.output_dir)."""

    def __init__(self, run_dir: Path | str):
        self.dir = Path(run_dir)

    def __repr__(self) -> str:
        return f"RunStore({str(self.dir)!r})"

    def path(self, name: str) -> Path:
        """The file `name` inside the run directory (it may not exist)."""
        return self.dir / name

    # ---- run.json ------------------------------------------------------------------------------------
    def read_run_record(self) -> dict[str, Any] | None:
        return read_json(self.path(paths.RUN_RECORD))

    def write_run_record(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.path(paths.RUN_RECORD), redact_obj(record))

    # ---- stop request (launcher signals, `sft stop`, SLURM time-limit guard) → every rank -------------
    @property
    def stop_request_path(self) -> Path:
        return self.path(paths.STOP_REQUEST)

    def request_stop(self, reason: str, detail: str = "") -> StopRequest:
        """Write the stop request every rank polls; returns it."""
        request: StopRequest = {"reason": reason, "detail": detail, "requested_at": utc_now()}
        atomic_write_json(self.stop_request_path, request)
        return request

    def read_stop_request(self) -> dict[str, Any] | None:
        return read_json(self.stop_request_path)

    def clear_stop_request(self) -> None:
        """Remove the stop request (if any) so a new attempt is not stopped at once."""
        self.stop_request_path.unlink(missing_ok=True)

    # ---- stop_reason.json (the training entry point, when the ranks stopped on request) ---------------
    def read_stop_reason(self) -> dict[str, Any] | None:
        return read_json(self.path(paths.STOP_REASON))

    def write_stop_reason(self, reason: dict[str, Any]) -> None:
        atomic_write_json(self.path(paths.STOP_REASON), reason)

    def archive_stop_reason(self, label: str) -> Path | None:
        """Keep an earlier attempt's stop reason as stop_reason.<label>.json; a new attempt starts without one."""
        current = self.path(paths.STOP_REASON)
        if not current.is_file():
            return None
        target = current.with_name(f"{current.stem}.{label}{current.suffix}")
        os.replace(current, target)
        return target

    # ---- max_length_probe.json (the fail-fast probe, rank 0) and rank_memory/ ------------------------
    def write_probe(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.path(paths.PROBE_RECORD), record)

    def read_probe(self) -> dict[str, Any] | None:
        return read_json(self.path(paths.PROBE_RECORD))

    def write_rank_memory(self, rank: int, record: dict[str, Any]) -> None:
        atomic_write_json(self.dir / paths.RANK_MEMORY_DIR / f"rank_{rank}.json", record)

    def read_rank_memory(self) -> dict[int, dict[str, Any]]:
        """Peak memory records by rank (empty when none was written, e.g. on CPU)."""
        out = {}
        for path in sorted((self.dir / paths.RANK_MEMORY_DIR).glob("rank_*.json")):
            record = read_json(path)
            if record is not None and path.stem[5:].isdigit():
                out[int(path.stem[5:])] = record
        return out

    # ---- heartbeat.json --------------------------------------------------------------------------------
    def write_heartbeat(self, beat: dict[str, Any]) -> None:
        atomic_write_json(self.path(paths.HEARTBEAT), beat)

    def read_heartbeat(self) -> dict[str, Any] | None:
        return read_json(self.path(paths.HEARTBEAT))

    # ---- events.jsonl ----------------------------------------------------------------------------------
    def log_event(self, level: str, message: str, /, **data: Any) -> dict[str, Any]:
        """Append one structured record {timestamp, level, message, data} (redacted)."""
        level = level.upper()
        if level not in LEVELS:
            raise ValueError(f"level {level!r} is not one of {', '.join(LEVELS)}")
        record = {"timestamp": utc_now(), "level": level, "message": message, "data": data}
        line = redact(json.dumps(record, ensure_ascii=False, default=str)) + "\n"
        path = self.path(paths.EVENTS)
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path), open(path, "a", encoding="utf-8") as fh:  # one line per write: no interleaving
            fh.write(line)
        return json.loads(line)

    def read_events(self) -> list[dict[str, Any]]:
        """Every event record in order; unparseable lines are skipped."""
        path = self.path(paths.EVENTS)
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                if line.strip():
                    out.append(json.loads(line))
        return out

    # ---- checkpoints.jsonl -------------------------------------------------------------------------------
    def write_checkpoint_index(self, rows: list[dict[str, Any]]) -> None:
        """Replace checkpoints.jsonl with `rows` (redacted), one JSON per line."""
        atomic_write_text(
            self.path(paths.CHECKPOINT_INDEX),
            "".join(redact(json.dumps(row, default=str)) + "\n" for row in rows),
        )

    def read_checkpoint_index(self) -> list[dict[str, Any]]:
        path = self.path(paths.CHECKPOINT_INDEX)
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    # ---- start records -------------------------------------------------------------------------------------
    def write_code_diff(self, diff: str) -> None:
        atomic_write_text(self.path(paths.CODE_DIFF), redact(diff))

    def write_environment(self, info: dict[str, Any]) -> None:
        atomic_write_json(self.path(paths.ENVIRONMENT), redact_obj(info))

    def read_environment(self) -> dict[str, Any] | None:
        return read_json(self.path(paths.ENVIRONMENT))

    def write_dataset_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        atomic_write_json(self.path(paths.DATASET_FINGERPRINT), redact_obj(fingerprint))

    def read_dataset_fingerprint(self) -> dict[str, Any] | None:
        return read_json(self.path(paths.DATASET_FINGERPRINT))

    def read_text(self, name: str, tail_bytes: int | None = None) -> str | None:
        """A text record (code.diff, run_config.yaml, ...); with tail_bytes only its end."""
        path = self.path(name)
        try:
            with open(path, "rb") as fh:
                if tail_bytes is not None:
                    fh.seek(max(0, path.stat().st_size - tail_bytes))
                return fh.read().decode("utf-8", errors="replace")
        except OSError:
            return None

    # ---- files LLaMA-Factory writes ---------------------------------------------------------------------
    def finished(self) -> bool:
        """LF wrote train_results.json: the schedule ran to its end (a stopped run never writes it)."""
        return self.path(paths.TRAIN_RESULTS).is_file()

    def read_train_results(self) -> dict[str, Any]:
        """LF's train_results.json; {} when missing or unreadable."""
        return read_json(self.path(paths.TRAIN_RESULTS)) or {}

    @property
    def trainer_log(self) -> Path:
        return self.path(paths.TRAINER_LOG)

    @property
    def trainer_state(self) -> Path:
        return self.path(paths.TRAINER_STATE)


# ---- the train manifest: the train rule's declared output (its path is given by the rule) ----------------
def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write the train manifest atomically (not redacted)."""
    atomic_write_json(Path(path), manifest)


def read_manifest(path: Path) -> Manifest:
    """The train manifest; FileNotFoundError when missing or unreadable."""
    data = read_json(Path(path))
    if data is None:
        raise FileNotFoundError(f"{path}: no readable train manifest")
    return data  # type: ignore[return-value]


# ---- heartbeat writer -------------------------------------------------------------------------------------------
class Heartbeat:
    """A daemon thread rewriting heartbeat.json every `interval_s` while the launcher waits (read by `sft
    status` to tell a live run on another host from a dead one)."""

    def __init__(self, store: RunStore, interval_s: float = HEARTBEAT_INTERVAL_S, **info: Any):
        self.store = store
        self.interval_s = interval_s
        self.info = info
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sft-heartbeat", daemon=True)

    def beat(self, alive: bool = True) -> None:
        """Rewrite heartbeat.json now; `alive=False` marks the launcher's last beat."""
        self.beats += 1
        self.store.write_heartbeat(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "alive": alive,
                "time": utc_now(),
                "unix_time": time.time(),
                "interval_s": self.interval_s,
                "beats": self.beats,
                **self.info,
            }
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(OSError):  # a full or flaky filesystem must not kill the launcher
                self.beat()

    def start(self) -> Heartbeat:
        """Write the first beat and start the thread; returns self."""
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and write a final beat with alive false (filesystem errors ignored)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval_s + 5)
        with contextlib.suppress(OSError):
            self.beat(alive=False)


@contextlib.contextmanager
def heartbeat(store: RunStore, interval_s: float = HEARTBEAT_INTERVAL_S, **info: Any) -> Iterator[Heartbeat]:
    """`with heartbeat(store, run_id=...):` around the launcher's wait for torchrun."""
    hb = Heartbeat(store, interval_s, **info).start()
    try:
        yield hb
    finally:
        hb.stop()
