"""`sft compare`: config differences (credentials never shown), key metrics, overlay PNG."""

from __future__ import annotations

import json

import pytest
import yaml
from sftpipe.cli import main
from sftpipe.report import compare

from tests.unit.runs.run_files import add_entry, log_lines, write_log

SECRET = "hf_UNIQUE_compare_secret_123"


def _run(root, name, lr, losses, creds):
    run = root / "artifacts/model" / name
    write_log(run, log_lines(losses, {4: min(losses.values()) + 0.1}, total=4))
    cfg = {
        "runtime_info": {
            "input": {
                "training": {"learning_rate": lr, "cutoff_len": 1024, "save_steps": 2},
                "credentials": creds,
                "experiment": {"wandb_api_key_note": SECRET},
            },
            "output": {"final_loss": 1.0},
        },
        "variant": name,
    }
    (run / "run_config.yaml").write_text(yaml.safe_dump(cfg))
    return add_entry(root, run, status="completed")


@pytest.fixture
def two_runs(tmp_path):
    a = _run(
        tmp_path, "base", 1e-4, {1: 3.0, 2: 2.5, 3: 2.2, 4: 2.0}, {"hf_token": SECRET, "wandb_api_key": ""}
    )
    b = _run(tmp_path, "hot", 1e-3, {1: 3.0, 2: 2.0, 3: 1.6, 4: 1.5}, {"hf_token": "<redacted>"})
    return tmp_path, a, b


def test_flatten_and_differences():
    flat = compare.flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}})
    assert flat == {"a.b": 1, "a.c.d": [1, 2], "e": {}}
    diffs = compare.config_differences([{"x": 1, "y": 2}, {"x": 1, "y": 3, "z": 0}])
    assert diffs == {"y": [2, 3], "z": [compare.ABSENT, 0]}


def test_compare_table_and_plot(two_runs, capsys):
    root, a, b = two_runs
    out_png = root / "cmp.png"
    assert main(["compare", a, b, "--root", str(root), "--out", str(out_png)]) == 0
    text = capsys.readouterr().out
    assert SECRET not in text and "credentials" not in text and "runtime_info.output" not in text
    assert "runtime_info.input.training.learning_rate" in text and "cutoff_len" not in text
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out_png.stat().st_size > 10_000
    assert main(["compare", a, b, "--root", str(root), "--out", str(out_png), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert SECRET not in json.dumps(result)
    assert [r["metrics"]["last_loss"] for r in result["runs"]] == [2.0, 1.5]
    assert set(result["config_differences"]) == {"runtime_info.input.training.learning_rate", "variant"}


def test_compare_unknown_run(two_runs, capsys):
    root, a, _ = two_runs
    assert main(["compare", a, "nope", "--root", str(root)]) == 1
    assert "nope" in capsys.readouterr().err
