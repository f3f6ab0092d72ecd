"""Token view and dataset checks on real files: the demo data, captured Harbor jobs converted with `sft convert`,
and the tiny Qwen3 tokenizer, through LLaMA-Factory's own template and supervised processor."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
from sftpipe.config import RunConfig, read_yaml, resolve
from sftpipe.data.inspect import CHECK_NAMES, failed_checks, inspect_dataset, load_rows, render_sample
from sftpipe.data.token_view import RenderError, viewer_for
from sftpipe.paths import LF_DATA_DIR

from tests.integration.pipeline import BIN, DEMO_MODEL, env
from tests.project import REPO, make_project

DEMO_ROWS = "config/demo/lf_demo.json"
SCAFFOLDS = ("claude-code", "opencode", "openhands-sdk", "terminus2")


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_model_dir) -> Path:
    """A project with the demo model built and the captured Harbor jobs converted by `sft convert`."""
    import shutil

    from sftpipe.cli import main

    root = make_project(tmp_path_factory.mktemp("inspect") / "proj")
    shutil.copytree(tiny_model_dir, root / DEMO_MODEL)
    for scaffold in SCAFFOLDS:
        code = main(
            [
                "convert",
                "--job-dir",
                str(REPO / "tests/fixtures/harbor_jobs" / scaffold),
                "--data-name",
                f"cap_{scaffold.replace('-', '_')}",
                "--out-dir",
                str(root / "artifacts/data"),
                "--selection",
                "all",
                "--exclude-repos-file",
                "",
                "--tokenizer-path",
                "",
                "--workers",
                "1",
            ]
        )
        assert code == 0
    return root


def make_cfg(
    root: Path, lf_path: str = DEMO_ROWS, training: dict | None = None, conversion: dict | None = None
) -> RunConfig:
    raw = read_yaml(root / "config/config.yaml")
    inp = raw["runtime_info"]["input"]
    inp["source"].update(type="local_lf", lf_path=lf_path)
    inp["training"].update(training or {})
    inp["conversion"].update({"over_cutoff": "keep", **(conversion or {})})
    return RunConfig(resolve(raw, root), root)


def captured(scaffold: str) -> str:
    return str(LF_DATA_DIR / f"cap_{scaffold.replace('-', '_')}.json")


def by_name(report: dict) -> dict:
    return {c["name"]: c for c in report["checks"]}


def test_render_sample_is_lf_supervised_output(root):
    cfg = make_cfg(root)
    rows = load_rows(root / DEMO_ROWS)
    view = viewer_for(cfg)
    out = render_sample(cfg, rows[0])
    ids = [t["id"] for t in out["tokens"]]
    # the same ids and labels as LF's processor, fed the way LF's loader feeds it
    from llamafactory.extras.constants import IGNORE_INDEX

    aligned = view.converter(rows[0])
    lf = view.processor.preprocess_dataset({k: [aligned[k]] for k in aligned})
    assert ids == lf["input_ids"][0]
    assert [t["trained"] for t in out["tokens"]] == [x != IGNORE_INDEX for x in lf["labels"][0]]
    # the per-token texts are the whole decode, and the turns tile the sequence
    assert "".join(t["text"] for t in out["tokens"]) == view.tokenizer.decode(ids, skip_special_tokens=False)
    assert out["turns"] and out["turns"][0]["start"] == 0 and out["turns"][-1]["end"] == out["n_tokens"]
    assert all(a["end"] == b["start"] for a, b in zip(out["turns"], out["turns"][1:]))
    # prompts masked, targets trained, each target ends with a trained <|im_end|>
    for turn in out["turns"]:
        toks = out["tokens"][turn["start"] : turn["end"]]
        if turn["kind"] == "prompt":
            assert not any(t["trained"] for t in toks)
        else:
            assert all(t["trained"] for t in toks)
            assert [t["text"] for t in toks][-2:] == ["<|im_end|>", "\n"]
    trained_text = "".join(t["text"] for t in out["tokens"] if t["trained"])
    assert "<tool_call>" in trained_text and "<tool_response>" not in trained_text
    assert out["n_trained"] == sum(t["trained"] for t in out["tokens"]) and not out["truncated"]


def test_trained_token_total_matches_lf_get_dataset(root, tmp_path):
    """Totals over the whole file equal those of LF's real get_dataset run (sftpipe.lf.checks)."""
    from sftpipe.data.registration import dataset_entry
    from sftpipe.lf.checks import tokenize_dataset
    from sftpipe.lf.render import render

    cfg = make_cfg(root, training={"val_size": 0.0, "eval_strategy": "no", "cutoff_len": 1024})
    report = inspect_dataset(cfg)
    entry = dict(dataset_entry(cfg), file_name=str(root / DEMO_ROWS))
    (tmp_path / "dataset_info.json").write_text(json.dumps({cfg.data_name: entry}))
    lf_cfg = dict(render(cfg), dataset_dir=str(tmp_path), model_name_or_path=str(root / DEMO_MODEL))
    tok = tokenize_dataset(lf_cfg)
    assert report["summary"]["trained_tokens"] == tok["trainable_tokens"]
    assert report["summary"]["truncated"] == tok["rows_over_cutoff"] > 0
    assert by_name(report)["truncation"]["count"] == tok["rows_over_cutoff"]


@pytest.mark.parametrize("source", [DEMO_ROWS, *[captured(s) for s in SCAFFOLDS]])
def test_checks_pass_on_real_data(root, source):
    report = inspect_dataset(make_cfg(root, lf_path=source, training={"cutoff_len": 32768}))
    assert report["ok"], failed_checks(report)
    assert [c["name"] for c in report["checks"]] == list(CHECK_NAMES)
    assert report["summary"]["rendered"] == report["summary"]["rows"] > 0
    checks = by_name(report)
    assert checks["end_token_trained"]["total"] > 0 and checks["reasoning_policy"]["total"] > 0
    if source != captured("terminus2"):  # terminus-2 answers in plain text, the others call tools
        assert checks["tool_call_format"]["total"] > 0
    assert 0 < report["summary"]["trained_share"] < 1 and report["summary"]["seconds"] < 30


def test_tool_calls_in_the_wrong_format_fail(root):
    """tool_format: default renders qwen3's tool calls as 'Action: ...' text the model never emits."""
    report = inspect_dataset(make_cfg(root, training={"tool_format": "default"}))
    check = by_name(report)["tool_call_format"]
    assert not check["ok"] and check["count"] == check["total"] > 0 and not report["ok"]


def test_reasoning_stripped_by_enable_thinking_false_fails(root):
    rows = load_rows(root / DEMO_ROWS)
    cfg = make_cfg(root, training={"enable_thinking": False})
    out = render_sample(cfg, rows[0])
    assert "<think>" in rows[0]["conversations"][1]["value"]
    assert "</think>" not in "".join(t["text"] for t in out["tokens"] if t["trained"])
    check = by_name(inspect_dataset(cfg))["reasoning_policy"]
    assert not check["ok"] and 0 in check["examples"]
    # and reasoning trained although the policy drops it
    check = by_name(inspect_dataset(make_cfg(root, conversion={"reasoning": "drop"})))["reasoning_policy"]
    assert not check["ok"]


def test_end_token_in_the_prompt_part_fails(root, monkeypatch):
    """A template that emits the assistant's end token on the next prompt: it is in the input but masked."""
    from llamafactory.data.formatter import FunctionFormatter, StringFormatter, ToolFormatter
    from llamafactory.data.template import TEMPLATES, register_template

    name = "sft_test_end_in_prompt"
    register_template(
        name=name,
        format_user=StringFormatter(
            slots=["<|im_end|>\n<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n"]
        ),
        format_assistant=StringFormatter(slots=["{{content}}"]),
        format_function=FunctionFormatter(slots=["{{content}}"], tool_format="qwen"),
        format_observation=StringFormatter(
            slots=[
                (
                    "<|im_end|>\n<|im_start|>user\n<tool_response>\n{{content}}\n</tool_response><|im_end|>\n"
                    "<|im_start|>assistant\n"
                )
            ]
        ),
        format_tools=ToolFormatter(tool_format="qwen"),
        stop_words=["<|im_end|>"],
        replace_eos=True,
    )
    monkeypatch.setitem(TEMPLATES, name, TEMPLATES.pop(name))
    cfg = make_cfg(root, training={"template": "qwen3_nothink"}, conversion={"reasoning": "keep"})
    cfg.training["template"] = name  # not in the schema's list: set after validation
    report = inspect_dataset(cfg)
    check = by_name(report)["end_token_trained"]
    assert not check["ok"] and check["count"] == check["total"] > 0
    ok = inspect_dataset(
        make_cfg(root, training={"template": "qwen3_nothink"}, conversion={"reasoning": "keep"})
    )
    assert by_name(ok)["end_token_trained"]["ok"]


def test_row_with_no_trainable_tokens_fails(root):
    """A long prompt and a cutoff that leaves the answer no room: LF keeps the row, with every label masked."""
    rows = load_rows(root / DEMO_ROWS)
    long_prompt = copy.deepcopy(rows[0])
    long_prompt["conversations"] = [
        {"from": "human", "value": "fix the parser please " * 300},
        {"from": "gpt", "value": "Done: the parser now handles empty values."},
    ]
    cfg = make_cfg(root, training={"cutoff_len": 16})
    out = render_sample(cfg, long_prompt)
    assert out["n_tokens"] == 16 and out["n_trained"] == 0 and out["truncated"]
    assert out["cutoff_index"] is not None and out["cutoff_index"] <= 16
    report = inspect_dataset(cfg, [rows[1], long_prompt])
    check = by_name(report)["no_empty_samples"]
    assert not check["ok"] and check["examples"] == [1]


def test_truncation_fails_unless_over_cutoff_keep(root):
    report = inspect_dataset(make_cfg(root, training={"cutoff_len": 512}, conversion={"over_cutoff": "drop"}))
    check = by_name(report)["truncation"]
    assert not check["ok"] and check["count"] > 0 and len(check["examples"]) == min(check["count"], 20)
    kept = by_name(inspect_dataset(make_cfg(root, training={"cutoff_len": 512})))["truncation"]
    assert kept["ok"] and kept["count"] == check["count"]


def test_trained_tool_outputs_and_unrenderable_rows_fail(root):
    rows = load_rows(root / DEMO_ROWS)[:3]
    report = inspect_dataset(make_cfg(root, training={"train_on_prompt": True}), rows)
    assert not by_name(report)["tool_outputs_masked"]["ok"]
    broken = dict(rows[0], conversations=rows[0]["conversations"][:-1])  # ends on the human side: LF drops it
    with pytest.raises(RenderError, match="LF drops this row"):
        render_sample(make_cfg(root), broken)
    report = inspect_dataset(make_cfg(root), [rows[1], broken, "not a row"])
    check = by_name(report)["lf_accepts_rows"]
    assert not check["ok"] and check["examples"] == [1, 2] and report["summary"]["rendered"] == 1


def test_allowed_checks_do_not_fail(root):
    cfg = make_cfg(
        root, training={"enable_thinking": False}, conversion={"allow_failed_checks": ["reasoning_policy"]}
    )
    report = inspect_dataset(cfg)
    assert report["ok"] and not by_name(report)["reasoning_policy"]["ok"] and not failed_checks(report)


def test_sft_inspect_cli(root):
    variant = root / "config/variants/nothink.yaml"
    variant.write_text(
        "runtime_info:\n  input:\n    source: {type: local_lf, lf_path: config/demo/lf_demo.json}\n"
        "    conversion: {data_name: demo_nothink, over_cutoff: keep}\n"
        "    training: {enable_thinking: false, output_dir: nothink}\n"
    )
    sft = [str(BIN / "sft")]
    proc = subprocess.run(
        [*sft, "inspect", "demo_nothink", "--json"],
        cwd=root,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert by_name(report)["reasoning_policy"]["ok"] is False and report["data_name"] == "demo_nothink"
    proc = subprocess.run(
        [*sft, "inspect", "no_such_data"],
        cwd=root,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2 and "no_such_data" in proc.stderr
