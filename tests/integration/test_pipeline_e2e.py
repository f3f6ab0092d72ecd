"""The whole DAG for real on CPU: 2-rank DeepSpeed ZeRO-3 training of the tiny model, then the records.

One module-scoped invocation trains the active profile (`base`: the bundled Claude Code job) and the
`demo-local` variant together; the contract checks, rerun semantics (dry runs and one real re-plot)
and the variant/compare checks all use it, so this module trains exactly twice.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from sftpipe.runs import index as run_index

from tests.integration.pipeline import BIN, demo_project, env, planned_jobs, snakemake
from tests.project import edit_config, load_yaml

pytestmark = pytest.mark.slow
SECRET = "sftpipe-e2e-secret-7f3a9c"  # a W&B key that must never reach any file


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model_dir):
    root = demo_project(tmp_path_factory.mktemp("e2e") / "proj", tiny_model_dir)
    config_before = (root / "config/config.yaml").read_text()
    snakemake(root, "--config", "variants=base,demo-local", extra_env={"WANDB_API_KEY": SECRET})
    return root, config_before


def test_contract_layout(finished):
    root, _ = finished
    run = root / "artifacts/model/demo-run"
    for name in (
        "trainer_log.jsonl",
        "trainer_state.json",
        "train_results.json",
        "all_results.json",
        "training_loss.png",
        "metrics.json",
        "metrics.jsonl",
        "llamafactory_config.yaml",
        "run_config.yaml",
        "run.json",
        "train_manifest.json",
    ):
        assert (run / name).is_file(), name
    assert (run / "checkpoint-8" / "latest").is_file()  # ZeRO-3 checkpoint with its tag
    assert (run / "checkpoint-4" / "trainer_state.json").is_file()
    assert (root / "artifacts/data/lf_data/dataset_info.json").is_file()
    logs = list((root / "artifacts/logs").glob("demo-run_2*.log"))
    assert len(logs) == 1 and "sftpipe.training.lf_entry" in logs[0].read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["summary"]["total_steps"] == 8
    assert [row["step"] for row in metrics["series"] if row.get("loss") is not None] == list(range(1, 9))


def test_two_ranks_really_trained_with_zero3(finished):
    root, _ = finished
    ckpt = root / "artifacts/model/demo-run/checkpoint-8"
    shards = sorted(p.name for p in (ckpt / "global_step8").iterdir() if "optim_states" in p.name)
    assert len(shards) == 2, shards  # one ZeRO-3 optimizer shard per rank


def test_writeback_touches_only_the_output_block(finished):
    root, before = finished
    after = (root / "config/config.yaml").read_text()
    cut = before.index("  output: {}")
    assert after[:cut] == before[:cut]  # every byte before the block, comments included
    output = load_yaml(root / "config/config.yaml")["runtime_info"]["output"]
    assert output["checkpoint_path"] == "artifacts/model/demo-run/checkpoint-8/"
    results = json.loads((root / "artifacts/model/demo-run/train_results.json").read_text())
    assert output["training_metrics"]["final_loss"] == pytest.approx(results["train_loss"])
    assert output["training_metrics"]["total_steps"] == 8
    assert output["artifacts"]["train_loss_plot"] == "artifacts/model/demo-run/training_loss.png"
    assert (root / output["artifacts"]["training_log"]).is_file()


def test_index_entry_records_the_run(finished):
    root, _ = finished
    entries = run_index.read_entries(root / "artifacts/index.yaml")
    assert sorted(e["run_dir"] for e in entries) == [
        "artifacts/model/demo-local-run",
        "artifacts/model/demo-run",
    ]
    (entry,) = [e for e in entries if e["run_dir"] == "artifacts/model/demo-run"]
    assert entry["status"] == "completed" and entry["exit_code"] == 0 and entry["variant"] is None
    assert entry["run_dir"] == "artifacts/model/demo-run"
    assert entry["started_at"].endswith("Z") and entry["completed_at"].endswith("Z")
    assert entry["checkpoint_path"].rstrip("/") == "artifacts/model/demo-run/checkpoint-8"
    assert entry["final_loss"] is not None and entry["config_hash"]


def test_nothing_to_do_after_writeback(finished):
    root, _ = finished
    assert planned_jobs(root) == set()


def test_training_change_reruns_train_and_downstream_not_registration(finished):
    root, _ = finished
    config = root / "config/config.yaml"
    original = config.read_text()
    try:
        edit_config(
            config, lambda d: d["runtime_info"]["input"]["training"].__setitem__("learning_rate", 5e-4)
        )
        assert planned_jobs(root) == {"train", "metrics", "plot", "writeback", "record"}
    finally:
        config.write_text(original)


def test_data_change_reruns_registration_too(finished):
    root, _ = finished
    config = root / "config/config.yaml"
    original = config.read_text()
    try:
        edit_config(
            config, lambda d: d["runtime_info"]["input"]["conversion"].__setitem__("max_instances", 5)
        )
        assert {"register", "train"} <= planned_jobs(root)
    finally:
        config.write_text(original)


def test_stage_targets_run_alone(finished):
    root, _ = finished
    assert planned_jobs(root, "--forcerun", "register", "--until", "register") == {"register"}
    assert "train" not in planned_jobs(root, "--forcerun", "plot")


def test_replot_never_retrains(finished):
    root, _ = finished
    png = root / "artifacts/model/demo-run/training_loss.png"
    manifest = root / "artifacts/model/demo-run/train_manifest.json"
    manifest_before, png_before = manifest.stat().st_mtime_ns, png.stat().st_mtime_ns
    snakemake(root, "--forcerun", "plot", "--until", "plot")
    assert png.stat().st_mtime_ns > png_before
    assert manifest.stat().st_mtime_ns == manifest_before


def test_dag_and_multi_variant_dry_run(finished):
    root, _ = finished
    dag = snakemake(root, "--dag").stdout
    assert "digraph" in dag and "train" in dag and "tokenize" in dag
    # Both trained runs are up to date; a new variant sharing base's data plans only its own training chain.
    (root / "config/variants/lr-sweep.yaml").write_text(
        "runtime_info:\n  input:\n    training:\n      learning_rate: 5.0e-4\n      output_dir: lr-sweep-run\n"
    )
    try:
        assert planned_jobs(root, "--config", "variants=base,demo-local") == set()
        jobs = planned_jobs(root, "--config", "variants=base,demo-local,lr-sweep")
        assert jobs == {
            "train",
            "metrics",
            "plot",
            "writeback",
            "record",
        }  # data shared with base: no convert
        assert "lr-sweep-run" in snakemake(root, "-n", "--config", "variants=base,demo-local,lr-sweep").stdout
    finally:
        (root / "config/variants/lr-sweep.yaml").unlink()


def test_pretokenized_cache_is_what_training_loaded(finished):
    root, _ = finished
    lf_yaml = load_yaml(root / "artifacts/model/demo-run/llamafactory_config.yaml")
    cache = root / lf_yaml["tokenized_path"]
    assert (cache / "dataset_dict.json").is_file()
    report = json.loads((cache / "sft_tokenize_report.json").read_text())
    assert report["rows_out"] == 5 and report["rows_over_cutoff"] == 5
    log = next((root / "artifacts/logs").glob("demo-run_*.log")).read_text()
    assert "Loaded tokenized dataset" in log


def test_snakemake_report_has_plot_metrics_and_conversion_stats(finished):
    root, _ = finished
    snakemake(root, "--report", "report.html")
    html = (root / "report.html").read_text(errors="replace")
    for item in (
        "training_loss.png",
        "metrics.json",
        "demo_claude_code.stats.json",
        "demo_claude_code.report.json",
    ):
        assert item in html, item


def test_wandb_offline_run_id_is_written_back_and_the_key_never_written(finished):
    root, _ = finished
    output = load_yaml(root / "config/config.yaml")["runtime_info"]["output"]
    run_id = output["training_curves"]["wandb_run_id"]
    assert run_id and any((root / "artifacts/model/demo-run/wandb").glob(f"offline-run-*-{run_id}"))
    leaked = [
        p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and SECRET.encode() in p.read_bytes()
    ]
    assert leaked == []


def test_two_variants_trained_in_one_invocation_and_compared(finished):
    root, _ = finished
    # The variant's results went to its own output file; config.yaml holds only base's output block.
    variant_out = load_yaml(root / "config/variants/demo-local.output.yaml")["runtime_info"]["output"]
    assert variant_out["checkpoint_path"] == "artifacts/model/demo-local-run/checkpoint-8/"
    assert (
        load_yaml(root / "config/config.yaml")["runtime_info"]["output"]["run_dir"]
        == "artifacts/model/demo-run/"
    )
    proc = subprocess.run(
        [str(BIN / "sft"), "compare", "demo-run", "demo-local-run", "--json"],
        cwd=root,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [r["run_dir"].rstrip("/").rsplit("/", 1)[-1] for r in result["runs"]] == [
        "demo-run",
        "demo-local-run",
    ]
    diffs = result["config_differences"]  # dotted key -> value per run
    assert diffs["runtime_info.input.training.template"] == ["qwen3", "qwen3_nothink"]
    assert diffs["runtime_info.input.conversion.data_name"] == ["demo_claude_code", "demo_local"]
    assert (root / result["plot"]).is_file()
