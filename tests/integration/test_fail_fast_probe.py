"""Fail fast at the maximum length, and throughput records, through the real train rule on CPU.

One project: first with a per-rank memory limit (infrastructure.cpu_rank_memory_limit_mb) that a batch
of the longest length cannot fit in, so the probe's forward/backward really fails to allocate and the
run must stop before its first step with `oom_at_max_length`; then without the limit, so the same
probe passes and the run trains to the end and records tokens/s per GPU (and MFU, unknown on CPU).
"""

from __future__ import annotations

import json
import subprocess

import pytest
from sftpipe.runs import index as run_index

from tests.integration.pipeline import BIN, demo_project, env, snakemake
from tests.project import edit_config, load_yaml

pytestmark = pytest.mark.slow
RUN = "artifacts/model/demo-run"


def _set_limit(root, mb: int) -> None:
    def edit(cfg):
        cfg["runtime_info"]["input"]["infrastructure"]["cpu_rank_memory_limit_mb"] = mb

    edit_config(root / "config/config.yaml", edit)


def _status_json(root) -> dict:
    out = subprocess.run(
        [str(BIN / "sft"), "status", "--json"],
        cwd=root,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir):
    root = demo_project(tmp_path_factory.mktemp("probe") / "proj", tiny_model_dir)
    _set_limit(root, 32)  # MB of headroom per rank: far below one 2048-token step of the tiny model
    failed = snakemake(root, check=False)
    oom = {
        "rc": failed.returncode,
        "entries": run_index.read_entries(root / "artifacts/index.yaml"),
        "status": _status_json(root),
        "probe": json.loads((root / RUN / "max_length_probe.json").read_text()),
        "events": (root / RUN / "events.jsonl").read_text(),
        "trainer_log": (root / RUN / "trainer_log.jsonl").is_file(),
        "console": (root / load_yaml(root / "artifacts/index.yaml")[0]["log"]).read_text(),
    }
    _set_limit(root, 0)
    snakemake(root)
    return root, oom


def test_too_large_run_stops_before_its_first_step_with_oom_at_max_length(project):
    _, oom = project
    assert oom["rc"] != 0
    entry = oom["entries"][0]
    assert entry["status"] == "oom_at_max_length"
    assert "did not fit" in entry["error"] and "enable_liger_kernel" in entry["error"]
    assert oom["status"]["status"] == "oom_at_max_length" and oom["status"]["run_id"] == entry["id"]
    probe = oom["probe"]
    assert probe["ok"] is False and probe["failed_ranks"] == [0, 1]
    assert probe["length"] == 2048 and probe["batch_size"] == 1  # the demo's rows reach cutoff_len
    assert "can't allocate memory" in probe["error"]  # a real allocation failure
    assert probe["seconds"] < 60 and probe["peak_memory_gb"] > 0
    assert not oom["trainer_log"]  # stopped before the first optimizer step
    assert "max-length probe: out of memory" in oom["events"]
    assert "[rank0]: Traceback" not in oom["console"]  # a clear record, not a rank's stack trace


def test_normal_run_passes_the_probe_and_trains(project):
    root, _ = project
    probe = json.loads((root / RUN / "max_length_probe.json").read_text())
    assert probe["ok"] is True and probe["length"] == 2048 and probe["memory_kind"] == "cpu_peak_rss"
    assert all(
        peak > base > 0
        for peak, base in zip(
            probe["peak_memory_bytes_per_rank"], probe["baseline_memory_bytes_per_rank"], strict=True
        )
    )
    entries = run_index.read_entries(root / "artifacts/index.yaml")
    assert [e["status"] for e in entries] == ["oom_at_max_length", "completed"]
    assert "max-length probe passed" in (root / RUN / "events.jsonl").read_text()


def test_throughput_recorded_everywhere(project):
    root, _ = project
    summary = json.loads((root / RUN / "metrics.json").read_text())["summary"]
    perf = summary["throughput"]
    tokens = summary["num_input_tokens_seen"]
    assert tokens > 8 * 2 * 2 * 100  # 8 steps x 2 micro-batches x 2 ranks of long rows
    per_gpu = tokens / summary["train_runtime"] / 2  # two CPU ranks
    assert summary["tokens_per_second_per_gpu"] == pytest.approx(per_gpu, rel=1e-3)
    assert perf["n_params"] > 0 and perf["model_flops_per_token"] > 6 * perf["n_params"]
    assert 100 < perf["mean_seq_len"] <= 2048
    assert summary["mfu"] is None and perf["peak_tflops_per_gpu"] is None  # CPU: no peak, no MFU
    assert summary["peak_gpu_memory_gb"] is None and perf["peak_rss_gb"] > 0.1  # CPU: no GPU figure
    rows = [json.loads(line) for line in (root / RUN / "metrics.jsonl").read_text().splitlines()]
    assert any(r["tokens_per_second_per_gpu"] for r in rows)
    entry = run_index.read_entries(root / "artifacts/index.yaml")[-1]
    assert entry["tokens_per_second_per_gpu"] == summary["tokens_per_second_per_gpu"] and entry["mfu"] is None
    written = load_yaml(root / "config/config.yaml")["runtime_info"]["output"]["training_metrics"]
    assert written["tokens_per_second_per_gpu"] == summary["tokens_per_second_per_gpu"]
    assert "mfu" in written and "peak_gpu_memory_gb" in written
    progress = _status_json(root)["progress"]
    assert progress["tokens_per_second_per_gpu"] > 0 and progress["mfu"] is None


def _losses(trainer_log) -> list[tuple[int, float]]:
    return [
        (r["current_steps"], r["loss"])
        for line in trainer_log.read_text().splitlines()
        if "loss" in (r := json.loads(line))
    ]


def test_the_probe_leaves_no_trace_in_training(project):
    """Same config without the probe (2-rank ZeRO-3): the very same losses, step by step."""
    root, _ = project
    with_probe = _losses(root / RUN / "trainer_log.jsonl")

    def off(cfg):
        cfg["runtime_info"]["input"]["infrastructure"]["fail_fast_probe"] = False

    edit_config(root / "config/config.yaml", off)
    subprocess.run(
        [str(BIN / "sft"), "train", "--manifest", str(root / "manifest-noprobe.json")],
        cwd=root,
        env=env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    assert not (root / RUN / "max_length_probe.json").exists()  # the finished run was archived; no probe now
    assert _losses(root / RUN / "trainer_log.jsonl") == with_probe and len(with_probe) == 8
