"""Every run-directory and run-history file name is spelled in exactly one module: sftpipe/paths.py."""

from __future__ import annotations

import re
from pathlib import Path

from sftpipe import paths

WORKFLOW = Path(__file__).resolve().parents[2] / "workflow"
RUN_FILES = [
    paths.RUN_RECORD,
    paths.STOP_REQUEST,
    paths.STOP_REASON,
    paths.HEARTBEAT,
    paths.EVENTS,
    paths.CHECKPOINT_INDEX,
    paths.CODE_DIFF,
    paths.ENVIRONMENT,
    paths.DATASET_FINGERPRINT,
    paths.LF_YAML,
    paths.RESOLVED_CONFIG,
    paths.MANIFEST,
    paths.METRICS_JSON,
    paths.METRICS_JSONL,
    paths.LOSS_PLOT,
    paths.WRITEBACK_MARKER,
    paths.RECORD_MARKER,
    paths.TRAINER_STATE,
    paths.TRAINER_LOG,
    paths.TRAIN_RESULTS,
    paths.ALL_RESULTS,
    paths.INDEX_PATH.name,
]


def _code_files() -> list[Path]:
    return [p for p in [*WORKFLOW.rglob("*.py"), *WORKFLOW.rglob("*.smk")] if p.name != "paths.py"]


def test_run_file_names_live_only_in_paths():
    offenders = []
    for path in _code_files():
        text = path.read_text(encoding="utf-8")
        for name in RUN_FILES:
            # a quoted literal of the name ("run.json", 'stop_reason.json'), not prose in a docstring
            if re.search(rf"[\"']{re.escape(name)}[\"']", text):
                offenders.append(f"{path.relative_to(WORKFLOW)}: {name}")
    assert offenders == []


def test_data_file_patterns():
    assert paths.lf_data_file("d") == paths.LF_DATA_DIR / "d.json"
    assert paths.registered_marker("d").parent == paths.LF_DATA_DIR / ".registered"
    assert paths.rule_log("tokenize", "d", "k") == paths.RULE_LOGS / "tokenize_d_k.log"
    assert paths.run_file("r", paths.MANIFEST) == paths.MODEL_ROOT / "r" / paths.MANIFEST
