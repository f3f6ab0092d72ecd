"""Build throwaway project roots (a copy of the shipped config and inputs) for tests."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ["config", "artifacts/training_config", "artifacts/data/excluded_repos.txt", "Snakefile", "workflow",
           "profiles"]


def make_project(dest: Path, *, link_code: bool = True) -> Path:
    """A project root in `dest`: shipped config/inputs copied (editable), code symlinked (read-only use)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in SHIPPED:
        src, dst = REPO / rel, dest / rel
        if not src.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if link_code and rel in ("workflow", "Snakefile", "profiles"):
            dst.symlink_to(src)
        elif src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.output.yaml", "__pycache__"))
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
