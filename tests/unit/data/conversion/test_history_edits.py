"""History edits: a chain whose history was edited (not only appended to) trains each assistant turn once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from harbor_job_builder import cc_proxy_lines, make_trial, write_job_result
from sftpipe.data.conversion.convert import ConversionOptions, convert_job
from sftpipe.data.conversion.read_trial import read_trial

CAPTURED = Path(__file__).resolve().parents[3] / "fixtures" / "harbor_jobs"
PRUNED = "[Old tool result content cleared]"  # what OpenCode puts in place of a pruned tool output


def _edit_records(lines: list[str], first: int, edit) -> list[str]:
    """Apply `edit` to the request of every record from index `first` on (the client's edited history)."""
    out = []
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if i >= first:
            edit(rec["request_body"]["messages"])
        out.append(json.dumps(rec))
    return out


def _prune_first_tool_result(messages: list[dict]) -> None:
    for m in messages:
        if m["role"] == "tool":  # OpenAI form
            m["content"] = PRUNED
            return
        if m["role"] == "user" and isinstance(m["content"], list):  # Anthropic form
            for block in m["content"]:
                if block.get("type") == "tool_result":
                    block["content"] = PRUNED
                    return


def _assistant_keys(im: dict) -> list[str]:
    return [
        json.dumps([m["content"], m.get("tool_calls")], sort_keys=True)
        for m in im["messages"]
        if m["role"] == "assistant"
    ]


def _convert(tmp_path: Path, lines: list[str]) -> tuple[list[dict], dict]:
    job = tmp_path / "job"
    make_trial(job, "own__repo-1__a", "own__repo-1", log_lines=lines)
    write_job_result(job, {"own__repo-1__a": 1.0})
    convert_job(job, tmp_path / "out", "d", ConversionOptions(workers=1))
    ims = [json.loads(l) for l in (tmp_path / "out/d.im.jsonl").read_text().splitlines()]
    return ims, json.loads((tmp_path / "out/d.report.json").read_text())


def test_pruned_tool_output_is_one_conversation_counted_as_history_edit(tmp_path):
    lines = _edit_records(cc_proxy_lines(5), 3, _prune_first_tool_result)  # records 4-6 pruned
    ims, report = _convert(tmp_path, lines)
    assert len(ims) == 1, "the pre-edit chain must not become a second sample"
    keys = _assistant_keys(ims[0])
    assert len(keys) == len(set(keys)) == 6  # the longer (edited) chain: 5 tool turns + the final answer
    assert report["trials"]["by_status"] == {"kept": 1}
    assert report["history_edits"] == {"count": 1, "trials": ["own__repo-1__a"]}
    (entry,) = report["trial_details"]
    assert entry["reader_issues"]["history_edit"] == 1 and "line 3" in entry["first_seen"]["history_edit"]
    text = (tmp_path / "out/d.report.txt").read_text()
    assert "history_edit    own__repo-1__a x1" in text


def test_rewritten_assistant_turn_is_a_history_edit_too(tmp_path):
    def rewrite(messages: list[dict]) -> None:
        messages[2]["content"][1]["text"] = "Step 0 (edited by the client)."

    ims, report = _convert(tmp_path, _edit_records(cc_proxy_lines(4), 2, rewrite))
    assert len(ims) == 1 and report["history_edits"]["count"] == 1


def test_compaction_restart_with_a_summary_stays_a_separate_conversation(tmp_path):
    first = cc_proxy_lines(3)
    restart = []
    for line in cc_proxy_lines(2, final_text="Done after compaction.", start_ms=1_800_000_000_000):
        rec = json.loads(line)
        rec["request_body"]["messages"][1]["content"] = "This session continues. Summary: steps 0-2 done."
        restart.append(json.dumps(rec))
    ims, report = _convert(tmp_path, first + restart)
    assert len(ims) == 2 and report["history_edits"]["count"] == 0


def test_captured_opencode_run_with_pruned_tool_output(tmp_path):
    """Real OpenCode 1.18.33 traffic (captured), its later records pruned the way OpenCode prunes."""
    src = CAPTURED / "opencode" / "acme__calc-101__oRe5Kt3"
    trial = tmp_path / src.name
    shutil.copytree(src, trial)
    log = trial / "agent" / "litellm-trajectory.jsonl"
    before, _ = read_trial(trial, "open-code")
    lines = log.read_text().splitlines()
    last_main = max(i for i, l in enumerate(lines) if json.loads(l)["request_body"].get("tools"))
    log.write_text("\n".join(_edit_records(lines, last_main, _prune_first_tool_result)) + "\n")
    after, issues = read_trial(trial, "open-code")
    codes = {i.code: i.count for i in issues}
    assert codes.get("history_edit") == 1
    assert len(after) == len(before)  # the pruned chain replaces the original one, nothing is added
    main = [c for c in after if c.agent_type == "main"]
    assert len(main) == 1 and any(m.content == PRUNED for m in main[0].messages)
