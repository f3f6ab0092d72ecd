"""Every artifact path of the project and every file name of a run directory, in one place.

The rules, the run store (`sftpipe.runs.store`) and the commands take names from here; no other module
spells a run-directory or history file name. Paths are relative to the project root.
"""

from __future__ import annotations

from pathlib import Path

# ---- project layout ------------------------------------------------------------------------------
ARTIFACTS = Path("artifacts")
MODEL_ROOT = ARTIFACTS / "model"  # artifacts/model/<run>/: one directory per run
DATA_DIR = ARTIFACTS / "data"  # converted data, stats, reports, tokenized caches
LF_DATA_DIR = DATA_DIR / "lf_data"  # what LLaMA-Factory reads (dataset_dir)
DATASET_INFO = LF_DATA_DIR / "dataset_info.json"
TOKENIZED_DIR = DATA_DIR / "tokenized"
LOGS_DIR = ARTIFACTS / "logs"  # console logs of training runs
RULE_LOGS = LOGS_DIR / "rules"  # one log per Snakemake job
INDEX_PATH = ARTIFACTS / "index.yaml"  # the run history
BASE_MODELS_DIR = ARTIFACTS / "base_models"  # locally built demo models
COMPARE_DIR = ARTIFACTS / "compare"
PUBLISHED_ROOT = ARTIFACTS / "published"
VARIANTS_DIR = Path("config/variants")
VARIANT_OUTPUT_SUFFIX = ".output.yaml"  # a variant's written-back runtime_info.output
DEFAULT_CONFIG = Path("config/config.yaml")

# ---- files of one run directory ------------------------------------------------------------------
# Written by the pipeline (sftpipe.runs.store owns reading and writing them):
RUN_RECORD = "run.json"  # who/where/what of the current attempt, and how it ended
STOP_REQUEST = ".sft_stop.json"  # a stop request every rank polls (signals, `sft stop`, time-limit guard)
STOP_REASON = "stop_reason.json"  # written by the training entry point when it stopped on request
HEARTBEAT = "heartbeat.json"
EVENTS = "events.jsonl"
CHECKPOINT_INDEX = "checkpoints.jsonl"
CODE_DIFF = "code.diff"
ENVIRONMENT = "environment.json"
DATASET_FINGERPRINT = "dataset.json"
LF_YAML = "llamafactory_config.yaml"
RESOLVED_CONFIG = "run_config.yaml"
MANIFEST = "train_manifest.json"  # the train rule's declared output
METRICS_JSON = "metrics.json"
METRICS_JSONL = "metrics.jsonl"
LOSS_PLOT = "training_loss.png"
PROBE_RECORD = "max_length_probe.json"  # the fail-fast probe's result (peak memory at the longest length)
RANK_MEMORY_DIR = "rank_memory"  # rank_<R>.json: peak accelerator memory of each rank
WRITEBACK_MARKER = "writeback.json"
RECORD_MARKER = "record.json"
# Written by LLaMA-Factory / transformers (read only):
TRAINER_STATE = "trainer_state.json"
TRAINER_LOG = "trainer_log.jsonl"
TRAIN_RESULTS = "train_results.json"
ALL_RESULTS = "all_results.json"


def run_dir(run: str) -> Path:
    """artifacts/model/<run> (a link when training.output_dir is absolute)."""
    return MODEL_ROOT / run


def run_file(run: str, name: str) -> Path:
    """A record file `name` in artifacts/model/<run>."""
    return MODEL_ROOT / run / name


# ---- data files of one dataset -------------------------------------------------------------------
def lf_data_file(data: str) -> Path:
    """The converted LF dataset (artifacts/data/lf_data/<data>.json)."""
    return LF_DATA_DIR / f"{data}.json"


def im_file(data: str) -> Path:
    """The converted IM records (one JSON per line)."""
    return DATA_DIR / f"{data}.im.jsonl"


def stats_file(data: str) -> Path:
    """The conversion's statistics JSON."""
    return DATA_DIR / f"{data}.stats.json"


def report_file(data: str) -> Path:
    """The conversion report as JSON."""
    return DATA_DIR / f"{data}.report.json"


def report_text_file(data: str) -> Path:
    """The conversion report as text."""
    return DATA_DIR / f"{data}.report.txt"


def registered_marker(data: str) -> Path:
    """Marker written when the dataset is registered in dataset_info.json."""
    return LF_DATA_DIR / ".registered" / f"{data}.json"


def tokenized_dir(data: str, key: str) -> Path:
    """Pretokenized dataset of `data` for the tokenization settings hashed as `key`."""
    return TOKENIZED_DIR / data / key


def rule_log(rule: str, *keys: str) -> Path:
    """Log file of one Snakemake rule job, named by the rule and its wildcard values."""
    return RULE_LOGS / ("_".join([rule, *keys]) + ".log")
