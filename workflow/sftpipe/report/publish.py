"""`sft publish`: one checkpoint of a run as a self-contained, versioned model directory.

    artifacts/published/<name>/<version>/
        model.safetensors (or shards + index)   consolidated weights
        config.json, generation_config.json
        tokenizer files, chat template
        model.yaml                              manifest: name, version, base model, run, checkpoint,
                                                dataset references (sha256 of the LF data file),
                                                training-config hashes, metrics at the checkpoint,
                                                sha256 + size of every other file

Weights: a checkpoint's own HF weights (with ZeRO-3 and stage3_gather_16bit_weights_on_model_save
these are the gathered 16-bit model.safetensors) are copied; a ZeRO checkpoint without them
(gather off) is consolidated from its `global_stepN` shards with DeepSpeed's zero_to_fp32 (fp32).
A published version is immutable: publishing onto an existing directory is refused, and the
directory is built aside and renamed into place, so it is either complete or absent.
`sft publish --verify DIR` re-hashes every file against model.yaml.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sftpipe import paths
from sftpipe.runs.provenance import dataset_fingerprint, sha256_file
from sftpipe.runs.store import RunStore
from sftpipe.util.yamltext import read_yaml_mapping

MANIFEST = "model.yaml"
WEIGHT_GLOBS = (
    "model*.safetensors",
    "model.safetensors.index.json",
    "pytorch_model*.bin",
    "pytorch_model.bin.index.json",
)
MODEL_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
)
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class PublishError(RuntimeError):
    """Publishing cannot proceed; nothing was written."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def select_checkpoint(run_dir: Path, which: str) -> dict[str, Any]:
    """best | latest | STEP → the checkpoint row (complete ones only)."""
    from sftpipe.runs.best import best_checkpoint

    result = best_checkpoint(run_dir)
    if which in ("best", "latest"):
        row = result[which]
        if row is None:
            raise PublishError(f"{run_dir} has no complete checkpoint to publish as {which!r}")
        return row | {"selected_as": which, "best_metric": result["metric"]}
    if not which.isdigit():
        raise PublishError(f"--checkpoint must be best, latest or a step number, got {which!r}")
    for row in result["checkpoints"]:
        if row["step"] == int(which):
            if not row["complete"]:
                raise PublishError(
                    f"checkpoint-{which} is incomplete ({row['problem']}); refusing to publish it"
                )
            return row | {"selected_as": f"step {which}"}
    steps = ", ".join(str(r["step"]) for r in result["checkpoints"]) or "none"
    raise PublishError(f"{run_dir} has no checkpoint-{which} (steps: {steps})")


def _base_model_dir(run_dir: Path, root: Path) -> Path | None:
    lf = read_yaml_mapping(run_dir / paths.LF_YAML)
    base = lf.get("model_name_or_path")
    if not base:
        return None
    path = Path(base) if Path(base).is_absolute() else root / base
    return path if path.is_dir() else None


def _copy_weights(ckpt: Path, dest: Path) -> dict[str, Any]:
    found = sorted({p for pattern in WEIGHT_GLOBS for p in ckpt.glob(pattern) if p.is_file()})
    if found:
        for src in found:
            shutil.copy2(src, dest / src.name)
        return {"method": "copied", "files": [p.name for p in found]}
    latest = ckpt / "latest"
    if not latest.is_file():
        raise PublishError(f"{ckpt} has neither HF weights nor a DeepSpeed `latest` tag to consolidate")
    tag = latest.read_text().strip()
    files = consolidate_zero(ckpt, dest, tag)
    return {"method": "zero_to_fp32", "tag": tag, "dtype": "float32", "files": files}


def consolidate_zero(ckpt: Path, dest: Path, tag: str, max_shard_size: str = "5GB") -> list[str]:
    """ZeRO shards → HF safetensors (fp32, sharded with an index when large).

    DeepSpeed's own convert_zero_checkpoint_to_fp32_state_dict(safe_serialization=True) fails on models
    with tied embeddings (small Qwen3s: lm_head.weight is embed_tokens.weight, and safetensors refuses
    shared tensors), so the state dict is taken from it and saved here with aliases dropped; HF's
    from_pretrained re-ties lm_head from the config.
    """
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    state = get_fp32_state_dict_from_zero_checkpoint(str(ckpt), tag=tag)
    seen: dict[tuple[int, tuple[int, ...]], str] = {}
    # lm_head last, so the embedding keeps its name and the head is the alias dropped
    for name in sorted(state, key=lambda n: (n.startswith("lm_head"), n)):
        key = (state[name].data_ptr(), tuple(state[name].shape))
        if key in seen:
            del state[name]
        else:
            seen[key] = name
    split = split_torch_state_dict_into_shards(
        state, filename_pattern="model{suffix}.safetensors", max_shard_size=max_shard_size
    )
    for filename, names in split.filename_to_tensors.items():
        save_file({n: state[n].contiguous() for n in names}, str(dest / filename), metadata={"format": "pt"})
    files = sorted(split.filename_to_tensors)
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        (dest / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        files.append("model.safetensors.index.json")
    return files


def _copy_support_files(sources: list[Path], dest: Path) -> dict[str, str]:
    """Model config + tokenizer files from the first source holding each; returns name → origin."""
    origin = {}
    for name in (*MODEL_FILES, *TOKENIZER_FILES):
        for src_dir in sources:
            src = src_dir / name
            if src.is_file():
                shutil.copy2(src, dest / name)
                origin[name] = str(src)
                break
    return origin


def _dataset_refs(run_dir: Path, root: Path) -> list[dict[str, Any]]:
    """The run's data: its start-of-run dataset.json record, else fingerprinted now from the LF config."""
    recorded = RunStore(run_dir).read_dataset_fingerprint()
    if recorded:
        return [recorded | {"recorded": "at run start"}]
    lf = read_yaml_mapping(run_dir / paths.LF_YAML)
    if not lf.get("dataset"):
        return []
    dataset_dir = Path(lf.get("dataset_dir") or "data")
    dataset_dir = dataset_dir if dataset_dir.is_absolute() else root / dataset_dir
    return [
        dataset_fingerprint(dataset_dir, name.strip()) | {"recorded": "at publish time"}
        for name in str(lf["dataset"]).split(",")
        if name.strip()
    ]


def file_inventory(directory: Path) -> list[dict[str, Any]]:
    """sha256 + size of every file under `directory` except the manifest, sorted by path."""
    out = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel == MANIFEST:
            continue
        out.append({"path": rel, "sha256": sha256_file(path), "size": path.stat().st_size})
    return out


def publish(
    root: Path,
    run_ref: str | None,
    name: str,
    version: str,
    checkpoint: str = "best",
    out_dir: Path | None = None,
) -> Path:
    """Build the published directory; returns its path."""
    from sftpipe.runs.status import resolve_run
    from sftpipe.util.git import git_commit

    if not _NAME.fullmatch(name):
        raise PublishError(f"--name {name!r}: use letters, digits, '.', '_' or '-' (no slashes or spaces)")
    if not _VERSION.fullmatch(version):
        raise PublishError(f"--version {version!r} is not X.Y.Z (e.g. 1.0.0)")
    root = Path(root)
    ref = resolve_run(root, run_ref)
    row = select_checkpoint(ref.run_dir, checkpoint)
    target = Path(out_dir) if out_dir else root / paths.PUBLISHED_ROOT / name / version
    if target.exists():
        raise PublishError(f"{target} already exists; a published version is immutable (bump --version)")
    ckpt = Path(row["path"])
    run_record = RunStore(ref.run_dir).read_run_record() or {}
    run_config = read_yaml_mapping(ref.run_dir / paths.RESOLVED_CONFIG)
    lf = read_yaml_mapping(ref.run_dir / paths.LF_YAML)
    base = _base_model_dir(ref.run_dir, root)
    state = _read_json(ckpt / paths.TRAINER_STATE)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        weights = _copy_weights(ckpt, tmp)
        origin = _copy_support_files([ckpt, ref.run_dir, *([base] if base else [])], tmp)
        missing = [n for n in ("config.json", "tokenizer_config.json") if n not in origin]
        if missing:
            raise PublishError(f"no {', '.join(missing)} in {ckpt}, the run directory or the base model")
        lf_yaml = ref.run_dir / paths.LF_YAML
        manifest = {
            "name": name,
            "version": version,
            "base_model": lf.get("model_name_or_path")
            or run_config.get("runtime_info", {}).get("input", {}).get("model", {}).get("model_name_or_path"),
            "template": lf.get("template"),
            "source": {
                "run_id": ref.run_id or run_record.get("run_id"),
                "run_dir": str(ref.run_dir),
                "checkpoint": str(ckpt),
                "step": row["step"],
                "selected_as": row["selected_as"],
                "git_commit": git_commit(root),
            },
            "training_config": {
                "config_hash": run_record.get("config_hash") or (ref.entry or {}).get("config_hash"),
                "training_hash": run_record.get("training_hash"),
                "llamafactory_config_sha256": sha256_file(lf_yaml) if lf_yaml.is_file() else None,
                "finetuning_type": lf.get("finetuning_type"),
                "deepspeed": lf.get("deepspeed"),
            },
            "datasets": _dataset_refs(ref.run_dir, root),
            "metrics": {
                "step": row["step"],
                "epoch": row.get("epoch"),
                "loss": row.get("loss"),
                "eval_loss": row.get("eval_loss"),
                "best_metric": row.get("best_metric"),
                "num_input_tokens_seen": state.get("num_input_tokens_seen"),
            },
            "weights": weights,
            "file_origins": origin,
            "files": file_inventory(tmp),
        }
        from sftpipe.util.redact import redact

        text = redact(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=4096))
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
        for path in tmp.iterdir():
            path.chmod(0o644)  # checkpoint weights are saved 0600; a published model is for others to read
        tmp.chmod(0o755)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def verify(directory: Path) -> list[str]:
    """Problems of a published directory (empty list = every file present with its recorded hash)."""
    directory = Path(directory)
    manifest = read_yaml_mapping(directory / MANIFEST)
    if not manifest:
        return [f"{directory / MANIFEST}: missing or not a YAML mapping"]
    problems = []
    for key in ("name", "version", "files"):
        if key not in manifest:
            problems.append(f"{MANIFEST}: no {key!r}")
    recorded = {f["path"]: f for f in manifest.get("files") or []}
    actual = {f["path"]: f for f in file_inventory(directory)}
    for path, info in recorded.items():
        have = actual.get(path)
        if have is None:
            problems.append(f"{path}: listed in {MANIFEST} but missing")
        elif have["size"] != info.get("size"):
            problems.append(f"{path}: size {have['size']} != recorded {info.get('size')}")
        elif have["sha256"] != info.get("sha256"):
            problems.append(f"{path}: sha256 {have['sha256']} != recorded {info.get('sha256')}")
    problems += [
        f"{path}: present but not listed in {MANIFEST}" for path in sorted(set(actual) - set(recorded))
    ]
    return problems


def read_manifest(directory: Path) -> dict[str, Any]:
    """The model.yaml of a published directory."""
    return read_yaml_mapping(Path(directory) / MANIFEST)
