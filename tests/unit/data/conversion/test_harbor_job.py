import json
from pathlib import Path

from harbor_job_builder import make_trial, write_job_result, write_json
from sftpipe.data.conversion.harbor_job import load_excluded_repos, repo_of_instance, scan_job

REF = Path(__file__).resolve().parents[3] / "fixtures" / "reference"


def _by_name(records):
    return {r.trial_name: r for r in records}


def test_repo_parsing_and_exclusion_file(tmp_path):
    assert repo_of_instance("encode__httpx-2701") == "encode/httpx"
    assert repo_of_instance("Owner__my-repo-12__v2") == "Owner/my-repo"
    assert repo_of_instance("hello-world") is None
    f = tmp_path / "ex.txt"
    f.write_text("# comment\nDjango/Django  # trailing\n\n", encoding="utf-8")
    assert load_excluded_repos(f) == {"django/django"} and load_excluded_repos("") == set()


def test_instance_id_from_relative_task_path_and_job_level_reward(tmp_path):
    job = tmp_path / "job"
    trial = make_trial(job, "owner__repo-123__hash", "ignored", reward=None)
    write_json(
        trial / "config.json",
        {"task": {"path": "../../tasks/owner__repo-123"}, "agent": {"name": "opencode"}},
    )
    write_job_result(job, {"owner__repo-123__hash": 1.0})
    (rec,), job_info = scan_job(job, selection="resolved")
    assert rec.instance_id == "owner__repo-123" and rec.repo == "owner/repo"
    assert rec.scaffold == "open-code" and rec.reward == 1.0 and rec.reward_source == "job_result"
    assert rec.skip_reason is None and job_info.finished


def test_running_job_uses_trial_rewards_and_incomplete_trials_are_skipped(tmp_path):
    job = tmp_path / "job"
    make_trial(job, "a__b-1__x", "a__b-1", reward=1.0)
    make_trial(job, "a__b-2__x", "a__b-2", with_result=False)
    t3 = make_trial(job, "a__b-3__x", "a__b-3", reward=None)
    (t3 / "verifier").mkdir()
    (t3 / "verifier" / "reward.txt").write_text("1\n")
    write_job_result(job, {"a__b-1__x": 0.0}, finished=False)  # partial stats must not win
    recs = _by_name(scan_job(job)[0])
    assert recs["a__b-1__x"].reward == 1.0 and recs["a__b-1__x"].reward_source == "trial_result"
    assert recs["a__b-2__x"].skip_reason == "incomplete"
    assert recs["a__b-3__x"].reward_source == "reward_txt" and recs["a__b-3__x"].skip_reason is None


def test_selection_exception_policy_and_explicit_scaffold(tmp_path):
    job = tmp_path / "job"
    make_trial(job, "a__b-1__x", "a__b-1", 1.0, exception="AgentTimeoutError")
    make_trial(job, "a__b-2__x", "a__b-2", 0.0)
    make_trial(job, "a__b-3__x", "a__b-3", None, exception="AgentTimeoutError")
    keep = _by_name(scan_job(job, scaffold="terminus2")[0])
    assert keep["a__b-1__x"].skip_reason is None and keep["a__b-1__x"].scaffold == "terminus2"
    assert keep["a__b-2__x"].skip_reason == "not_selected"
    assert keep["a__b-3__x"].skip_reason == "exception"
    drop = _by_name(scan_job(job, selection="all", exception_policy="drop")[0])
    assert drop["a__b-1__x"].skip_reason == "exception" and drop["a__b-2__x"].skip_reason is None
    unresolved = _by_name(scan_job(job, selection="unresolved")[0])
    assert (
        unresolved["a__b-2__x"].skip_reason is None and unresolved["a__b-1__x"].skip_reason == "not_selected"
    )


def test_reference_job_result_shape(tmp_path):
    job = tmp_path / "job"
    make_trial(job, "encode__httpx-2701__Xk3pQ9a", "encode__httpx-2701", reward=None)
    make_trial(job, "encode__httpx-2701__Lm7vR2c", "encode__httpx-2701", reward=None)
    (job / "result.json").write_text((REF / "harbor/synthetic_job_result.v0.6.2.json").read_text())
    # The timed-out trial's own result.json (exception_info AND a reward) as Harbor wrote it.
    (job / "encode__httpx-2701__Lm7vR2c" / "result.json").write_text(
        (REF / "harbor/synthetic_trial_result_timeout.v0.6.2.json").read_text()
    )
    recs = _by_name(scan_job(job, selection="all")[0])
    assert recs["encode__httpx-2701__Xk3pQ9a"].reward == 1.0
    assert recs["encode__httpx-2701__Lm7vR2c"].reward == 0.0
    assert recs["encode__httpx-2701__Lm7vR2c"].exception_type == "AgentTimeoutError"
    assert json.loads((job / "result.json").read_text())["n_total_trials"] == 2
    resolved = _by_name(scan_job(job, selection="resolved", exception_policy="drop")[0])
    assert resolved["encode__httpx-2701__Lm7vR2c"].skip_reason == "exception"
    assert resolved["encode__httpx-2701__Xk3pQ9a"].skip_reason is None
