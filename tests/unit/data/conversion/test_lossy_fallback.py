"""ATIF-only trials of tool-calling scaffolds: completed from a sibling's proxy log, or left out as lossy."""

from __future__ import annotations

import json
from pathlib import Path

from harbor_job_builder import CC_TOOLS, make_trial, write_job_result, write_json
from sftpipe.data.conversion.convert import ConversionOptions, convert_job

# Harbor's own ATIF of a Claude Code run (no proxy log): no system prompt, no tool definitions.
ATIF = {
    "schema_version": "ATIF-v1.7",
    "session_id": "s",
    "agent": {"name": "claude-code", "version": "2.1.98", "model_name": "claude-sonnet-4-5"},
    "steps": [
        {"step_id": 1, "source": "user", "message": "Fix the failing test in the repository."},
        {
            "step_id": 2,
            "source": "agent",
            "message": "Writing the fix.",
            "tool_calls": [
                {
                    "tool_call_id": "toolu_1",
                    "function_name": "Write",
                    "arguments": {"file_path": "/repo/a.py", "content": "x = 1\n"},
                }
            ],
            "observation": {"results": [{"source_call_id": "toolu_1", "content": "File written."}]},
        },
        {
            "step_id": 3,
            "source": "agent",
            "message": "Running the tests.",
            "tool_calls": [
                {"tool_call_id": "toolu_2", "function_name": "Bash", "arguments": {"command": "pytest -q"}}
            ],
            "observation": {"results": [{"source_call_id": "toolu_2", "content": "1 passed"}]},
        },
        {"step_id": 4, "source": "agent", "message": "Done."},
    ],
}


def _atif_only(job: Path, name: str, version: str = "2.1.98") -> Path:
    trial = make_trial(job, name, name.rsplit("__", 1)[0])
    (trial / "agent" / "litellm-trajectory.jsonl").unlink()
    write_json(trial / "agent" / "trajectory.json", ATIF)
    result = json.loads((trial / "result.json").read_text())
    result["agent_info"]["version"] = version
    write_json(trial / "result.json", result)
    return trial


def _run(job: Path, out: Path, **opts) -> tuple[dict, list[dict]]:
    write_job_result(job, {p.name: 1.0 for p in job.iterdir() if p.is_dir()})
    convert_job(job, out, "d", ConversionOptions(workers=1, **opts))
    report = json.loads((out / "d.report.json").read_text())
    ims = [json.loads(l) for l in (out / "d.im.jsonl").read_text().splitlines()]
    return {t["trial_name"]: t for t in report["trial_details"]}, ims


def test_sibling_proxy_log_supplies_system_prompt_and_tools(tmp_path):
    job = tmp_path / "job"
    make_trial(job, "own__repo-1__proxy", "own__repo-1")  # same agent name and version, with a proxy log
    _atif_only(job, "own__repo-2__atif")
    trials, ims = _run(job, tmp_path / "out")
    assert trials["own__repo-2__atif"]["status"] == "kept"
    assert "context_from_sibling" in trials["own__repo-2__atif"]["reader_issues"]
    (im,) = [im for im in ims if im["meta_info"]["trial_name"] == "own__repo-2__atif"]
    assert im["meta_info"]["unique_info"]["_context_from_trial"] == "own__repo-1__proxy"
    assert im["messages"][0]["role"] == "system" and "You are Claude Code" in im["messages"][0]["content"]
    assert [t["function"]["name"] for t in im["tools"]] == [t["function"]["name"] for t in CC_TOOLS]
    called = {c["function"]["name"] for m in im["messages"] for c in m.get("tool_calls", [])}
    assert called <= {t["function"]["name"] for t in im["tools"]}


def test_without_a_sibling_the_trial_is_lossy_and_left_out_unless_asked(tmp_path):
    job = tmp_path / "job"
    make_trial(job, "own__repo-1__proxy", "own__repo-1")
    _atif_only(job, "own__repo-2__atif", version="9.9.9")  # another version: its prompt is not ours to borrow
    trials, ims = _run(job, tmp_path / "out")
    entry = trials["own__repo-2__atif"]
    assert entry["status"] == "lossy_fallback" and entry["rows_written"] == 0
    assert "no sibling trial" in entry["detail"]
    assert "lossy_fallback" in (tmp_path / "out/d.report.txt").read_text()
    assert {im["meta_info"]["trial_name"] for im in ims} == {"own__repo-1__proxy"}

    trials, ims = _run(job, tmp_path / "keep", keep_lossy_fallback=True)
    assert trials["own__repo-2__atif"]["status"] == "kept_lossy"
    (lossy,) = [im for im in ims if im["meta_info"]["trial_name"] == "own__repo-2__atif"]
    assert lossy["meta_info"]["unique_info"]["_lossy_fallback"] is True


def test_captured_claude_code_trial_completes_an_atif_only_sibling(tmp_path):
    """Real Claude Code 2.1.329 traffic (captured job): one trial loses its proxy log, keeps an ATIF."""
    import shutil

    job = tmp_path / "job"
    shutil.copytree(Path(__file__).resolve().parents[3] / "fixtures" / "harbor_jobs" / "claude-code", job)
    trial = job / "acme__calc-102__cTo3Pz8"
    (trial / "agent" / "litellm-trajectory.jsonl").unlink()
    write_json(
        trial / "agent" / "trajectory.json", {**ATIF, "agent": {**ATIF["agent"], "version": "2.1.329"}}
    )
    convert_job(job, tmp_path / "out", "d", ConversionOptions(workers=1, selection="all"))
    report = json.loads((tmp_path / "out/d.report.json").read_text())
    entry = next(t for t in report["trial_details"] if t["trial_name"] == trial.name)
    assert entry["status"] == "kept" and entry["reader_issues"]["context_from_sibling"] == 1
    ims = [json.loads(l) for l in (tmp_path / "out/d.im.jsonl").read_text().splitlines()]
    (im,) = [im for im in ims if im["meta_info"]["trial_name"] == trial.name]
    donor = im["meta_info"]["unique_info"]["_context_from_trial"]
    (donor_im,) = [
        d
        for d in ims
        if d["meta_info"]["trial_name"] == donor and d["meta_info"]["unique_info"]["_agent_type"] == "main"
    ]
    assert im["messages"][0] == donor_im["messages"][0] and im["messages"][0]["content"]
    assert im["tools"] == donor_im["tools"] and {"Write", "Bash"} <= {
        t["function"]["name"] for t in im["tools"]
    }
