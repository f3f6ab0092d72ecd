"""Small file-system helpers: atomic writes and inter-process locks."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace `path` via a temp file in the same directory + fsync + rename (+ directory fsync):
    readers never see a torn file. `mode` defaults to the existing file's, or what open() would give
    a new file (mkstemp alone would leave it 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        mode = path.stat().st_mode & 0o7777 if path.exists() else _default_file_mode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write_bytes` of `text` as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write `obj` as indented JSON (non-ASCII kept, unknown types as str) plus a newline."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


@contextlib.contextmanager
def file_lock(target: Path, *, on_target: bool = False) -> Iterator[None]:
    """The one inter-process lock: an exclusive flock, held for the `with` body.

    By default on a sidecar `.<name>.lock` file next to `target` (works before `target` exists).
    `on_target=True` locks the existing file itself and leaves nothing behind (the user's config): since
    writers replace it atomically, a lock won on an inode that was replaced meanwhile is retried.
    """
    target = Path(target)
    if on_target:
        while True:
            with open(target, "rb") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                if os.fstat(fh.fileno()).st_ino != os.stat(target).st_ino:
                    continue
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def display_path(path: Path, root: Path) -> str:
    """`path` relative to the project root when inside it (portable records), else absolute."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path.resolve())


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to fd 1 (library logs, even handlers bound to the old sys.stdout) to
    stderr, so a `--json` command's stdout carries only its JSON."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
