import json
import os
from pathlib import Path

import pytest
from harbor_job_builder import make_trial, write_job_result
from sftpipe.cli.convert import register_cli
from sftpipe.data.conversion.convert import ConversionOptions, convert_job
from sftpipe.data.conversion.lf_format import validate_lf_row


def _job(tmp_path: Path, n: int = 4) -> Path:
    job = tmp_path / "job"
    rewards = {}
    for i in range(n):
        name = f"own__repo-{i}__t{i}"
        make_trial(job, name, f"own__repo-{i}", reward=1.0, n_turns=3 + i)
        rewards[name] = 1.0
    make_trial(job, "own__repo-0__second", "own__repo-0", reward=1.0)  # a 2nd solution of instance 0
    rewards["own__repo-0__second"] = 1.0
    write_job_result(job, rewards)
    return job


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_convert_writes_aligned_valid_outputs_and_a_consistent_report(tmp_path):
    job = _job(tmp_path)
    before = _files(tmp_path)
    report = convert_job(job, tmp_path / "out", "demo", ConversionOptions(workers=1))
    rows = json.loads((tmp_path / "out/lf_data/demo.json").read_text())
    ims = [json.loads(l) for l in (tmp_path / "out/demo.im.jsonl").read_text().splitlines()]
    assert len(rows) == len(ims) == report.rows_written == 5
    assert all(validate_lf_row(r) == [] for r in rows)
    assert all(im["version"] == "2.0.0" and im["messages"][0]["role"] == "system" for im in ims)
    assert {im["meta_info"]["unique_info"]["_instance_id"] for im in ims} == {
        f"own__repo-{i}" for i in range(4)
    }
    d = json.loads((tmp_path / "out/demo.report.json").read_text())
    assert d["trials"]["kept"] == 5 and d["rows"]["written"] == 5
    stats = json.loads((tmp_path / "out/demo.stats.json").read_text())
    assert stats["rows"] == 5 and stats["samples_per_agent_type"] == {"main": 5}
    assert stats["token_length"]["measured"] is False and stats["score"]["count"] == 5
    # Nothing written outside out_dir, no temp files left.
    new = _files(tmp_path) - before
    assert all(p.startswith("out") for p in new) and not any(p.endswith(".tmp") for p in new)


def test_order_is_deterministic_across_worker_counts_and_max_instances_counts_instances(tmp_path):
    job = _job(tmp_path)
    one = convert_job(job, tmp_path / "a", "d", ConversionOptions(workers=1, max_instances=2))
    two = convert_job(job, tmp_path / "b", "d", ConversionOptions(workers=2, max_instances=2))
    assert (tmp_path / "a/lf_data/d.json").read_bytes() == (tmp_path / "b/lf_data/d.json").read_bytes()
    assert one.instances_written == two.instances_written == 2
    statuses = one.trials_by_status
    assert statuses.get("over_max_instances", 0) + statuses["kept"] == 5
    capped = convert_job(job, tmp_path / "c", "d", ConversionOptions(workers=1, max_trials_per_instance=1))
    assert capped.trials_by_status == {"kept": 4, "over_max_trials_per_instance": 1}


def test_cli_convert_json(tmp_path, capsys):
    import argparse

    job = _job(tmp_path, n=1)
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    args = parser.parse_args(
        [
            "convert",
            "--job-dir",
            str(job),
            "--data-name",
            "x",
            "--out-dir",
            str(tmp_path / "o"),
            "--exclude-repos-file",
            "",
            "--workers",
            "1",
            "--json",
        ]
    )
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"]["written"] == 2 and (tmp_path / "o/x.report.txt").is_file()


@pytest.mark.parametrize("template", ["qwen3_nothink", "qwen3"])
def test_lf_loader_reads_every_row(tmp_path, tiny_model_dir, template):
    """Round trip through LLaMA-Factory's own data loader: no row may be skipped."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from transformers import AutoTokenizer

    job = _job(tmp_path, n=3)
    report = convert_job(
        job,
        tmp_path / "out",
        "rt",
        ConversionOptions(
            workers=1, tokenizer_path=str(tiny_model_dir), template=template, cutoff_len=100000
        ),
    )
    data_dir = tmp_path / "out/lf_data"
    (data_dir / "dataset_info.json").write_text(
        json.dumps(
            {
                "rt": {
                    "file_name": "rt.json",
                    "formatting": "sharegpt",
                    "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
                }
            }
        )
    )
    model_args, data_args, training_args, *_ = get_train_args(
        {
            "stage": "sft",
            "do_train": True,
            "model_name_or_path": str(tiny_model_dir),
            "finetuning_type": "full",
            "dataset": "rt",
            "dataset_dir": str(data_dir),
            "template": template,
            "cutoff_len": 100000,
            "output_dir": str(tmp_path / "train"),
            "overwrite_cache": True,
            "preprocessing_num_workers": 1,
            "report_to": "none",
        }
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tpl = get_template_and_fix_tokenizer(tokenizer, data_args)
    module = get_dataset(tpl, model_args, data_args, training_args, "sft", tokenizer=tokenizer)
    ds = module["train_dataset"]
    assert len(ds) == report.rows_written == 4
    assert all(len(x) > 0 for x in ds["input_ids"])  # LF turns broken rows into empty examples
    stats = json.loads((tmp_path / "out/rt.stats.json").read_text())
    assert stats["token_length"]["measured"] and stats["token_length"]["max"] == max(
        len(x) for x in ds["input_ids"]
    )
    os.environ.pop("WANDB_DISABLED", None)


def test_over_cutoff_policy_drops_or_keeps_and_counts(tmp_path, tiny_model_dir):
    job = _job(tmp_path, n=2)  # 3 trials; measured lengths are a few hundred tokens
    kw = {"workers": 1, "tokenizer_path": str(tiny_model_dir), "template": "qwen3_nothink", "cutoff_len": 10}
    dropped = convert_job(job, tmp_path / "d", "x", ConversionOptions(over_cutoff="drop", **kw))
    assert dropped.rows_written == 0 and dropped.rows_dropped == {"over_length": 3}
    assert dropped.trials_by_status == {"over_length": 3}
    kept = convert_job(job, tmp_path / "k", "x", ConversionOptions(over_cutoff="keep", **kw))
    stats = json.loads((tmp_path / "k/x.stats.json").read_text())
    assert kept.rows_written == 3 and stats["token_length"]["count_over_cutoff"] == 3


def test_captured_claude_code_job_converts_with_main_and_subagent_samples(tmp_path):
    """The job captured from the real Claude Code client (tests/fixtures/harbor_jobs/claude-code)."""
    job = Path(__file__).resolve().parents[3] / "fixtures" / "harbor_jobs" / "claude-code"
    opts = ConversionOptions(workers=1, selection="all", keep_subagents=True)
    report = convert_job(job, tmp_path / "out", "cc", opts)
    rows = json.loads((tmp_path / "out/lf_data/cc.json").read_text())
    ims = [json.loads(l) for l in (tmp_path / "out/cc.im.jsonl").read_text().splitlines()]
    assert rows and len(rows) == len(ims) == report.rows_written
    assert all(validate_lf_row(r) == [] for r in rows)
    kinds = {im["meta_info"]["unique_info"]["_agent_type"] for im in ims}
    assert kinds == {"main", "subagent"}
    for im in ims:
        score = im["meta_info"]["unique_info"]["_score"]
        assert (score is None) == (im["meta_info"]["unique_info"]["_agent_type"] == "subagent")
    assert not any("x-anthropic-billing-header" in r["system"] for r in rows)


def test_min_score_and_subagent_policy_drop_rows_with_counted_reasons(tmp_path):
    job = Path(__file__).resolve().parents[3] / "fixtures" / "harbor_jobs" / "claude-code"
    strict = convert_job(
        job,
        tmp_path / "a",
        "cc",
        ConversionOptions(workers=1, selection="all", min_score=0.999, keep_subagents=True),
    )
    ims = [json.loads(l) for l in (tmp_path / "a/cc.im.jsonl").read_text().splitlines()]
    assert strict.rows_dropped.get("below_min_score", 0) >= 1
    assert all(im["meta_info"]["unique_info"]["_agent_type"] == "subagent" for im in ims)  # never scored
    mains = convert_job(
        job, tmp_path / "b", "cc", ConversionOptions(workers=1, selection="all", keep_subagents=False)
    )
    assert mains.rows_dropped.get("subagent_excluded", 0) >= 1
    d = json.loads((tmp_path / "b/cc.report.json").read_text())
    assert d["rows"]["candidates"] == d["rows"]["written"] + d["rows"]["dropped"]
