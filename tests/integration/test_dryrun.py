"""`sft dryrun`: config, LLaMA-Factory's own parser and tokenization on CPU, before any GPU is requested."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.pipeline import BIN, demo_project, env
from tests.project import edit_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_model_dir):
    return demo_project(tmp_path_factory.mktemp("dryrun") / "proj", tiny_model_dir)


def dryrun(root, *args):
    proc = subprocess.run(
        [str(BIN / "sft"), "dryrun", "--json", *args],
        cwd=root,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout)


def test_shipped_config_passes_and_reports_tokens(root):
    code, report = dryrun(root)
    assert code == 0, report
    tok = report["tokenization"]
    assert tok["rows_in"] == tok["rows_out"] == 5 and tok["rows_dropped"] == 0
    assert tok["rows_over_cutoff"] == 5 and tok["length"]["max"] > tok["cutoff_len"]  # counted, not hidden
    assert report["llamafactory_config"]["deepspeed"].endswith("ds_z3_config.json")
    assert not (root / "artifacts/data/lf_data").exists()  # nothing under artifacts/ was written


def test_bad_template_is_caught(root):
    config = root / "config/config.yaml"
    original = config.read_text()
    try:
        edit_config(
            config, lambda d: d["runtime_info"]["input"]["training"].__setitem__("template", "qwen3_nothnk")
        )
        code, report = dryrun(root)
    finally:
        config.write_text(original)
    assert code == 2 and report["stage"] == "config"
    assert report["problems"][0].startswith("runtime_info.input.training.template: expected one of")


def test_malformed_rows_are_caught_before_training(root):
    rows = json.loads((root / "config/demo/lf_demo.json").read_text())
    bad = [dict(rows[0]), dict(rows[1])]
    bad[0]["conversations"] = bad[0]["conversations"][:-1]  # ends on the human side: LF silently drops it
    bad[1]["conversations"] = [
        {"from": "human", "value": "hi"},
        {"from": "function_call", "value": '{"arguments": {}}'},
    ]  # no name: LF crashes
    (root / "config/demo/bad.json").write_text(json.dumps(rows[2:6] + bad))
    variant = root / "config/variants/bad-rows.yaml"
    variant.write_text(
        "runtime_info:\n  input:\n    source: {type: local_lf, lf_path: config/demo/bad.json}\n"
        "    conversion: {data_name: bad_rows}\n    training: {output_dir: bad-run}\n"
    )
    code, report = dryrun(root, "--variant", "bad-rows")
    assert code == 1  # a failed check (exit 2 is kept for an invalid config)
    validation = report["data"]["validation"]
    assert validation["rows"] == 6 and validation["invalid_rows"] == 2
    assert any(e.startswith("row 4:") for e in validation["examples"])
    assert any(e.startswith("row 5:") for e in validation["examples"])


def test_memory_plan_in_report_and_overcommit_refused_unless_allowed(root):
    config = root / "config/config.yaml"
    original = config.read_text()
    infra = lambda d: d["runtime_info"]["input"]["infrastructure"]
    try:
        edit_config(config, lambda d: infra(d).__setitem__("gpu_memory_gb", 1))  # < the 4 GB reserve alone
        code, report = dryrun(root)
        assert code == 1 and report["stage"] == "memory" and not report["ok"]
        assert report["memory"]["fits"] is False and report["memory"]["suggestions"]
        assert report["tokenization"]["rows_out"] == 5  # every other check still ran
        edit_config(config, lambda d: infra(d).__setitem__("allow_memory_overcommit", True))
        code, report = dryrun(root)
        assert code == 0 and report["ok"] and report["memory"]["fits"] is False
    finally:
        config.write_text(original)
    code, report = dryrun(root)
    assert code == 0 and report["memory"]["fits"] and report["memory"]["gpu_memory_gb"] == 80
    assert report["memory"]["inputs"]["params"] > 0  # planned from the built tiny model's config.json


def test_violated_dataset_check_fails_unless_allowed(root):
    """enable_thinking: false strips the demo rows' reasoning: the reasoning_policy check fails the dry run."""
    variant = root / "config/variants/stripped.yaml"
    body = (
        "runtime_info:\n  input:\n    source: {type: local_lf, lf_path: config/demo/lf_demo.json}\n"
        "    conversion: {data_name: stripped, over_cutoff: keep%s}\n"
        "    training: {enable_thinking: false, output_dir: stripped}\n"
    )
    variant.write_text(body % "")
    code, report = dryrun(root, "--variant", "stripped")
    assert code == 1 and report["stage"] == "inspect" and not report["ok"]
    failed = [c["name"] for c in report["inspection"]["checks"] if not c["ok"]]
    assert failed == ["reasoning_policy"]
    variant.write_text(body % ", allow_failed_checks: [reasoning_policy]")
    code, report = dryrun(root, "--variant", "stripped")
    assert code == 0 and report["ok"] and report["inspection"]["ok"]
