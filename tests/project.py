"""Throwaway project roots for tests, built from the SHIPPED files (git HEAD), never the user's working copy.

A user's `config/config.yaml` holds written-back results or a real GPU setup; `config/variants/` may hold
`.output.yaml` files; `artifacts/` holds runs. None of that may leak into a test, so the shipped inputs are
taken from the repository's HEAD commit (`git archive`). Outside a git checkout (an unpacked release) the
working tree is the shipped state and is copied, minus written-back outputs.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ["config", "artifacts/training_config", "artifacts/data/excluded_repos.txt"]
LINKED = ["Snakefile", "workflow", "profiles"]  # code: symlinked, read-only use


@lru_cache(maxsize=1)
def _head_archive() -> bytes | None:
    try:
        return subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD", *SHIPPED],
                              capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def shipped_text(rel: str) -> str:
    """A shipped file's text as committed (e.g. "config/config.yaml")."""
    archive = _head_archive()
    if archive is None:
        return (REPO / rel).read_text()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile(rel)
        if member is None:
            raise FileNotFoundError(rel)
        return member.read().decode("utf-8")


def make_project(dest: Path, *, link_code: bool = True) -> Path:
    """A project root in `dest`: shipped config/inputs (editable copies), code symlinked."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = _head_archive()
    if archive is not None:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
    else:
        for rel in SHIPPED:
            src, dst = REPO / rel, dest / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.output.yaml", "__pycache__"))
            elif src.exists():
                shutil.copy2(src, dst)
    for rel in LINKED:
        src, dst = REPO / rel, dest / rel
        if link_code:
            dst.symlink_to(src)
        else:
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__")) if src.is_dir() \
                else shutil.copy2(src, dst)
    return dest


def load_yaml(path: Path) -> dict[str, Any]:
    return YAML(typ="safe").load(Path(path).read_text())


def edit_config(path: Path, edit) -> None:
    """Round-trip edit of a config file (comments kept), for tests that change one key."""
    yaml = YAML()
    data = yaml.load(Path(path).read_text())
    edit(data)
    with open(path, "w") as fh:
        yaml.dump(data, fh)
