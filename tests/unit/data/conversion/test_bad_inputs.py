"""Malformed Harbor jobs: no crash, every trial accounted for with a reason, good trials still converted,
nothing written outside out_dir."""
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


def _t(job: Path, name: str, **kw) -> Path:
    iid = name.rsplit("__", 1)[0] if "__" in name else name
    return make_trial(job, name, iid, **kw)


# case name -> (builder(job, name), expected status: exact string, or None for "any non-kept reason",
# "kept" when the trial must still yield rows despite the damage, or "counted" when either outcome is
# fine as long as the damage shows up as a reader issue or a skip reason)
CASES: dict[str, tuple[Callable[[Path, str], object], str | None]] = {
    # --- job-dir level ---
    "no_config": (lambda j, n: (j / n).mkdir(), "missing_config"),
    "config_bad_json": (lambda j, n: (_t(j, n) / "config.json").write_text("{not json"), "invalid_config"),
    "config_non_utf8": (lambda j, n: (_t(j, n) / "config.json").write_bytes(b'{"task": "\xff\xfe"}'), "invalid_config"),
    "config_is_list": (lambda j, n: (_t(j, n) / "config.json").write_text("[1, 2]"), "invalid_config"),
    "config_empty_file": (lambda j, n: (_t(j, n) / "config.json").write_text(""), "invalid_config"),
    "no_result_running": (lambda j, n: _t(j, n, with_result=False), "incomplete"),
    "result_truncated": (lambda j, n: (_t(j, n) / "result.json").write_text('{"task_name": "x", "verif'),
                         "invalid_result"),
    "result_is_string": (lambda j, n: (_t(j, n) / "result.json").write_text('"done"'), "invalid_result"),
    "verifier_wrong_type": (lambda j, n: _edit_json(_t(j, n) / "result.json",
                                                    lambda d: d.update(verifier_result="yes")), "no_reward"),
    "rewards_is_list": (lambda j, n: _edit_json(_t(j, n) / "result.json",
                                                lambda d: d.update(verifier_result={"rewards": [1]})), "no_reward"),
    "reward_is_text": (lambda j, n: _edit_json(_t(j, n) / "result.json",
                                               lambda d: d.update(verifier_result={"rewards": {"reward": "abc"}})),
                       "no_reward"),
    "reward_nan": (lambda j, n: (_t(j, n) / "result.json").write_text(
        '{"task_name": "x__y-1", "verifier_result": {"rewards": {"reward": NaN}}}'), "no_reward"),
    "no_task_path_no_name": (lambda j, n: (write_json(_t(j, n) / "config.json", {"agent": {"name": "claude-code"}}),
                                           _edit_json(j / n / "result.json", lambda d: d.pop("task_name"))),
                             "missing_instance_id"),
    "task_path_wrong_type": (lambda j, n: (write_json(_t(j, n) / "config.json", {"task": {"path": 7}}),
                                           _edit_json(j / n / "result.json", lambda d: d.update(task_name=["x"]))),
                             "missing_instance_id"),
    "task_name_with_separator": (lambda j, n: (write_json(_t(j, n) / "config.json", {"task": {}}),
                                               _edit_json(j / n / "result.json",
                                                          lambda d: d.update(task_name="../../etc/passwd"))),
                                 "invalid_instance_id"),
    "task_path_with_spaces": (lambda j, n: write_json(_t(j, n) / "config.json",
                                                      {"task": {"path": "/tasks/bad name;rm"}}), "invalid_instance_id"),
    "dir_name_backslash": (lambda j, n: _t(j, "back\\slash__x"), "invalid_name"),
    "dir_name_non_utf8": (lambda j, n: os.mkdir(os.fsencode(j) + b"/bad\xff__x"), "invalid_name"),
    "symlink_loop": (lambda j, n: os.symlink(n, j / n), "symlink_loop"),
    "broken_symlink": (lambda j, n: os.symlink(j / "does-not-exist", j / n), "broken_symlink"),
    "excluded_repo": (lambda j, n: _t(j, "django__django-11099__q"), "excluded_repo"),
    "exception_no_reward": (lambda j, n: _t(j, n, reward=None, exception="AgentTimeoutError"), "exception"),
    "unresolved": (lambda j, n: _t(j, n, reward=0.0), "not_selected"),
    "unknown_agent": (lambda j, n: _edit_json(_t(j, n) / "config.json",
                                              lambda d: d.update(agent={"name": "mystery-bot"})), "unknown_scaffold"),
    "agent_name_wrong_type": (lambda j, n: (_edit_json(_t(j, n) / "config.json", lambda d: d.update(agent={"name": 5})),
                                            _edit_json(j / n / "result.json", lambda d: d.update(agent_info=None))),
                              "unknown_scaffold"),
    # --- trajectory level (readers) ---
    "no_agent_dir": (lambda j, n: [p.unlink() for p in (_t(j, n) / "agent").iterdir()], "no_trajectory"),
    "empty_log": (lambda j, n: _log(_t(j, n), ""), None),
    "only_blank_lines": (lambda j, n: _log(_t(j, n), "\n\n   \n"), None),
    "truncated_json_lines": (lambda j, n: _log(_t(j, n), '{"request_body": {"messa\n{"success": tr'), None),
    "non_utf8_log": (lambda j, n: _log(_t(j, n), b"\xff\xfe\x00garbage\n\x80\x81\n"), None),
    "line_50mb": (lambda j, n: _log(_t(j, n), '{"pad": "' + "x" * (50 * 1024 * 1024) + '"\n'), None),
    "all_calls_failed": (lambda j, n: _log(_t(j, n), "".join(
        json.dumps({"success": False, "request_body": json.loads(l)["request_body"], "response_body": None,
                    "failure": {"error": "overloaded"}}) + "\n" for l in cc_proxy_lines(2))), None),
    "lines_are_arrays": (lambda j, n: _log(_t(j, n), "[1,2]\n[3]\n"), None),
    "request_body_string": (lambda j, n: _swap_first_line(_t(j, n), lambda r: r.update(request_body="oops")), None),
    "messages_is_dict": (lambda j, n: _swap_first_line(_t(j, n), lambda r: r["request_body"].update(messages={})),
                         None),
    "response_choices_wrong": (lambda j, n: _swap_first_line(
        _t(j, n), lambda r: r.update(response_body={"choices": "x"}, request_body={"messages": []})), None),
    # Damaged but still usable: the reader repairs/skips the bad parts and counts them.
    "garbage_line_among_good": (lambda j, n: _log(_t(j, n), "{broken\n" + "".join(l + "\n" for l in cc_proxy_lines(3))),
                                "kept"),
    "unknown_block_type": (lambda j, n: _log(_t(j, n), "".join(
        l.replace('"type": "text", "text": "Step', '"type": "hologram", "text": "Step') + "\n"
        for l in cc_proxy_lines(3))), "kept"),
    "tool_result_without_call": (lambda j, n: _log(_t(j, n), "".join(
        l.replace('"tool_use_id": "toolu_00001"', '"tool_use_id": "toolu_nowhere"') + "\n"
        for l in cc_proxy_lines(3))), "kept"),
    "call_without_result": (lambda j, n: _log(_t(j, n), "".join(
        l.replace('"type": "tool_result", "tool_use_id": "toolu_00000", "content": "     1\\tdef f_0():',
                  '"type": "text", "text": "nothing') + "\n" for l in cc_proxy_lines(3))), "kept"),
    "arguments_not_json": (lambda j, n: _swap_first_line(_t(j, n), lambda r: r["response_body"]["choices"][0].update(
        message={"role": "assistant", "content": "", "tool_calls": [
            {"id": "t9", "type": "function", "function": {"name": "Bash", "arguments": "{{not json"}}]}),
        keep_rest=True), "counted"),
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    job = root / "job"
    job.mkdir()
    rewards = {}
    for name in GOOD:
        _t(job, name)
        rewards[name] = 1.0
    names = {}
    for i, (case, (build, _)) in enumerate(CASES.items()):
        name = f"case{i:02d}__repo-{i}__{case[:20]}"
        build(job, name)
        names[case] = name
    write_job_result(job, rewards)  # the job-level stats only know the good ones
    (job / "job.log").write_text("log")  # job-level files are not trials
    before = {p for p in root.rglob("*")}
    report = convert_job(job, root / "out", "bad", ConversionOptions(
        workers=2, exclude_repos_file=str(EXCLUDED)))
    after = {p for p in root.rglob("*")}
    return root, report, names, before, after


def test_there_are_at_least_30_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", list(CASES))
def test_each_bad_trial_is_accounted_for_with_its_reason(converted, case):
    _, report, names, _, _ = converted
    expected = CASES[case][1]
    by_name = {t.trial_name: t for t in report.trials}
    special = {"dir_name_backslash": "back\\slash__x", "excluded_repo": "django__django-11099__q",
               "dir_name_non_utf8": "bad\\xff__x"}
    entry = by_name.get(special.get(case, names[case]))
    assert entry is not None, (case, sorted(by_name))
    if expected is None:
        assert entry.status != "kept" and entry.status, (case, entry)
    elif expected == "counted":
        assert entry.status != "kept" or entry.reader_issues, (case, entry)
    else:
        assert entry.status == expected, (case, entry)
    if entry.status == "kept":
        assert entry.rows_written > 0


def test_good_trials_still_convert_and_outputs_are_valid(converted):
    root, report, _, _before, _after = converted
    by_name = {t.trial_name: t for t in report.trials}
    assert all(by_name[g].status == "kept" for g in GOOD)
    rows = json.loads((root / "out/lf_data/bad.json").read_text())
    assert len(rows) == report.rows_written and all(validate_lf_row(r) == [] for r in rows)
    d = json.loads((root / "out/bad.report.json").read_text())
    assert d["trials"]["total"] == len(report.trials) == len(CASES) + len(GOOD)
    assert d["trials"]["kept"] + d["trials"]["skipped"] == d["trials"]["total"]
    assert sum(d["trials"]["by_status"].values()) == d["trials"]["total"]
    assert d["reader_issues"], "reader issues must be aggregated in the report"


def test_nothing_written_outside_out_dir(converted):
    root, _, _, before, after = converted
    new = after - before
    assert new and all((root / "out") in p.parents or p == root / "out" for p in new)
