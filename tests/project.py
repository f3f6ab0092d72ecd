"""Throwaway project roots for tests, built from the SHIPPED files, never the user's run state.

A user's `config/config.yaml` holds written-back results or a real GPU setup; `config/variants/` may hold
`.output.yaml` files; `artifacts/` holds runs. None of that may leak into a test: the active profile
`config/config.yaml` is taken from the repository's HEAD commit (`git show`), the other shipped inputs
(demo data, variants, DeepSpeed configs) from the working tree minus written-back outputs. Outside a git
checkout (an unpacked release) the working tree's profile is the shipped one.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ["config", "artifacts/training_config", "artifacts/data/excluded_repos.txt"]
LINKED = ["Snakefile", "workflow", "profiles"]  # code: symlinked, read-only use


PROFILE = "config/config.yaml"


@cache
def shipped_text(rel: str) -> str:
    """A shipped file's text as committed at HEAD (e.g. "config/config.yaml")."""
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "show", f"HEAD:{rel}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return (REPO / rel).read_text()


def make_project(dest: Path, *, link_code: bool = True) -> Path:
    """A project root in `dest`: shipped config/inputs (editable copies), code symlinked."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in SHIPPED:
        src, dst = REPO / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.output.yaml", "__pycache__"))
        elif src.exists():
            shutil.copy2(src, dst)
    (dest / PROFILE).write_text(shipped_text(PROFILE))
    for rel in LINKED:
        src, dst = REPO / rel, dest / rel
        if link_code:
            dst.symlink_to(src)
        elif src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
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
