"""`sft variants`: the config variants (config/variants/*.yaml), their run directory and last status.

A variant file holds overrides only; its results go to `<name>.output.yaml` next to it (written by
the pipeline), which is not a variant. A variant that does not validate is listed with its errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sftpipe import paths
from sftpipe.config import ConfigError, load
from sftpipe.paths import INDEX_PATH, VARIANTS_DIR
from sftpipe.runs import index as run_index

OUTPUT_SUFFIX = paths.VARIANT_OUTPUT_SUFFIX


def _output_block(path: Path) -> dict[str, Any]:
    from sftpipe.config import read_yaml

    if not path.is_file():
        return {}
    try:
        data = read_yaml(path)
    except (ConfigError, OSError, ValueError):
        return {}
    block = data.get("runtime_info", {}).get("output") if isinstance(data.get("runtime_info"), dict) else None
    return block if isinstance(block, dict) else {}


def list_variants(root: Path, config: Path = Path("config/config.yaml")) -> list[dict[str, Any]]:
    """One row per config/variants/*.yaml: whether it resolves, its run directory, and its
    last run and status from the index."""
    from sftpipe.runs.status import RunRef, derive_status, entry_run_dir

    root = Path(root)
    entries = run_index.read_entries(root / INDEX_PATH)
    rows = []
    for path in sorted((root / VARIANTS_DIR).glob("*.yaml")):
        if path.name.endswith(OUTPUT_SUFFIX):
            continue
        name = path.name[: -len(".yaml")]
        row: dict[str, Any] = {
            "variant": name,
            "file": str(path.relative_to(root)),
            "run_dir": None,
            "data_name": None,
            "valid": True,
            "problems": [],
            "last_run": None,
            "status": None,
            "runs": 0,
            "checkpoint_path": None,
            "final_loss": None,
        }
        try:
            cfg = load(config, root=root, variant=name)
            row.update(run_dir=str(cfg.run_dir), data_name=cfg.data_name)
        except ConfigError as exc:
            row.update(valid=False, problems=exc.problems)
        except OSError as exc:
            row.update(valid=False, problems=[str(exc)])
        mine = [e for e in entries if (e.get("variant") or "") == name]
        row["runs"] = len(mine)
        if mine:
            last = mine[-1]
            derived = derive_status(RunRef(entry_run_dir(root, last), last, root))
            row.update(last_run=last["id"], status=derived.status, final_loss=last.get("final_loss"))
            row["run_dir"] = row["run_dir"] or last.get("run_dir")
        output = _output_block(path.with_name(name + OUTPUT_SUFFIX))
        row["checkpoint_path"] = output.get("checkpoint_path")
        rows.append(row)
    return rows
