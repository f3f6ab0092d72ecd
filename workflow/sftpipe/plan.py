"""What one Snakemake invocation builds: its runs (active profile and/or variants) and their datasets.

The rules are keyed by `{run}` (run name = basename of training.output_dir) and `{data}` (data_name),
so several variants train in one invocation and share a dataset when they agree on it. Everything a
rule's params contain is derived here, so what triggers a rerun is decided in one place.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftpipe import paths
from sftpipe.config import ConfigError, RunConfig, is_buildable_demo_model, read_yaml, resolve, stable_hash
from sftpipe.data.conversion.options import NOT_OPTIONS
from sftpipe.lf.render import render
from sftpipe.paths import MODEL_ROOT, VARIANTS_DIR

BASE = "base"  # the active profile's name in `--config variants=base,lr5`
# LLaMA-Factory arguments that change the tokenized rows (see llamafactory-notes: pre-tokenization).
TOKENIZATION_KEYS = (
    "template",
    "cutoff_len",
    "train_on_prompt",
    "mask_history",
    "packing",
    "neat_packing",
    "tool_format",
    "default_system",
    "enable_thinking",
    "val_size",
    "seed",
    "max_samples",
    "dataset",
    "eval_dataset",
    "mix_strategy",
    "interleave_probs",
    "ignore_pad_token_for_loss",
    "use_fast_tokenizer",
    "split_special_tokens",
    "new_special_tokens",
    "model_name_or_path",
    "stage",
)


@dataclass
class Plan:
    """What one Snakemake invocation trains: runs by name, datasets by name, tokenized sets by (data, key)."""

    runs: dict[str, RunConfig] = field(default_factory=dict)
    datasets: dict[str, RunConfig] = field(default_factory=dict)
    tokenized: dict[tuple[str, str], RunConfig] = field(default_factory=dict)
    env_dir: str = "artifacts/env/lf"


def requested_variants(raw: dict[str, Any], root: Path) -> list[str]:
    """`variants=a,b` (or a YAML list, or `all`) → names; else the single `variant` (default: base)."""
    many = raw.get("variants")
    if many:
        names = many if isinstance(many, list) else str(many).split(",")
        names = [n.strip() for n in names if n.strip()]
        if names == ["all"]:
            names = [BASE] + sorted(
                p.stem
                for p in (root / VARIANTS_DIR).glob("*.yaml")
                if not p.name.endswith(".output.yaml") and _same_accelerator(raw, p)
            )
        return names
    return [raw.get("variant") or BASE]


def _same_accelerator(raw: dict[str, Any], variant_file: Path) -> bool:
    """`variants=all` means the variants for this machine: a cuda production profile (e.g.
    qwen3-8b-128k) is not trained by the CPU demo's `all`; name it explicitly to run it."""

    def accel(data: dict[str, Any]) -> str | None:
        return (
            ((data.get("runtime_info") or {}).get("input") or {}).get("infrastructure", {}).get("accelerator")
        )

    try:
        own = accel(read_yaml(variant_file))
    except (ConfigError, OSError, ValueError, AttributeError):
        return True  # resolving it reports the problem
    return own is None or own == (accel(raw) or "cuda")


def build(raw: dict[str, Any], root: Path) -> Plan:
    """The plan for the requested variants; ConfigError listing every conflict (two variants with one
    run directory, or one data_name converted differently)."""
    base = copy.deepcopy(raw)
    base.pop("variants", None)
    plan = Plan()
    problems: list[str] = []
    for name in requested_variants(raw, root):
        cfg = RunConfig(resolve(base, root, variant="" if name == BASE else name), root)
        other = plan.runs.get(cfg.run_name)
        if other is not None:
            problems.append(
                f"variants {other.variant or BASE!r} and {cfg.variant or BASE!r} both train into "
                f"{cfg.run_dir}: give one a different training.output_dir"
            )
            continue
        plan.runs[cfg.run_name] = cfg
        problems += run_link_problems(cfg)
        known = plan.datasets.setdefault(cfg.data_name, cfg)
        if known is not cfg and (dataset_identity(known) != dataset_identity(cfg)):
            problems.append(
                f"variants {known.variant or BASE!r} and {cfg.variant or BASE!r} define dataset "
                f"{cfg.data_name!r} differently: give one a different conversion.data_name"
            )
        if cfg.infrastructure["pretokenize"]:
            plan.tokenized.setdefault((cfg.data_name, tokenize_key(cfg)), cfg)
    if problems:
        raise ConfigError(problems)
    first = next(iter(plan.runs.values()))
    plan.env_dir = first.data["meta_info"]["environment"]["sft_uv"]
    return plan


def run_link_problems(cfg: RunConfig) -> list[str]:
    """An absolute output_dir is trained in as-is and artifacts/model/<run> links to it (the train job makes
    the link); here only check that nothing else already sits at that path. Never writes."""
    if not cfg.run_dir.is_absolute():
        return []
    link = cfg.root / MODEL_ROOT / cfg.run_name
    if link.is_symlink():
        if Path(os.readlink(link)) != cfg.run_dir:
            return [f"{link} links to {os.readlink(link)}, not to training.output_dir {cfg.run_dir}"]
        return []
    if link.exists() and (not link.is_dir() or any(p.name != paths.MANIFEST for p in link.iterdir())):
        return [
            f"{link} exists and is not a link to training.output_dir {cfg.run_dir}; move it or rename the run"
        ]
    return []


def dataset_identity(cfg: RunConfig) -> str:
    """Hash of what a dataset's files depend on: variants sharing a data_name must agree on it."""
    return stable_hash({"registration": cfg.registration_params(), "conversion": conversion_inputs(cfg)})


def cli_config_args(config_file: str, cfg: RunConfig) -> str:
    """`--config FILE [--variant NAME]` for a CLI call from a rule."""
    return f"--config {config_file}" + (f" --variant {cfg.variant}" if cfg.variant else "")


def conversion_inputs(cfg: RunConfig) -> dict[str, Any]:
    """What the converted rows depend on (conversion keys + the tokenization that measures lengths)."""
    conversion = {k: v for k, v in cfg.conversion.items() if k not in NOT_OPTIONS}
    return {
        "source": cfg.source,
        "conversion": conversion,
        "tokenization": {k: cfg.training.get(k) for k in ("template", "cutoff_len", "enable_thinking")},
        "model": cfg.model_path,
    }


def registered_file(cfg: RunConfig) -> list[str]:
    """The LF data file a run registers (as a rule input); [] for source types without one."""
    kind = cfg.source["type"]
    if kind == "harbor_job":
        return [str(paths.lf_data_file(cfg.data_name))]
    if kind == "local_lf":
        return [cfg.source["lf_path"]]
    return []


def model_marker(cfg: RunConfig) -> list[str]:
    """A local base model's tokenizer config (a change re-tokenizes); the demo model is built by a rule."""
    path = cfg.model_path
    if is_buildable_demo_model(path):
        return [f"{path}/config.json"]
    marker = cfg.root / path / "tokenizer_config.json"
    return [os.path.join(path, "tokenizer_config.json")] if marker.is_file() else []


def tokenize_inputs(cfg: RunConfig) -> dict[str, Any]:
    """The rendered settings (and registration) that pretokenized data depends on."""
    lf = render(cfg)
    return {k: lf.get(k) for k in TOKENIZATION_KEYS} | {"registration": cfg.registration_params()}


def tokenize_key(cfg: RunConfig) -> str:
    """Hash of `tokenize_inputs`: names the pretokenized directory."""
    return stable_hash(tokenize_inputs(cfg))


def tokenized_path(cfg: RunConfig) -> Path:
    """The pretokenized directory this config would use."""
    return paths.tokenized_dir(cfg.data_name, tokenize_key(cfg))


def tokenized_dirs(cfg: RunConfig) -> list[str]:
    """`[tokenized_path]` when pretokenizing, else [] (as a rule input)."""
    return [str(tokenized_path(cfg))] if cfg.infrastructure["pretokenize"] else []


def training_inputs(cfg: RunConfig) -> dict[str, Any]:
    """What the trained weights depend on; save/logging cadence and resume settings excluded."""
    lf = render(cfg, tokenized_path=tokenized_path(cfg) if cfg.infrastructure["pretokenize"] else None)
    for key in ("save_steps", "logging_steps", "resume_from_checkpoint", "run_name", "report_to"):
        lf.pop(key, None)
    return {"lf": lf, "world": [cfg.infrastructure[k] for k in ("accelerator", "n_nodes", "n_gpus_per_node")]}


def train_resources(cfg: RunConfig) -> dict[str, Any]:
    """Resources of one training job: `nodes` nodes, all of each node's GPUs to one task per node.

    `gres` is per node (the plugin's `gpu` is a total); `tasks_per_gpu: 0` stops the SLURM plugin from
    starting one copy of the rule per GPU (its default): the rule itself runs one torchrun per node.
    CPU ranks (accelerator cpu) request no GPU; a profile can still add one with set-resources.
    """
    infra = cfg.infrastructure
    gpus = infra["n_gpus_per_node"] if infra["accelerator"] == "cuda" else 0
    return {
        "nodes": infra["n_nodes"],
        "gres": f"gpu:{gpus}" if gpus else "",
        "tasks_per_gpu": 0,
        # Without GPUs the plugin sends --ntasks=<tasks> (default 1), and SLURM shrinks --nodes=K to one
        # node for a single task: one task per node (GPU jobs ignore it: tasks_per_gpu is set).
        "tasks": infra["n_nodes"],
        "cpus_per_task": infra["cpus_per_node"],
        "mem_mb": infra["mem_mb_per_node"] * infra["n_nodes"],
        "runtime": infra["runtime_minutes"],
        # Local scheduling: CPU ranks occupy cores; on GPUs the job's own CPU use is not Snakemake's concern.
        "threads": infra["n_gpus_per_node"] if infra["accelerator"] == "cpu" else 1,
    }


def targets(plan: Plan) -> list[str]:
    """The record marker of every planned run: the inputs of the `all` rule."""
    return [str(paths.run_file(run, paths.RECORD_MARKER)) for run in plan.runs]
