"""Malformed Harbor jobs: no crash, every trial accounted for with an explicit status, good trials still
converted, nothing written outside out_dir. Each case is converted twice: with the default
`on_damaged_trial: skip` (damaged trials yield no rows) and with `salvage` (never `kept`)."""

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from harbor_job_builder import cc_proxy_lines, make_trial, write_job_result, write_json
from sftpipe.data.conversion.convert import ConversionOptions, convert_job
from sftpipe.data.conversion.lf_format import validate_lf_row

GOOD = ("good__repo-1__a", "good__repo-2__b")
EXCLUDED = Path(__file__).resolve().parents[4] / "artifacts" / "data" / "excluded_repos.txt"


def _log(trial: Path, text: str | bytes) -> None:
    path = trial / "agent" / "litellm-trajectory.jsonl"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))


def _edit_json(path: Path, fn: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def _swap_first_line(trial: Path, fn: Callable[[dict], None], keep_rest: bool = False) -> None:
    lines = cc_proxy_lines(2)
    rec = json.loads(lines[-1])
    fn(rec)
    _log(trial, json.dumps(rec) + "\n" + ("".join(l + "\n" for l in lines[:-1]) if keep_rest else ""))


def _break_last(trial: Path, fn: Callable[[dict], None], truncate: bool = False) -> None:
    """Replace the last record of a 3-turn log by a malformed copy (the issue's "last record" damage)."""
    lines = cc_proxy_lines(3)
    rec = json.loads(lines[-1])
    fn(rec)
    last = json.dumps(rec)
    _log(trial, "".join(l + "\n" for l in lines[:-1]) + (last[: len(last) // 2] if truncate else last + "\n"))


def _bad_tool_call(**function) -> Callable[[dict], None]:
    def fn(rec: dict) -> None:
        rec["response_body"]["choices"][0]["message"] = {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "t9", "type": "function", "function": function}],
        }

    return fn


def _orphan_result(rec: dict) -> None:
    rec["request_body"]["messages"][-1]["content"].append(
        {"type": "tool_result", "tool_use_id": "toolu_nowhere", "content": "stray"}
    )


def _t(job: Path, name: str, **kw) -> Path:
    iid = name.rsplit("__", 1)[0] if "__" in name else name
    return make_trial(job, name, iid, **kw)


# case name -> (builder(job, name), status with on_damaged_trial=skip, status with salvage). Every status
# is explicit: "damaged" (no rows) and "salvaged" (rows, flagged) carry reason codes; no damaged trial
# is ever "kept".
CASES: dict[str, tuple[Callable[[Path, str], object], str, str]] = {
    # --- job-dir level ---
    "no_config": (lambda j, n: (j / n).mkdir(), "missing_config", "missing_config"),
    "config_bad_json": (
        lambda j, n: (_t(j, n) / "config.json").write_text("{not json"),
        "damaged",
        "damaged",
    ),
    "config_non_utf8": (
        lambda j, n: (_t(j, n) / "config.json").write_bytes(b'{"task": "\xff\xfe"}'),
        "damaged",
        "damaged",
    ),
    "config_is_list": (lambda j, n: (_t(j, n) / "config.json").write_text("[1, 2]"), "damaged", "damaged"),
    "config_empty_file": (lambda j, n: (_t(j, n) / "config.json").write_text(""), "damaged", "damaged"),
    "no_result_running": (lambda j, n: _t(j, n, with_result=False), "incomplete", "incomplete"),
    "result_truncated": (
        lambda j, n: (_t(j, n) / "result.json").write_text('{"task_name": "x", "verif'),
        "damaged",
        "damaged",
    ),
    "result_is_string": (lambda j, n: (_t(j, n) / "result.json").write_text('"done"'), "damaged", "damaged"),
    "verifier_wrong_type": (
        lambda j, n: _edit_json(_t(j, n) / "result.json", lambda d: d.update(verifier_result="yes")),
        "no_reward",
        "no_reward",
    ),
    "rewards_is_list": (
        lambda j, n: _edit_json(
            _t(j, n) / "result.json", lambda d: d.update(verifier_result={"rewards": [1]})
        ),
        "no_reward",
        "no_reward",
    ),
    "reward_is_text": (
        lambda j, n: _edit_json(
            _t(j, n) / "result.json", lambda d: d.update(verifier_result={"rewards": {"reward": "abc"}})
        ),
        "no_reward",
        "no_reward",
    ),
    "reward_nan": (
        lambda j, n: (_t(j, n) / "result.json").write_text(
            '{"task_name": "x__y-1", "verifier_result": {"rewards": {"reward": NaN}}}'
        ),
        "no_reward",
        "no_reward",
    ),
    "no_task_path_no_name": (
        lambda j, n: (
            write_json(_t(j, n) / "config.json", {"agent": {"name": "claude-code"}}),
            _edit_json(j / n / "result.json", lambda d: d.pop("task_name")),
        ),
        "missing_instance_id",
        "missing_instance_id",
    ),
    "task_path_wrong_type": (
        lambda j, n: (
            write_json(_t(j, n) / "config.json", {"task": {"path": 7}}),
            _edit_json(j / n / "result.json", lambda d: d.update(task_name=["x"])),
        ),
        "missing_instance_id",
        "missing_instance_id",
    ),
    "task_name_with_separator": (
        lambda j, n: (
            write_json(_t(j, n) / "config.json", {"task": {}}),
            _edit_json(j / n / "result.json", lambda d: d.update(task_name="../../etc/passwd")),
        ),
        "invalid_instance_id",
        "invalid_instance_id",
    ),
    "task_path_with_spaces": (
        lambda j, n: write_json(_t(j, n) / "config.json", {"task": {"path": "/tasks/bad name;rm"}}),
        "invalid_instance_id",
        "invalid_instance_id",
    ),
    "dir_name_backslash": (lambda j, n: _t(j, "back\\slash__x"), "invalid_name", "invalid_name"),
    "dir_name_non_utf8": (
        lambda j, n: os.mkdir(os.fsencode(j) + b"/bad\xff__x"),
        "invalid_name",
        "invalid_name",
    ),
    "symlink_loop": (lambda j, n: os.symlink(n, j / n), "symlink_loop", "symlink_loop"),
    "broken_symlink": (
        lambda j, n: os.symlink(j / "does-not-exist", j / n),
        "broken_symlink",
        "broken_symlink",
    ),
    "excluded_repo": (lambda j, n: _t(j, "django__django-11099__q"), "excluded_repo", "excluded_repo"),
    "exception_no_reward": (
        lambda j, n: _t(j, n, reward=None, exception="AgentTimeoutError"),
        "exception",
        "exception",
    ),
    "unresolved": (lambda j, n: _t(j, n, reward=0.0), "not_selected", "not_selected"),
    "unknown_agent": (
        lambda j, n: _edit_json(_t(j, n) / "config.json", lambda d: d.update(agent={"name": "mystery-bot"})),
        "unknown_scaffold",
        "unknown_scaffold",
    ),
    "agent_name_wrong_type": (
        lambda j, n: (
            _edit_json(_t(j, n) / "config.json", lambda d: d.update(agent={"name": 5})),
            _edit_json(j / n / "result.json", lambda d: d.update(agent_info=None)),
        ),
        "unknown_scaffold",
        "unknown_scaffold",
    ),
    # --- trajectory level (readers) ---
    "no_agent_dir": (
        lambda j, n: [p.unlink() for p in (_t(j, n) / "agent").iterdir()],
        "no_trajectory",
        "no_trajectory",
    ),
    "empty_log": (lambda j, n: _log(_t(j, n), ""), "empty_log", "empty_log"),
    "only_blank_lines": (lambda j, n: _log(_t(j, n), "\n\n   \n"), "empty_log", "empty_log"),
    "truncated_json_lines": (
        lambda j, n: _log(_t(j, n), '{"request_body": {"messa\n{"success": tr'),
        "damaged",
        "damaged",
    ),
    "non_utf8_log": (lambda j, n: _log(_t(j, n), b"\xff\xfe\x00garbage\n\x80\x81\n"), "damaged", "damaged"),
    "line_50mb": (
        lambda j, n: _log(_t(j, n), '{"pad": "' + "x" * (50 * 1024 * 1024) + '"\n'),
        "damaged",
        "damaged",
    ),
    "all_calls_failed": (
        lambda j, n: _log(
            _t(j, n),
            "".join(
                json.dumps(
                    {
                        "success": False,
                        "request_body": json.loads(l)["request_body"],
                        "response_body": None,
                        "failure": {"error": "overloaded"},
                    }
                )
                + "\n"
                for l in cc_proxy_lines(2)
            ),
        ),
        "all_calls_failed",
        "all_calls_failed",
    ),
    "lines_are_arrays": (lambda j, n: _log(_t(j, n), "[1,2]\n[3]\n"), "damaged", "damaged"),
    "request_body_string": (
        lambda j, n: _swap_first_line(_t(j, n), lambda r: r.update(request_body="oops")),
        "damaged",
        "damaged",
    ),
    "messages_is_dict": (
        lambda j, n: _swap_first_line(_t(j, n), lambda r: r["request_body"].update(messages={})),
        "damaged",
        "damaged",
    ),
    "response_choices_wrong": (
        lambda j, n: _swap_first_line(
            _t(j, n), lambda r: r.update(response_body={"choices": "x"}, request_body={"messages": []})
        ),
        "damaged",
        "damaged",
    ),
    # Damaged but still usable: the reader repairs/skips the bad parts and counts them.
    "garbage_line_among_good": (
        lambda j, n: _log(_t(j, n), "{broken\n" + "".join(l + "\n" for l in cc_proxy_lines(3))),
        "damaged",
        "salvaged",
    ),
    "unknown_block_type": (
        lambda j, n: _log(
            _t(j, n),
            "".join(
                l.replace('"type": "text", "text": "Step', '"type": "hologram", "text": "Step') + "\n"
                for l in cc_proxy_lines(3)
            ),
        ),
        "damaged",
        "salvaged",
    ),
    "tool_result_without_call": (
        lambda j, n: _log(
            _t(j, n),
            "".join(
                l.replace('"tool_use_id": "toolu_00001"', '"tool_use_id": "toolu_nowhere"') + "\n"
                for l in cc_proxy_lines(3)
            ),
        ),
        "damaged",
        "salvaged",
    ),
    "call_without_result": (
        lambda j, n: _log(
            _t(j, n),
            "".join(
                l.replace(
                    '"type": "tool_result", "tool_use_id": "toolu_00000", "content": "     1\\tdef f_0():',
                    '"type": "text", "text": "nothing',
                )
                + "\n"
                for l in cc_proxy_lines(3)
            ),
        ),
        "damaged",
        "salvaged",
    ),
    "arguments_not_json": (
        lambda j, n: _swap_first_line(
            _t(j, n),
            lambda r: r["response_body"]["choices"][0].update(
                message={
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "t9",
                            "type": "function",
                            "function": {"name": "Bash", "arguments": "{{not json"},
                        }
                    ],
                }
            ),
            keep_rest=True,
        ),
        "damaged",
        "salvaged",
    ),
    # --- the last record is malformed (issue 11): earlier records hold a shorter valid conversation ---
    "last_truncated": (
        lambda j, n: _break_last(_t(j, n), lambda r: None, truncate=True),
        "damaged",
        "salvaged",
    ),
    "last_request_body_string": (
        lambda j, n: _break_last(_t(j, n), lambda r: r.update(request_body="x")),
        "damaged",
        "salvaged",
    ),
    "last_messages_not_list": (
        lambda j, n: _break_last(_t(j, n), lambda r: r["request_body"].update(messages={})),
        "damaged",
        "salvaged",
    ),
    "last_message_without_role": (
        lambda j, n: _break_last(_t(j, n), lambda r: r["request_body"]["messages"][3].pop("role")),
        "damaged",
        "salvaged",
    ),
    "last_numeric_content": (
        lambda j, n: _break_last(_t(j, n), lambda r: r["request_body"]["messages"][3].update(content=42)),
        "damaged",
        "salvaged",
    ),
    "last_arguments_not_json": (
        lambda j, n: _break_last(_t(j, n), _bad_tool_call(name="Bash", arguments="{{x")),
        "damaged",
        "salvaged",
    ),
    "last_tool_call_without_name": (
        lambda j, n: _break_last(_t(j, n), _bad_tool_call(arguments="{}")),
        "damaged",
        "salvaged",
    ),
    "last_orphan_tool_result": (lambda j, n: _break_last(_t(j, n), _orphan_result), "damaged", "salvaged"),
    "last_empty_choices": (
        lambda j, n: _break_last(_t(j, n), lambda r: r["response_body"].update(choices=[])),
        "damaged",
        "salvaged",
    ),
    "last_null_message": (
        lambda j, n: _break_last(_t(j, n), lambda r: r["response_body"]["choices"][0].update(message=None)),
        "damaged",
        "salvaged",
    ),
    "last_unknown_role": (
        lambda j, n: _break_last(_t(j, n), lambda r: r["request_body"]["messages"][3].update(role="robot")),
        "damaged",
        "salvaged",
    ),
    "last_tools_not_list": (
        lambda j, n: _break_last(_t(j, n), lambda r: r["request_body"].update(tools="Bash")),
        "damaged",
        "salvaged",
    ),
    "no_result_but_job_reward": (lambda j, n: _t(j, n, with_result=False), "incomplete", "incomplete"),
}


@pytest.fixture(scope="module", params=["skip", "salvage"])
def converted(request, tmp_path_factory):
    policy = request.param
    root = tmp_path_factory.mktemp(f"bad-{policy}")
    job = root / "job"
    job.mkdir()
    rewards = {}
    for name in GOOD:
        _t(job, name)
        rewards[name] = 1.0
    names = {}
    for i, (case, (build, _, _)) in enumerate(CASES.items()):
        name = f"case{i:02d}__repo-{i}__{case[:20]}"
        build(job, name)
        names[case] = name
    # The job-level stats know the good ones, and claim a reward for one trial without result.json.
    rewards[names["no_result_but_job_reward"]] = 1.0
    write_job_result(job, rewards)
    (job / "job.log").write_text("log")  # job-level files are not trials
    before = {p for p in root.rglob("*")}
    report = convert_job(
        job,
        root / "out",
        "bad",
        ConversionOptions(
            workers=2 if policy == "skip" else 1, exclude_repos_file=str(EXCLUDED), on_damaged_trial=policy
        ),
    )
    after = {p for p in root.rglob("*")}
    return root, report, names, before, after, policy


def test_there_are_at_least_30_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", list(CASES))
def test_each_bad_trial_has_its_explicit_status(converted, case):
    _, report, names, _, _, policy = converted
    expected = CASES[case][1 if policy == "skip" else 2]
    by_name = {t.trial_name: t for t in report.trials}
    special = {
        "dir_name_backslash": "back\\slash__x",
        "excluded_repo": "django__django-11099__q",
        "dir_name_non_utf8": "bad\\xff__x",
    }
    entry = by_name.get(special.get(case, names[case]))
    assert entry is not None, (case, sorted(by_name))
    assert entry.status == expected, (case, entry)
    if entry.status in ("damaged", "salvaged"):
        # Reason codes and the first offending line or file are named.
        assert entry.reasons and entry.detail, (case, entry)
        assert ("line " in entry.detail) or (".json" in entry.detail), (case, entry.detail)
    assert (entry.rows_written > 0) == (entry.status == "salvaged"), (case, entry)


def test_damaged_trials_are_listed_in_the_text_report_and_salvaged_rows_are_flagged(converted):
    root, report, names, _, _, policy = converted
    text = (root / "out/bad.report.txt").read_text()
    status = "damaged" if policy == "skip" else "salvaged"
    assert f"{status:<15} {names['last_unknown_role']} [" in text
    ims = [json.loads(l) for l in (root / "out/bad.im.jsonl").read_text().splitlines()]
    flagged = {im["meta_info"]["trial_name"] for im in ims if "_damaged" in im["meta_info"]["unique_info"]}
    salvaged = {t.trial_name for t in report.trials if t.status == "salvaged"}
    assert flagged == salvaged and (policy == "skip") == (not salvaged)
    incomplete = next(t for t in report.trials if t.trial_name == names["no_result_but_job_reward"])
    assert incomplete.reward_source == "job_result" and "claims reward" in incomplete.detail


def test_good_trials_still_convert_and_outputs_are_valid(converted):
    root, report, _, _before, _after, _ = converted
    by_name = {t.trial_name: t for t in report.trials}
    assert all(by_name[g].status == "kept" for g in GOOD)
    assert {t.trial_name for t in report.trials if t.status == "kept"} == set(GOOD)
    rows = json.loads((root / "out/lf_data/bad.json").read_text())
    assert len(rows) == report.rows_written and all(validate_lf_row(r) == [] for r in rows)
    d = json.loads((root / "out/bad.report.json").read_text())
    assert d["trials"]["total"] == len(report.trials) == len(CASES) + len(GOOD)
    assert d["trials"]["kept"] + d["trials"]["skipped"] == d["trials"]["total"]
    assert sum(d["trials"]["by_status"].values()) == d["trials"]["total"]
    assert d["reader_issues"], "reader issues must be aggregated in the report"


def test_no_trial_trains_an_assistant_turn_twice(converted):
    root, _, _, _, _, _ = converted
    ims = [json.loads(l) for l in (root / "out/bad.im.jsonl").read_text().splitlines()]
    seen: dict[str, set[str]] = {}
    for im in ims:
        turns = seen.setdefault(im["meta_info"]["trial_name"], set())
        for m in im["messages"]:
            if m["role"] == "assistant":
                key = json.dumps([m["content"], m.get("tool_calls")], sort_keys=True)
                assert key not in turns, im["meta_info"]["trial_name"]
                turns.add(key)


def test_nothing_written_outside_out_dir(converted):
    root, _, _, before, after, _ = converted
    new = after - before
    assert new and all((root / "out") in p.parents or p == root / "out" for p in new)
