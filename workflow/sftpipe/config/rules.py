"""Cross-field rules a JSON schema cannot express, on-disk checks, and warnings for legal but risky choices."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sftpipe.config.schema import did_you_mean, lf_argument_keys, load_schema
from sftpipe.paths import BASE_MODELS_DIR

CREDENTIAL_ENV = {"wandb_api_key": "WANDB_API_KEY", "hf_token": "HF_TOKEN"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TRAINING = ("runtime_info", "input", "training")


def _exists(root: Path, value: str) -> bool:
    return (root / value).exists()


def cross_field_problems(data: dict[str, Any], root: Path) -> list[str]:
    """Rules from the run contract that JSON Schema cannot express, plus on-disk checks."""
    problems: list[str] = []
    inp = data["runtime_info"]["input"]
    src, conv, model, train = inp["source"], inp["conversion"], inp["model"], inp["training"]
    infra = inp["infrastructure"]
    p = "runtime_info.input."

    if train["cutoff_len"] > 32768 and train.get("rope_scaling") != "yarn":
        problems.append(
            f"{p}training.rope_scaling: must be 'yarn' when cutoff_len ({train['cutoff_len']}) > 32768, "
            f"got {train.get('rope_scaling')!r}"
        )

    kind = src["type"]
    if kind == "harbor_job":
        job_dir = src["job_dir"] or data["meta_info"]["dependencies"]["trajectories_dir"]
        if not job_dir:
            problems.append(
                f"{p}source.job_dir: required for source.type harbor_job "
                "(or set meta_info.dependencies.trajectories_dir)"
            )
        elif not (root / job_dir).is_dir():
            problems.append(f"{p}source.job_dir: Harbor job directory {job_dir!r} does not exist")
        excl = conv["exclude_repos_file"]
        if excl and not (root / excl).is_file():
            problems.append(
                f"{p}conversion.exclude_repos_file: file {excl!r} does not exist "
                "(empty string disables repo exclusion)"
            )
    elif kind == "hf_lf":
        if not src["hf_hub_url"]:
            problems.append(f"{p}source.hf_hub_url: required for source.type hf_lf")
    elif kind == "local_lf":
        if not src["lf_path"]:
            problems.append(f"{p}source.lf_path: required for source.type local_lf")
        elif not (root / src["lf_path"]).is_file():
            problems.append(f"{p}source.lf_path: file {src['lf_path']!r} does not exist")

    ds = train.get("deepspeed") or ""
    if ds and not (root / ds).is_file():
        problems.append(f"{p}training.deepspeed: DeepSpeed config {ds!r} does not exist")

    path = model["model_name_or_path"]
    if not (_exists(root, path) or is_buildable_demo_model(path) or _HUB_ID.match(path)):
        problems.append(
            f"{p}model.model_name_or_path: {path!r} is neither an existing directory, a "
            f"path under {BASE_MODELS_DIR}/ (built locally), nor a Hub id (org/name)"
        )

    if infra["accelerator"] == "cpu":
        if train.get("bf16"):
            problems.append(f"{p}training.bf16: must be false when infrastructure.accelerator is cpu")
        if train.get("flash_attn") == "fa2":
            problems.append(f"{p}training.flash_attn: fa2 needs CUDA; use auto/sdpa/disabled on cpu")
    for key in ("fp16",):
        if train.get(key) and train.get("bf16"):
            problems.append(f"{p}training.{key}: fp16 and bf16 are mutually exclusive")
    for secret in CREDENTIAL_ENV:
        if secret in train:
            problems.append(f"{p}training.{secret}: credentials belong in runtime_info.input.credentials")
    return problems


def unknown_training_keys(train: dict[str, Any]) -> list[str]:
    """Training keys that neither the schema nor LLaMA-Factory's parser knows, each with a did-you-mean."""
    node = load_schema()
    for key in _TRAINING:
        node = node["properties"][key]
    known = set(node["properties"]) | lf_argument_keys()
    where = ".".join(_TRAINING)
    return [
        f"{where}.{key}: unknown LLaMA-Factory argument{did_you_mean(key, known)}"
        for key in train
        if key not in known and key not in CREDENTIAL_ENV
    ]


def config_warnings(data: dict[str, Any]) -> list[str]:
    """Legal but risky choices, reported by `sft validate` and the dry run."""
    train = data["runtime_info"]["input"]["training"]
    conv = data["runtime_info"]["input"]["conversion"]
    warnings = []
    if train.get("save_only_model"):
        warnings.append("runtime_info.input.training.save_only_model is true: checkpoints cannot be resumed")
    if train["template"].endswith("_nothink") and conv.get("reasoning") == "keep":
        warnings.append(
            "conversion.reasoning is keep but the template is a *_nothink one: <think> text will "
            "be trained verbatim; use template qwen3 for reasoning data"
        )
    _, problems = rotation_guard(dict(train))
    warnings += [f"runtime_info.input.training: {p}" for p in problems]
    return warnings


def rotation_guard(lf_args: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(LF args that keep the best checkpoint through save_total_limit rotation, problems left)."""
    args = dict(lf_args)
    limit = args.get("save_total_limit")
    if not limit or limit <= 0:
        return args, []
    evaluates = (args.get("val_size") or args.get("eval_dataset")) and args.get("eval_strategy", "no") != "no"
    if not evaluates:
        return args, [
            (
                f"save_total_limit {limit} without evaluation (val_size/eval_dataset + eval_strategy): "
                "rotation deletes by age and HF cannot protect the best train-loss checkpoint; drop "
                "save_total_limit or add a validation split"
            )
        ]
    args.setdefault("metric_for_best_model", "eval_loss")
    args.setdefault("greater_is_better", False)
    problems = []
    save, every = args.get("save_steps"), args.get("eval_steps")
    if (
        args.get("eval_strategy") == "steps"
        and isinstance(save, int)
        and isinstance(every, int)
        and save % every
    ):
        problems.append(
            f"save_steps {save} is not a multiple of eval_steps {every}: a best eval at a step "
            "without a checkpoint is not tracked, so rotation may delete the best saved one"
        )
    return args, problems


def is_buildable_demo_model(path: str) -> bool:
    """A path under artifacts/base_models/: the demo model, built by a rule."""
    parts = Path(path).parts
    return len(parts) > len(BASE_MODELS_DIR.parts) and Path(*parts[:2]) == BASE_MODELS_DIR
