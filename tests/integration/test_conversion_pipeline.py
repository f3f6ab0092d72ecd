"""Every captured Harbor job, one per scaffold, through the real convert -> register -> tokenize rules.

One Snakemake invocation builds four variants (one per scaffold, `--until tokenize`: nothing trains).
Per scaffold: LLaMA-Factory's own loader (the tokenize report) read every row the converter wrote and
dropped and truncated none, the labels it saved hold every assistant turn of every row in order, and
the conversion report names every trial directory of the job exactly once.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.integration.pipeline import DEMO_MODEL, demo_project, snakemake

pytestmark = pytest.mark.slow

JOBS = Path(__file__).resolve().parents[1] / "fixtures" / "harbor_jobs"
# variant -> (fixture job dir, Harbor agent name of its trials)
VARIANTS = {
    "cc": ("claude-code", "claude-code"),
    "oc": ("opencode", "opencode"),
    "oh": ("openhands-sdk", "openhands-sdk"),
    "t2": ("terminus2", "terminus-2"),
}


def _variant_yaml(name: str, job: str) -> str:
    # Overrides only; every other key comes from the shipped demo profile (tiny model). Nothing trains
    # (--until tokenize), so a cutoff above the tiny model's 8192 positions only affects tokenization.
    return f"""runtime_info:
  input:
    source:
      type: harbor_job
      scaffold: auto
      job_dir: data/jobs/{job}
    conversion:
      data_name: conv_{name}
      selection: all
      keep_subagents: true
      over_cutoff: keep
      reasoning: auto
      workers: 1
    training:
      template: qwen3
      cutoff_len: 32768   # the longest captured row has ~28k tiny-tokenizer tokens: nothing is cut
      output_dir: conv-{name}-run
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir) -> Path:
    root = demo_project(tmp_path_factory.mktemp("conv") / "proj", tiny_model_dir)
    for name, (job, _) in VARIANTS.items():
        shutil.copytree(JOBS / job, root / "data" / "jobs" / job)
        (root / "config" / "variants" / f"{name}.yaml").write_text(_variant_yaml(name, job))
    snakemake(root, "--config", f"variants={','.join(VARIANTS)}", "--until", "tokenize")
    return root


def _tokenize_report(root: Path, data_name: str) -> dict:
    (report,) = (root / "artifacts/data/tokenized" / data_name).glob("*/sft_tokenize_report.json")
    return json.loads(report.read_text())


def test_nothing_trained(project: Path) -> None:
    assert not list((project / "artifacts").glob("model/conv-*"))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_lf_loader_reads_every_converted_row(project: Path, name: str) -> None:
    data_name = f"conv_{name}"
    rows = json.loads((project / "artifacts/data/lf_data" / f"{data_name}.json").read_text())
    im_lines = (project / "artifacts/data" / f"{data_name}.im.jsonl").read_text().splitlines()
    conversion = json.loads((project / "artifacts/data" / f"{data_name}.report.json").read_text())
    assert rows and len(rows) == len(im_lines) == conversion["rows"]["written"]
    tokenized = _tokenize_report(project, data_name)
    assert tokenized["template"] == "qwen3"
    assert tokenized["rows_in"] == len(rows)
    assert tokenized["rows_dropped"] == 0, tokenized["dropped_row_indices"]
    assert tokenized["rows_out"] == len(rows)
    assert tokenized["rows_without_trainable_tokens"] == 0
    assert tokenized["rows_over_cutoff"] == 0 and tokenized["tokens_truncated"] == 0
    registered = json.loads((project / "artifacts/data/lf_data/dataset_info.json").read_text())
    assert registered[data_name]["file_name"] == f"{data_name}.json"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_assistant_answer_is_trained_in_order(project: Path, name: str) -> None:
    """Decode what LF saved for training: each row's assistant texts are in its labels, in order."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    (saved,) = (project / "artifacts/data/tokenized" / f"conv_{name}").glob("*/dataset_dict.json")
    tokenizer = AutoTokenizer.from_pretrained(project / DEMO_MODEL)
    trained = [
        tokenizer.decode([t for t in row["labels"] if t != -100])
        for split in load_from_disk(str(saved.parent)).values()
        for row in split
    ]
    im = [
        json.loads(line)
        for line in (project / "artifacts/data" / f"conv_{name}.im.jsonl").read_text().splitlines()
    ]
    assert len(trained) == len(im)
    unmatched = list(trained)  # the train/eval split shuffles rows: match each IM row to one of them
    for record in im:
        # Per assistant turn: its text, then each call as LF's qwen3 template renders it (JSON with "name").
        answers = [
            piece
            for m in record["messages"]
            if m["role"] == "assistant"
            for piece in [m["content"], *map(_rendered_name, m.get("tool_calls") or [])]
            if piece
        ]
        match = next((t for t in unmatched if _in_order(answers, t)), None)
        assert match is not None, f"{record['meta_info']['trial_name']}: assistant texts not all trained"
        unmatched.remove(match)


def _rendered_name(call: dict) -> str:
    return f'"name": "{call["function"]["name"]}"'


def _in_order(texts: list[str], haystack: str) -> bool:
    cursor = 0
    for text in texts:
        cursor = haystack.find(text, cursor)
        if cursor < 0:
            return False
        cursor += len(text)
    return True


@pytest.mark.parametrize("name", list(VARIANTS))
def test_report_accounts_for_every_trial(project: Path, name: str) -> None:
    job, agent = VARIANTS[name]
    job_dir = project / "data" / "jobs" / job
    on_disk = sorted(p.name for p in job_dir.iterdir() if p.is_dir())
    assert len(on_disk) == 3
    configs = [json.loads((job_dir / t / "config.json").read_text()) for t in on_disk]
    assert all(c["agent"]["name"] == agent for c in configs)
    report = json.loads((project / "artifacts/data" / f"conv_{name}.report.json").read_text())
    details = report["trial_details"]
    assert sorted(t["trial_name"] for t in details) == on_disk  # each exactly once
    assert report["trials"]["total"] == len(on_disk)
    # selection: all + keep_if_rewarded: every captured trial (timeouts included) yields rows
    assert {t["status"] for t in details} == {"kept"}
    assert sum(t["rows_written"] for t in details) == report["rows"]["written"]
    im = [
        json.loads(line)
        for line in (project / "artifacts/data" / f"conv_{name}.im.jsonl").read_text().splitlines()
    ]
    per_trial = {t["trial_name"]: t["rows_written"] for t in details}
    assert {t: sum(r["meta_info"]["trial_name"] == t for r in im) for t in on_disk} == per_trial
    # One main row per trial; terminus-2 context summarisation splits a run into several main rows.
    main_rows = [
        r["meta_info"]["trial_name"] for r in im if r["meta_info"]["unique_info"]["_agent_type"] == "main"
    ]
    mains = {t: main_rows.count(t) for t in on_disk}
    assert all(n == 1 for n in mains.values()) if name != "t2" else all(n >= 1 for n in mains.values())


# --- damaged trials through the real convert rule: the config key, and every output the rule declares ---
DAMAGED_VARIANTS = {"dmg_skip": {}, "dmg_salvage": {"on_damaged_trial": "salvage"}}


def _damaged_job(job: Path) -> None:
    """One valid trial and one whose last proxy record has an unknown role (issue 11)."""
    from tests.unit.data.conversion.harbor_job_builder import cc_proxy_lines, make_trial, write_job_result

    make_trial(job, "good__repo-1__a", "good__repo-1")
    lines = cc_proxy_lines(3)
    last = json.loads(lines[-1])
    last["request_body"]["messages"][3]["role"] = "robot"
    make_trial(job, "bad__repo-2__b", "bad__repo-2", log_lines=[*lines[:-1], json.dumps(last)])
    write_job_result(job, {"good__repo-1__a": 1.0, "bad__repo-2__b": 1.0})


@pytest.fixture(scope="module")
def damaged_project(tmp_path_factory, tiny_model_dir) -> Path:
    root = demo_project(tmp_path_factory.mktemp("dmg") / "proj", tiny_model_dir)
    _damaged_job(root / "data" / "jobs" / "damaged")
    for name, extra in DAMAGED_VARIANTS.items():
        keys = "".join(f"\n      {k}: {v}" for k, v in extra.items())
        (root / "config" / "variants" / f"{name}.yaml").write_text(f"""runtime_info:
  input:
    source:
      type: harbor_job
      job_dir: data/jobs/damaged
    conversion:
      data_name: {name}{keys}
    training:
      output_dir: {name}-run
""")
    snakemake(root, "--config", f"variants={','.join(DAMAGED_VARIANTS)}", "--until", "convert")
    return root


@pytest.mark.parametrize("name", list(DAMAGED_VARIANTS))
def test_convert_rule_applies_on_damaged_trial_and_writes_its_declared_outputs(
    damaged_project: Path, name: str
) -> None:
    data = damaged_project / "artifacts/data"
    report = json.loads((data / f"{name}.report.json").read_text())
    assert report["options"]["on_damaged_trial"] == ("salvage" if name == "dmg_salvage" else "skip")
    # The rule passed every path; the converter wrote exactly those.
    assert report["outputs"] == {
        "lf": f"artifacts/data/lf_data/{name}.json",
        "im": f"artifacts/data/{name}.im.jsonl",
        "stats": f"artifacts/data/{name}.stats.json",
        "report": f"artifacts/data/{name}.report.json",
        "report_txt": f"artifacts/data/{name}.report.txt",
    }
    statuses = {t["trial_name"]: t["status"] for t in report["trial_details"]}
    expected = "salvaged" if name == "dmg_salvage" else "damaged"
    assert statuses == {"good__repo-1__a": "kept", "bad__repo-2__b": expected}
    bad = next(t for t in report["trial_details"] if t["trial_name"] == "bad__repo-2__b")
    assert bad["reasons"] == ["unknown_role"] and "line 4" in bad["detail"]
    assert f"{expected:<15} bad__repo-2__b [unknown_role]" in (data / f"{name}.report.txt").read_text()
    trials = {
        json.loads(l)["meta_info"]["trial_name"] for l in (data / f"{name}.im.jsonl").read_text().splitlines()
    }
    assert trials == ({"good__repo-1__a", "bad__repo-2__b"} if name == "dmg_salvage" else {"good__repo-1__a"})
