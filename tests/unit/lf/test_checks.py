"""CPU-only LLaMA-Factory checks: argument parsing, template registry, tokenization report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sftpipe.lf.checks import (
    LFConfigError,
    LFDatasetError,
    length_stats,
    parse_train_args,
    template_exists,
    tokenize_dataset,
)

REPO = Path(__file__).resolve().parents[3]
DEMO_DIR = REPO / "config" / "demo"
DS_Z3 = REPO / "artifacts" / "training_config" / "deepspeed" / "ds_z3_config.json"


def base_cfg(model_dir: Path, dataset_dir: Path = DEMO_DIR, **over) -> dict:
    cfg = {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "full",
        "dataset": "lf_demo",
        "dataset_dir": str(dataset_dir),
        "template": "qwen3_nothink",
        "cutoff_len": 1024,
        "output_dir": "/nonexistent/run",
        "per_device_train_batch_size": 1,
        "learning_rate": 1.0e-4,
        "report_to": "none",
    }
    cfg.update(over)
    return cfg


def test_template_registry() -> None:
    assert template_exists("qwen3_nothink") and template_exists("qwen3")
    assert not template_exists("qwen3-nothink")


def test_gpu_config_parses_on_cpu_without_creating_anything(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    parsed = parse_train_args(
        base_cfg(
            tiny_model_dir,
            output_dir=str(out),
            bf16=True,
            deepspeed=str(DS_Z3),
            flash_attn="fa2",
            enable_liger_kernel=True,
            rope_scaling="yarn",
        )
    )
    assert parsed.finetuning_args.finetuning_type == "full" and parsed.data_args.cutoff_len == 1024
    assert set(parsed.dropped) == {"bf16", "deepspeed", "enable_liger_kernel"}
    assert not out.exists()  # parsing writes nothing


@pytest.mark.parametrize(
    ("over", "key"),
    [
        ({"template": "qwen3-nothink"}, "template"),
        ({"stage": "sfft"}, "stage"),
        ({"flash_attn": "fa9"}, "flash_attn"),
        ({"rope_scaling": "yarnn"}, "rope_scaling"),
        ({"learning_rate": "1e-4"}, "learning_rate"),
        ({"cutoff_len": 10.5}, "cutoff_len"),
        ({"bf16": "yes"}, "bf16"),
        ({"finetunning_type": "full"}, "finetunning_type"),
    ],
)
def test_bad_values_name_the_key(tiny_model_dir: Path, over: dict, key: str) -> None:
    with pytest.raises(LFConfigError, match=key):
        parse_train_args(base_cfg(tiny_model_dir, **over))


def test_deepspeed_file_is_checked(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(LFConfigError, match="deepspeed.*does not exist"):
        parse_train_args(base_cfg(tiny_model_dir, deepspeed=str(tmp_path / "nope.json")))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LFConfigError, match="deepspeed.*not valid JSON"):
        parse_train_args(base_cfg(tiny_model_dir, deepspeed=str(bad)))


def test_lf_own_rejection_is_reported(tiny_model_dir: Path) -> None:
    # passes our type checks, fails LF's cross-argument validation
    with pytest.raises(LFConfigError, match="LLaMA-Factory rejected.*predict_with_generate"):
        parse_train_args(base_cfg(tiny_model_dir, stage="pt", predict_with_generate=True))


def test_length_stats() -> None:
    assert length_stats([5, 1, 3, 2, 4]) == {"min": 1, "max": 5, "mean": 3.0, "p50": 3, "p95": 5}
    assert length_stats([]) == {"min": 0, "max": 0, "mean": 0.0, "p50": 0, "p95": 0}


@pytest.fixture(scope="module")
def demo_report(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    tok_dir = tmp_path_factory.mktemp("tok") / "tokenized"
    cfg = base_cfg(tiny_model_dir, cutoff_len=1024, bf16=True, deepspeed=str(DS_Z3), flash_attn="fa2")
    return tokenize_dataset(cfg, tok_dir), tok_dir


def test_demo_token_stats(demo_report: tuple[dict, Path]) -> None:
    report, _ = demo_report
    rows = json.loads((DEMO_DIR / "lf_demo.json").read_text())
    assert report["rows_in"] == len(rows) == report["rows_out"] and report["rows_dropped"] == 0
    full, trained = report["length"], report["trained_length"]
    assert 0 < full["min"] <= full["p50"] <= full["p95"] <= full["max"]
    assert trained["max"] <= 1024 < full["max"]
    assert report["rows_over_cutoff"] > 0
    # truncation accounting: the tokens cut are exactly those above cutoff in over-long rows
    assert report["tokens_truncated"] > 0
    assert round(trained["mean"] * report["rows_out"]) == report["tokens_total"] - report["tokens_truncated"]
    assert report["rows_without_trainable_tokens"] == 0 and report["trainable_tokens"] > 0
    assert report["splits"] == {"train": len(rows)}


def test_tokenized_dataset_is_what_lf_training_loads(
    demo_report: tuple[dict, Path], tiny_model_dir: Path
) -> None:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.model import load_tokenizer

    report, tok_dir = demo_report
    assert (tok_dir / "dataset_dict.json").is_file()
    # what a training run does with `tokenized_path` set: load it, ignoring the data keys
    args = parse_train_args(
        base_cfg(tiny_model_dir, tokenized_path=str(tok_dir), output_dir=str(tok_dir.parent / "o"))
    )
    tok = load_tokenizer(args.model_args)
    template = get_template_and_fix_tokenizer(tok["tokenizer"], args.data_args)
    module = get_dataset(template, args.model_args, args.data_args, args.training_args, stage="sft", **tok)
    lengths = [len(x) for x in module["train_dataset"]["input_ids"]]
    assert len(lengths) == report["rows_out"] and max(lengths) == report["trained_length"]["max"]
    # a second pre-tokenization must not silently reuse the old data
    with pytest.raises(FileExistsError):
        tokenize_dataset(base_cfg(tiny_model_dir), tok_dir)


def _dataset_with(tmp_path: Path, extra_rows: list[dict]) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    rows = json.loads((DEMO_DIR / "lf_demo.json").read_text())[:3] + extra_rows
    (d / "lf_demo.json").write_text(json.dumps(rows))
    shutil.copy(DEMO_DIR / "dataset_info.json", d / "dataset_info.json")
    return d


def test_role_order_error_is_counted_not_silent(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = {
        "conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}],
        "system": "s",
        "tools": "",
    }
    odd = {"conversations": [{"from": "human", "value": "a"}], "system": "s", "tools": ""}
    report = tokenize_dataset(base_cfg(tiny_model_dir, _dataset_with(tmp_path, [bad, odd])))
    assert report["rows_in"] == 5 and report["rows_out"] == 3
    assert report["rows_dropped"] == 2 and report["dropped_row_indices"] == [3, 4]


def test_malformed_tools_value_raises_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = {
        "conversations": [
            {"from": "human", "value": "a"},
            {"from": "function_call", "value": '{"name": "bash", "arguments": {"command": "ls"}}'},
        ],
        "system": "s",
        "tools": "[{not json",
    }
    with pytest.raises(LFDatasetError, match="LLaMA-Factory failed on the dataset"):
        tokenize_dataset(base_cfg(tiny_model_dir, _dataset_with(tmp_path, [bad])))
