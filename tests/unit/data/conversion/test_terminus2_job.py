"""The assembled terminus-2 Harbor job (tests/fixtures/harbor_jobs/terminus2/, see its README).

Its trajectories must stay byte-identical to the shared ATIF samples, its envelopes must agree with
each other, and converting the whole job must turn every model answer of every trial (each agent step
that is not copied context) into exactly one assistant turn, in step order, with its reasoning.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sftpipe.data.conversion.convert import ConversionOptions, convert_job

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
JOB = FIXTURES / "harbor_jobs" / "terminus2"
SAMPLES = FIXTURES / "reference" / "harbor" / "atif-terminus2"
# trial -> sample stem (the README's table)
SOURCES = {
    "acme__hello-201__tLin5Hx": "hello-world-context-summarization-linear-history",
    "acme__hello-202__tSum3Kq": "hello-world-context-summarization",
    "acme__hello-203__tInv7Jw": "hello-world-invalid-json",
}
_RENDERED = re.compile(r"^Analysis: (?P<analysis>.*?)\nPlan: (?P<plan>.*)$", re.DOTALL)


def _documents(trial: str) -> list[dict[str, Any]]:
    agent = JOB / trial / "agent"
    names = ["trajectory.json"] + sorted(p.name for p in agent.glob("trajectory.cont-*.json"))
    return [json.loads((agent / n).read_text()) for n in names]


def test_trajectories_are_the_samples_unchanged() -> None:
    readme = (JOB / "README.md").read_text()
    assert sorted(p.name for p in JOB.iterdir() if p.is_dir()) == sorted(SOURCES)
    for trial, stem in SOURCES.items():
        samples = sorted(SAMPLES.glob(f"{stem}.trajectory*.json"))
        copies = sorted((JOB / trial / "agent").iterdir())
        assert [p.name for p in copies] == [p.name[len(stem) + 1 :] for p in samples]
        assert all(c.read_bytes() == s.read_bytes() for c, s in zip(copies, samples))
        assert all(s.name in readme for s in samples) and trial in readme


def test_envelopes_agree() -> None:
    (evals,) = json.loads((JOB / "result.json").read_text())["stats"]["evals"].values()
    assert json.loads((JOB / "config.json").read_text())["agents"][0]["name"] == "terminus-2"
    by_reward: dict[str, list[str]] = {}
    for trial in SOURCES:
        config = json.loads((JOB / trial / "config.json").read_text())
        result = json.loads((JOB / trial / "result.json").read_text())
        instance = Path(config["task"]["path"]).name
        assert trial.startswith(instance + "__") and result["task_name"] == instance
        assert config["agent"]["name"] == result["agent_info"]["name"] == "terminus-2"
        reward = float((JOB / trial / "verifier" / "reward.txt").read_text())
        assert result["verifier_result"]["rewards"]["reward"] == reward
        by_reward.setdefault(str(reward), []).append(trial)
    assert evals["reward_stats"]["reward"] == by_reward and evals["n_trials"] == len(SOURCES)


def _expected_answer(step: dict[str, Any]) -> tuple[str, Any]:
    """("verbatim", text) for a stored raw answer, else ("rebuilt", the JSON the converter must write)."""
    rendered = _RENDERED.match(step["message"])
    if not rendered and not step.get("tool_calls"):
        return "verbatim", step["message"]
    calls = step.get("tool_calls") or []
    # Documented rebuild (atif.py): analysis, plan, the bash_command calls, task_complete.
    return "rebuilt", {
        "analysis": rendered["analysis"],
        "plan": rendered["plan"],
        "commands": [c["arguments"] for c in calls if c["function_name"] == "bash_command"],
        "task_complete": any(c["function_name"] == "mark_task_complete" for c in calls),
    }


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> dict[str, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("t2")
    report = convert_job(JOB, out, "t2", ConversionOptions(selection="all", reasoning="keep", workers=1))
    assert report.trials_by_status == {"kept": len(SOURCES)}
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for line in (out / "t2.im.jsonl").read_text().splitlines():
        record = json.loads(line)
        by_trial.setdefault(record["meta_info"]["trial_name"], []).append(record)
    return by_trial


@pytest.mark.parametrize("trial", sorted(SOURCES))
def test_every_model_answer_is_one_assistant_turn_in_order(trial: str, rows) -> None:
    steps = [
        s
        for d in _documents(trial)
        for s in d["steps"]
        if s["source"] == "agent" and not s.get("is_copied_context")
    ]
    records = sorted(rows[trial], key=lambda r: r["meta_info"]["chain_index"])
    assert all(
        r["meta_info"]["unique_info"]["_agent_type"] == "main" and r["meta_info"]["source"] == "atif"
        for r in records
    )
    turns = [m for r in records for m in r["messages"][1:] if m["role"] == "assistant"]
    assert len(turns) == len(steps)
    for step, turn in zip(steps, turns):
        kind, answer = _expected_answer(step)
        assert (turn["content"] if kind == "verbatim" else json.loads(turn["content"])) == answer
        assert turn["reasoning_content"] == step.get("reasoning_content", "")
    # Each answer's observation is the user turn that follows it within its conversation.
    answered = iter(steps)
    for record in records:
        messages = record["messages"][1:]
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            step = next(answered)
            if index + 1 < len(messages):
                assert messages[index + 1]["content"] == "\n".join(
                    r["content"] for r in step["observation"]["results"] if "content" in r
                )
