"""Git provenance of a run: commit and uncommitted diff of the project checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit(root: Path) -> str | None:
    """The HEAD commit hash of the repository at `root`, None when not a repo (or git fails)."""
    out = _git(root, "rev-parse", "HEAD")
    return out.strip() if out else None


def code_diff(root: Path) -> str:
    """Uncommitted changes to tracked files (what `git diff HEAD` shows), '' when clean or not a repo."""
    return _git(root, "diff", "HEAD", "--no-color") or ""
