import pytest
from sftpipe.data.conversion.report import Report, TrialEntry
from sftpipe.data.conversion.stats import RowSummary, build_stats


def _row(tokens, score, scaffold="claude-code", agent="main", calls=4, errors=1):
    return RowSummary(
        scaffold=scaffold,
        agent_type=agent,
        assistant_turns=calls + 1,
        tool_calls=calls,
        tool_errors=errors,
        tokens=tokens,
        score=score,
    )


def test_stats_distributions():
    rows = [
        _row(100, 0.95),
        _row(300, 0.15),
        _row(200, None, scaffold="open-code", agent="subagent", errors=0),
    ]
    s = build_stats(rows, cutoff_len=250, tokens_measured=True)
    t = s["token_length"]
    assert (t["max"], t["min"], t["mean"], t["p50"], t["count_over_cutoff"], t["total"]) == (
        300,
        100,
        200,
        200,
        1,
        600,
    )
    assert t["p95"] == pytest.approx(290.0)
    assert s["samples_per_agent_type"] == {"main": 2, "subagent": 1}
    assert (
        s["score"]["count"] == 2
        and s["score"]["histogram"]["counts"][9] == 1
        and s["score"]["histogram"]["counts"][1] == 1
    )
    assert s["tool_call_error_rate"]["overall"] == {
        "tool_calls": 12,
        "tool_errors": 2,
        "rate": pytest.approx(2 / 12, abs=1e-6),
    }
    assert s["tool_call_error_rate"]["per_scaffold"]["open-code"]["rate"] == 0.0
    unmeasured = build_stats([_row(None, 0.5)], cutoff_len=10, tokens_measured=False)
    assert unmeasured["token_length"] == {"measured": False, "cutoff_len": 10}


def test_report_totals_and_invariants():
    r = Report(
        job_dir="j",
        data_name="d",
        options={},
        outputs={},
        job_finished=True,
        job_problem="",
        tokens_measured=False,
    )
    r.trials = [
        TrialEntry("a", "kept", rows_written=2, rows_dropped={"over_length": 1}),
        TrialEntry("b", "incomplete"),
        TrialEntry("c", "over_length", rows_dropped={"over_length": 2}),
    ]
    r.rows_written = 2
    r.check()
    d = r.to_dict()
    assert d["trials"] == {
        "total": 3,
        "kept": 1,
        "skipped": 2,
        "by_status": {"incomplete": 1, "kept": 1, "over_length": 1},
    }
    assert d["rows"] == {"candidates": 5, "written": 2, "dropped": 3, "dropped_by_reason": {"over_length": 3}}
    assert "3 total, 1 kept, 2 skipped" in r.to_text()
    r.rows_written = 3
    with pytest.raises(AssertionError):
        r.check()
