"""CPU-only checks of a rendered LLaMA-Factory training config, reusing LF's own code.

* `parse_train_args(cfg)`: LF's argument parser on the config dict (no weights loaded), plus the
  checks LF leaves to later (unknown template, enum values such as `stage` / `flash_attn` /
  `rope_scaling`, value types), each error naming the key.
* `tokenize_dataset(cfg, tokenized_path)`: tokenizer + template + LF `get_dataset`, exactly as a
  training run does, with GPU-only keys dropped; returns counts and token-length statistics and,
  when asked, saves the tokenized dataset where LF's `tokenized_path` will load it.
* `template_exists(name)`: LF's template registry.

What LF does silently, and how it is counted here:
* A row whose turns do not alternate (human/observation at even positions, gpt/function_call at
  odd ones) or whose turn count is odd is turned into an empty example by LF's converter and then
  dropped by the supervised processor with only a log warning. `rows_dropped` counts exactly the
  rows LF drops (same criterion: prompt length even or response length != 1 after conversion) and
  `dropped_row_indices` lists their positions in the loaded dataset (file order unless
  `num_samples`/mixing reorders it).
* A row longer than `cutoff_len` is truncated, not dropped (the cut can fall inside the system
  prompt). `rows_over_cutoff` counts rows whose full rendered length exceeds `cutoff_len`, measured
  by running LF's own supervised processor a second time with no length limit;
  `tokens_truncated` is the total number of tokens cut.
* A truncated row can keep no trainable token at all (every label masked); it still goes into
  training and contributes a NaN/zero loss. `rows_without_trainable_tokens` counts them.
* Malformed values that make LF crash (tools not a JSON string of a list, a null/dict value,
  function_call without name/arguments) stop the whole preprocessing; the error is re-raised as
  `LFDatasetError` with LF's message.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import tempfile
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Keys whose parse-time checks need the GPU machine: bf16/fp16 check the device, deepspeed needs a
# distributed launch, liger/unsloth check that their packages are installed. They are validated
# here by type (and the deepspeed file by content) and removed before LF parses the rest.
CPU_PARSE_DROPPED_KEYS = (
    "bf16",
    "fp16",
    "pure_bf16",
    "deepspeed",
    "enable_liger_kernel",
    "use_unsloth",
    "ddp_backend",
)  # ddp_backend: a single-process parse would try to join a group
# Keys irrelevant to tokenization that would only make a CPU tokenize step fail or write somewhere.
TOKENIZE_DROPPED_KEYS = CPU_PARSE_DROPPED_KEYS + (
    "flash_attn",
    "use_unsloth_gc",
    "rope_scaling",
    "quantization_bit",
    "report_to",
    "resume_from_checkpoint",
    "overwrite_output_dir",
    "tokenized_path",
    "output_dir",
    "run_name",
)
_MAX_LISTED_INDICES = 100


class LFConfigError(ValueError):
    """The config is not acceptable to LLaMA-Factory; the message names the key."""


class LFDatasetError(RuntimeError):
    """LLaMA-Factory could not load or tokenize the dataset."""


@dataclasses.dataclass
class ParsedArgs:
    """LF's parsed argument objects for a rendered config, and the keys dropped for the CPU parse."""

    model_args: Any
    data_args: Any
    training_args: Any
    finetuning_args: Any
    generating_args: Any
    dropped: dict[str, Any]  # keys removed for the CPU parse (validated separately)


def template_exists(name: str) -> bool:
    """Whether LF knows a chat template of this name (imports LLaMA-Factory)."""
    from llamafactory.data.template import TEMPLATES

    return name in TEMPLATES


def template_names() -> list[str]:
    """Every chat template name LF knows, sorted (imports LLaMA-Factory)."""
    from llamafactory.data.template import TEMPLATES

    return sorted(TEMPLATES)


# ---------------------------------------------------------------------------------------------
# Argument parsing
# ---------------------------------------------------------------------------------------------
def _field_types() -> dict[str, Any]:
    from llamafactory.hparams.parser import _TRAIN_ARGS

    types: dict[str, Any] = {}
    for cls in _TRAIN_ARGS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                types.setdefault(f.name, hints[f.name])
    return types


def _value_matches(value: Any, tp: Any) -> tuple[bool, str]:
    """(ok, expected) for the types LF's dataclasses use: scalars, Literal, Enum, Optional/Union."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, "any"
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        return value in choices, f"one of {list(choices)}"
    if origin in (typing.Union, types.UnionType):
        results = [_value_matches(value, arg) for arg in typing.get_args(tp)]
        return any(ok for ok, _ in results), " or ".join(exp for _, exp in results)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        return value in values or isinstance(value, tp), f"one of {values}"
    if tp is type(None):
        return value is None, "null"
    if tp is bool:
        return isinstance(value, bool), "a boolean"
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), "an integer"
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    if tp is str:
        return isinstance(value, str), "a string"
    if origin in (list, dict) or tp in (list, dict):
        return isinstance(value, origin or tp), f"a {(origin or tp).__name__}"
    return True, str(tp)  # anything more exotic is left to LF


def check_keys(cfg: dict[str, Any]) -> None:
    """Unknown keys, value types and enum choices, each error naming the key (LF checks few)."""
    types = _field_types()
    unknown = sorted(k for k in cfg if k not in types)
    if unknown:
        raise LFConfigError(f"unknown LLaMA-Factory key(s) {unknown}")
    errors = []
    for key, value in cfg.items():
        ok, expected = _value_matches(value, types[key])
        if not ok:
            errors.append(f"`{key}`: {value!r} is not {expected}")
    if "template" in cfg and cfg["template"] is not None and not template_exists(cfg["template"]):
        errors.append(f"`template`: {cfg['template']!r} is not a LLaMA-Factory template")
    if errors:
        raise LFConfigError("; ".join(errors))


def _check_deepspeed(value: Any) -> None:
    if isinstance(value, dict):
        ds = value
    else:
        path = Path(value)
        if not path.is_file():
            raise LFConfigError(f"`deepspeed`: file {path} does not exist")
        try:
            ds = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise LFConfigError(f"`deepspeed`: {path} is not valid JSON ({exc})") from exc
    stage = ds.get("zero_optimization", {}).get("stage", 0)
    if stage not in (0, 1, 2, 3):
        raise LFConfigError(f"`deepspeed`: zero_optimization.stage {stage!r} is not 0-3")


def parse_train_args(cfg: dict[str, Any]) -> ParsedArgs:
    """Parse a rendered training config with LF's own parser, without loading any weights.

    Keys in CPU_PARSE_DROPPED_KEYS are type-checked (the deepspeed file is read and checked) and
    left out of LF's parse, because on a CPU machine LF would reject them for reasons that only
    hold there (no bf16 device, no distributed launch, GPU-only packages missing).
    """
    if not isinstance(cfg, dict):
        raise LFConfigError(f"config must be a mapping, got {type(cfg).__name__}")
    check_keys(cfg)
    dropped = {k: cfg[k] for k in CPU_PARSE_DROPPED_KEYS if k in cfg}
    if dropped.get("deepspeed"):
        _check_deepspeed(dropped["deepspeed"])
    rest = {k: v for k, v in cfg.items() if k not in dropped}
    from llamafactory.hparams import get_train_args

    try:
        parsed = get_train_args(copy.deepcopy(rest))
    except (ValueError, TypeError, ImportError, OSError) as exc:
        raise LFConfigError(f"LLaMA-Factory rejected the config: {exc}") from exc
    return ParsedArgs(*parsed, dropped=dropped)


# ---------------------------------------------------------------------------------------------
# Tokenization
# ---------------------------------------------------------------------------------------------
def _percentile(sorted_vals: list[int], q: float) -> int:
    if not sorted_vals:
        return 0
    idx = min(len(sorted_vals) - 1, max(0, round(q / 100 * (len(sorted_vals) - 1))))
    return sorted_vals[idx]


def length_stats(lengths: Iterable[int]) -> dict[str, float | int]:
    """min, max, mean, p50 and p95 of the lengths (all 0 when empty)."""
    vals = sorted(lengths)
    if not vals:
        return {"min": 0, "max": 0, "mean": 0.0, "p50": 0, "p95": 0}
    return {
        "min": vals[0],
        "max": vals[-1],
        "mean": round(sum(vals) / len(vals), 2),
        "p50": _percentile(vals, 50),
        "p95": _percentile(vals, 95),
    }


def _is_dropped_by_lf(prompt: list[Any], response: list[Any]) -> bool:
    # SupervisedDatasetProcessor.preprocess_dataset's own criterion for "Dropped invalid example"
    return len(prompt) % 2 != 1 or len(response) != 1


def tokenize_dataset(cfg: dict[str, Any], tokenized_path: Path | None = None) -> dict[str, Any]:
    """Tokenize the config's dataset(s) exactly as LF training would, on CPU, without model weights.

    Returns a report: rows_in, rows_out, rows_dropped (+ dropped_row_indices), token length
    statistics of the full rendered rows (`length`), rows_over_cutoff, tokens_truncated,
    rows_without_trainable_tokens, trained token counts, and the splits written. With
    `tokenized_path`, the tokenized DatasetDict is saved there by LF's own `get_dataset`, so a
    training run with `tokenized_path: <that dir>` loads it (and then ignores all other data keys).
    """
    if cfg.get("streaming"):
        raise LFConfigError("`streaming`: cannot pre-tokenize a streamed dataset; set streaming: false")
    if tokenized_path is not None:
        tokenized_path = Path(tokenized_path)
        if tokenized_path.exists() and any(tokenized_path.iterdir()):
            # LF would silently load the old data and ignore every data key of this config
            raise FileExistsError(f"{tokenized_path} already holds a tokenized dataset; remove it first")
    with tempfile.TemporaryDirectory(prefix="sft-tokenize-") as scratch:
        cpu_cfg = {k: v for k, v in cfg.items() if k not in TOKENIZE_DROPPED_KEYS}
        cpu_cfg.update(output_dir=scratch, report_to="none", do_train=True)
        if tokenized_path is not None:
            cpu_cfg["tokenized_path"] = str(tokenized_path)
        args = parse_train_args(cpu_cfg)
        return _tokenize(args, tokenized_path)


def _tokenize(args: ParsedArgs, tokenized_path: Path | None) -> dict[str, Any]:
    import transformers
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.data.loader import _get_merged_dataset
    from llamafactory.data.processor import SupervisedDatasetProcessor
    from llamafactory.extras.constants import IGNORE_INDEX
    from llamafactory.model import load_tokenizer

    margs, dargs, targs, fargs = args.model_args, args.data_args, args.training_args, args.finetuning_args
    if fargs.stage != "sft":
        raise LFConfigError(f"`stage`: pre-tokenization supports sft only, not {fargs.stage!r}")
    tok_module = load_tokenizer(margs)
    tokenizer = tok_module["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, dargs)

    try:
        # 1) The aligned rows LF will process (same seed as training, since `num_samples`
        #    subsampling draws from numpy's global RNG): counts and the rows LF will drop.
        transformers.set_seed(targs.seed)
        aligned = [
            d
            for d in (
                _get_merged_dataset(dargs.dataset, margs, dargs, targs, "sft"),
                _get_merged_dataset(dargs.eval_dataset, margs, dargs, targs, "sft"),
            )
            if d is not None
        ]
        rows_in = sum(len(d) for d in aligned)
        dropped_idx = [
            i
            for d in aligned
            for i, (p, r) in enumerate(zip(d["_prompt"], d["_response"]))
            if _is_dropped_by_lf(p, r)
        ]

        # 2) Full (untruncated) lengths with LF's own processor and no length limit.
        full_args = copy.copy(dargs)
        full_args.cutoff_len = 2**31 - 1
        full_proc = SupervisedDatasetProcessor(
            template=template, tokenizer=tokenizer, processor=tok_module["processor"], data_args=full_args
        )
        full_lengths: list[int] = []
        for d in aligned:
            enc = d.map(
                full_proc.preprocess_dataset,
                batched=True,
                remove_columns=d.column_names,
                batch_size=dargs.preprocessing_batch_size,
                num_proc=dargs.preprocessing_num_workers,
                load_from_cache_file=False,
                desc="Measuring full token lengths",
            )
            full_lengths += [len(x) for x in enc["input_ids"]]

        # 3) The real thing: LF's get_dataset (tokenize, truncate, split, save to tokenized_path).
        transformers.set_seed(targs.seed)
        module = get_dataset(template, margs, dargs, targs, stage="sft", **tok_module)
    except Exception as exc:  # LF and `datasets` raise many types; all mean "this data cannot be used"
        raise LFDatasetError(f"LLaMA-Factory failed on the dataset: {type(exc).__name__}: {exc}") from exc

    splits = {"train": module.get("train_dataset")}
    evals = module.get("eval_dataset")
    if isinstance(evals, dict):
        splits.update({f"eval:{k}": v for k, v in evals.items()})
    elif evals is not None:
        splits["eval"] = evals
    trained_lengths, trainable, no_trainable = [], 0, 0
    for ds in (s for s in splits.values() if s is not None):
        for ids, labels in zip(ds["input_ids"], ds["labels"]):
            trained_lengths.append(len(ids))
            n = sum(1 for x in labels if x != IGNORE_INDEX)
            trainable += n
            no_trainable += n == 0
    cutoff = dargs.cutoff_len
    rows_out = len(trained_lengths)
    report: dict[str, Any] = {
        "rows_in": rows_in,
        "rows_out": rows_out,
        "rows_dropped": len(dropped_idx),
        "dropped_row_indices": dropped_idx[:_MAX_LISTED_INDICES],
        "cutoff_len": cutoff,
        "template": dargs.template,
        "packing": bool(dargs.packing),
        "length": length_stats(full_lengths),
        "rows_over_cutoff": sum(1 for n in full_lengths if n > cutoff),
        "tokens_total": sum(full_lengths),
        "tokens_truncated": sum(max(0, n - cutoff) for n in full_lengths),
        "trained_length": length_stats(trained_lengths),
        "trainable_tokens": trainable,
        "rows_without_trainable_tokens": no_trainable,
        "splits": {k: (len(v) if v is not None else 0) for k, v in splits.items()},
        "tokenized_path": str(tokenized_path) if tokenized_path is not None else None,
    }
    if not dargs.packing and rows_out != rows_in - len(dropped_idx):
        # both numbers come from LF; a mismatch means LF changed how it drops rows
        raise LFDatasetError(
            f"row accounting mismatch: {rows_in} in, {len(dropped_idx)} dropped, {rows_out} out"
        )
    if tokenized_path is not None and not (tokenized_path / "dataset_dict.json").is_file():
        raise LFDatasetError(f"LLaMA-Factory did not save the tokenized dataset to {tokenized_path}")
    return report
