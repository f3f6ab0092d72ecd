"""metrics.py on hand-made run directories in the exact formats LF 0.9.5 / transformers 4.57 write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sftpipe.cli import main
from sftpipe.runs.metrics import MetricsError, extract_metrics, read_trainer_log, write_metrics

# log_history of a 6-step run: logging_steps=1... abridged to every 2 steps, eval every 3 steps.
LOG_HISTORY = [
    # transformers 4.57 with include_num_input_tokens_seen adds train_runtime to per-step entries too.
    {
        "epoch": 0.5,
        "grad_norm": 12.5,
        "learning_rate": 4e-05,
        "loss": 5.1,
        "num_input_tokens_seen": 256,
        "step": 2,
        "train_runtime": 0.117,
        "train_tokens_per_second": 2188.7,
    },
    {
        "epoch": 0.75,
        "eval_loss": 4.9,
        "eval_runtime": 0.5,
        "eval_samples_per_second": 8.0,
        "eval_steps_per_second": 4.0,
        "step": 3,
    },
    {"epoch": 1.0, "grad_norm": 9.25, "learning_rate": 2.5e-05, "loss": 4.2, "step": 4},
    {"epoch": 1.5, "grad_norm": 7.0, "learning_rate": 5e-06, "loss": 4.4, "step": 6},
    {
        "epoch": 1.5,
        "eval_loss": 4.6,
        "eval_runtime": 0.5,
        "eval_samples_per_second": 8.0,
        "eval_steps_per_second": 4.0,
        "step": 6,
    },
    {
        "epoch": 1.5,
        "step": 6,
        "total_flos": 1234.0,
        "train_loss": 4.5667,
        "train_runtime": 7.5,
        "train_samples_per_second": 3.2,
        "train_steps_per_second": 0.8,
    },
]


def _state(log_history: list[dict], global_step: int, max_steps: int = 6) -> dict:
    return {
        "best_global_step": None,
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": log_history[-1]["epoch"] if log_history else 0,
        "eval_steps": 3,
        "global_step": global_step,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": log_history,
        "logging_steps": 2,
        "max_steps": max_steps,
        "num_input_tokens_seen": 0,
        "num_train_epochs": 2,
        "save_steps": 2,
        "stateful_callbacks": {},
        "total_flos": 1234.0,
        "train_batch_size": 1,
        "trial_name": None,
        "trial_params": None,
    }


def _log_line(step: int, total: int = 6, **kw) -> dict:
    line = {
        "current_steps": step,
        "total_steps": total,
        **kw,
        "percentage": round(step / total * 100, 2),
        "elapsed_time": f"0:00:0{step}",
        "remaining_time": f"0:00:0{total - step}",
    }
    return line


def _train_lines(total: int = 6) -> list[dict]:
    return [
        _log_line(2, total, loss=5.1, lr=4e-05, epoch=0.5),
        _log_line(3, total, eval_loss=4.9, epoch=0.75),
        _log_line(4, total, loss=4.2, lr=2.5e-05, epoch=1.0),
        _log_line(6, total, loss=4.4, lr=5e-06, epoch=1.5),
        _log_line(6, total, eval_loss=4.6, epoch=1.5),
        _log_line(6, total, epoch=1.5),  # the end-of-train summary on_log call
    ]


def _write_jsonl(path: Path, lines: list[dict], tail: str = "") -> None:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + tail, encoding="utf-8")


RESULTS = {
    "epoch": 1.5,
    "total_flos": 1234.0,
    "train_loss": 4.5667,
    "train_runtime": 7.5,
    "train_samples_per_second": 3.2,
    "train_steps_per_second": 0.8,
}


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    (tmp_path / "trainer_state.json").write_text(json.dumps(_state(LOG_HISTORY, 6), indent=2))
    _write_jsonl(tmp_path / "trainer_log.jsonl", _train_lines())
    (tmp_path / "train_results.json").write_text(json.dumps(RESULTS, indent=4))
    (tmp_path / "all_results.json").write_text(json.dumps(RESULTS | {"eval_loss": 4.6}, indent=4))
    return tmp_path


def test_finished_run_summary_and_series(finished_run: Path) -> None:
    m = extract_metrics(finished_run)
    s = m["summary"]
    assert s["finished"] is True
    assert s["final_loss"] == 4.5667
    assert s["last_loss"] == 4.4
    assert s["mean_loss"] == pytest.approx((5.1 + 4.2 + 4.4) / 3)
    assert (s["best_loss"], s["best_loss_step"]) == (4.2, 4)
    assert (s["best_eval_loss"], s["best_eval_step"]) == (4.6, 6)
    assert s["eval_loss_last"] == 4.6 and s["eval_points"] == 2 and s["final_eval_loss"] == 4.6
    assert (s["total_steps"], s["max_steps"], s["epochs"]) == (6, 6, 1.5)
    assert (s["train_runtime"], s["total_flos"], s["train_steps_per_second"]) == (7.5, 1234.0, 0.8)
    assert s["remaining_time"] is None and s["resumed_duplicate_lines"] == 0
    assert s["warnings"] == []
    assert [r["step"] for r in m["series"]] == [2, 3, 4, 6]
    assert m["series"][0] == {
        "step": 2,
        "loss": 5.1,
        "eval_loss": None,
        "learning_rate": 4e-05,
        "grad_norm": 12.5,
        "epoch": 0.5,
        "num_input_tokens_seen": 256,
        # 256 tokens by elapsed 0:00:02 on one rank; no model config.json here: no MFU
        "tokens_per_second_per_gpu": 128.0,
        "mfu": None,
    }
    assert m["series"][3]["loss"] == 4.4 and m["series"][3]["eval_loss"] == 4.6


def test_running_run_uses_checkpoint_state_then_live_log(tmp_path: Path) -> None:
    # Training is at step 5: checkpoint-4 holds history to step 4; the live log has step 5 too.
    ckpt = tmp_path / "checkpoint-4"
    ckpt.mkdir()
    (ckpt / "trainer_state.json").write_text(json.dumps(_state(LOG_HISTORY[:3], 4)))
    old = tmp_path / "checkpoint-2"
    old.mkdir()
    (old / "trainer_state.json").write_text(json.dumps(_state(LOG_HISTORY[:1], 2)))
    _write_jsonl(
        tmp_path / "trainer_log.jsonl", _train_lines()[:3] + [_log_line(5, loss=4.3, lr=1e-5, epoch=1.25)]
    )
    m = extract_metrics(tmp_path)
    s = m["summary"]
    assert s["finished"] is False and s["final_loss"] is None and s["train_runtime"] is None
    assert s["total_steps"] == 5 and s["last_loss"] == 4.3 and s["remaining_time"] == "0:00:01"
    assert s["sources"]["trainer_state"].endswith("checkpoint-4/trainer_state.json")
    assert [r["step"] for r in m["series"]] == [2, 3, 4, 5]
    assert m["series"][2]["grad_norm"] == 9.25  # from the checkpoint's clean history
    assert m["series"][3]["grad_norm"] is None and m["series"][3]["learning_rate"] == 1e-5
    assert any("run not finished" in w for w in s["warnings"])


def test_live_log_only(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "trainer_log.jsonl", _train_lines()[:1])
    s = extract_metrics(tmp_path)["summary"]
    assert (s["total_steps"], s["max_steps"], s["last_loss"], s["logged_steps"]) == (2, 6, 5.1, 1)


def test_resumed_run_keeps_last_line_per_step(tmp_path: Path) -> None:
    # First attempt reached step 5 (checkpoint at 4), killed; resumed with max_steps raised to 8.
    first = [
        _log_line(2, 6, loss=5.1, lr=4e-05, epoch=0.5),
        _log_line(4, 6, loss=4.2, lr=2.5e-05, epoch=1.0),
        _log_line(5, 6, loss=9.9, lr=1e-05, epoch=1.25),
    ]
    second = [
        _log_line(5, 8, loss=4.3, lr=1.5e-05, epoch=1.25),
        _log_line(6, 8, eval_loss=4.6, epoch=1.5),
        _log_line(6, 8, loss=4.25, lr=1e-05, epoch=1.5),
        _log_line(8, 8, loss=4.1, lr=0.0, epoch=2.0),
    ]
    _write_jsonl(tmp_path / "trainer_log.jsonl", first + second)
    lines, replaced, restarts = read_trainer_log(tmp_path / "trainer_log.jsonl", [])
    assert (replaced, restarts) == (1, 1)
    assert [(x["current_steps"], x.get("loss")) for x in lines] == [
        (2, 5.1),
        (4, 4.2),
        (5, 4.3),
        (6, None),
        (6, 4.25),
        (8, 4.1),
    ]
    m = extract_metrics(tmp_path)
    s = m["summary"]
    assert s["resumed"] is True and s["resumed_duplicate_lines"] == 1
    assert s["max_steps"] == 8 and s["total_steps"] == 8
    assert s["best_loss"] == 4.1 and 9.9 not in [r["loss"] for r in m["series"]]
    row6 = next(r for r in m["series"] if r["step"] == 6)
    assert (row6["loss"], row6["eval_loss"]) == (4.25, 4.6)


def test_stale_results_after_resume_are_not_reported(finished_run: Path) -> None:
    # Finished at 6, then resumed with max_steps 8 and now at step 7: the old final_loss is not this run's.
    with (finished_run / "trainer_log.jsonl").open("a") as f:
        f.write(json.dumps(_log_line(7, 8, loss=4.0, lr=1e-6, epoch=1.75)) + "\n")
    s = extract_metrics(finished_run)["summary"]
    assert s["finished"] is False and s["final_loss"] is None and s["train_runtime"] is None
    assert s["total_steps"] == 7 and s["max_steps"] == 8 and s["last_loss"] == 4.0
    assert any("ignored" in w for w in s["warnings"])


def test_unterminated_last_line_is_skipped_with_warning(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "trainer_log.jsonl", _train_lines()[:3], tail='{"current_steps": 5, "tot')
    s = extract_metrics(tmp_path)["summary"]
    assert s["total_steps"] == 4
    assert any("unterminated last line 4" in w for w in s["warnings"])


def test_corrupt_middle_line_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "trainer_log.jsonl").write_text(
        '{"current_steps": 1, "loss": 2.0}\n{oops\n{"current_steps": 2, "loss": 1.0}\n'
    )
    with pytest.raises(MetricsError, match=r"trainer_log.jsonl:2: not valid JSON"):
        extract_metrics(tmp_path)


def test_line_without_step_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "trainer_log.jsonl").write_text('{"loss": 2.0}\n')
    with pytest.raises(MetricsError, match="current_steps"):
        extract_metrics(tmp_path)


def test_corrupt_trainer_state_is_an_error(finished_run: Path) -> None:
    (finished_run / "trainer_state.json").write_text('{"log_history": [')
    with pytest.raises(MetricsError, match="trainer_state.json: not valid JSON"):
        extract_metrics(finished_run)


def test_empty_or_missing_run_dir(tmp_path: Path) -> None:
    with pytest.raises(MetricsError, match="no training records"):
        extract_metrics(tmp_path)
    with pytest.raises(MetricsError, match="does not exist"):
        extract_metrics(tmp_path / "nope")


def test_nan_loss_kept_in_series_but_not_in_stats(tmp_path: Path) -> None:
    # json.dumps writes NaN for float('nan'), as transformers' trainer_state does.
    _write_jsonl(
        tmp_path / "trainer_log.jsonl",
        [_log_line(1, loss=3.0, lr=1e-5, epoch=0.1), _log_line(2, loss=float("nan"), lr=1e-5, epoch=0.2)],
    )
    s = extract_metrics(tmp_path)["summary"]
    assert s["mean_loss"] == 3.0 and s["last_loss"] == 3.0
    assert any("non-finite" in w for w in s["warnings"])


def test_token_counts_from_live_log(tmp_path: Path) -> None:
    _write_jsonl(
        tmp_path / "trainer_log.jsonl",
        [_log_line(1, loss=3.0, lr=1e-5, epoch=0.1, throughput=100.5, total_tokens=512)],
    )
    s = extract_metrics(tmp_path)["summary"]
    assert s["num_input_tokens_seen"] == 512 and s["throughput_tokens_per_second"] == 100.5


def test_write_metrics_files(finished_run: Path) -> None:
    m = write_metrics(finished_run)
    on_disk = json.loads((finished_run / "metrics.json").read_text())
    assert on_disk == m
    rows = [json.loads(x) for x in (finished_run / "metrics.jsonl").read_text().splitlines()]
    assert rows == m["series"] and len(rows) == 4


def test_cli_metrics_json(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["metrics", str(finished_run), "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["final_loss"] == 4.5667
    argv = ["metrics", str(finished_run / "missing")]
    assert main(argv) == 1
    assert "does not exist" in capsys.readouterr().err


def test_cli_metrics_out_paths(finished_run: Path, tmp_path_factory: pytest.TempPathFactory) -> None:

    out = tmp_path_factory.mktemp("out")
    argv = [
        "metrics",
        str(finished_run),
        "--write",
        "--out-json",
        str(out / "m.json"),
        "--out-jsonl",
        str(out / "m.jsonl"),
    ]
    assert main(argv) == 0
    assert json.loads((out / "m.json").read_text())["summary"]["total_steps"] == 6
    assert len((out / "m.jsonl").read_text().splitlines()) == 4
    assert not (finished_run / "metrics.json").exists()


@pytest.mark.parametrize(
    ("lines", "restarts"),
    [
        # killed after logging step 3 (train) with checkpoint 2: step 3 logged again
        (
            [
                (1, "loss", "0:00:10"),
                (2, "loss", "0:00:20"),
                (3, "loss", "0:00:30"),
                (3, "loss", "0:00:05"),
                (4, "loss", "0:00:15"),
            ],
            1,
        ),
        # killed after step 4 (train + eval): steps 3 and 4 again; the re-logged eval at 4 is no new restart
        (
            [
                (3, "loss", "0:00:30"),
                (4, "loss", "0:00:40"),
                (4, "eval_loss", "0:00:41"),
                (3, "loss", "0:00:05"),
                (4, "loss", "0:00:15"),
                (4, "eval_loss", "0:00:16"),
                (5, "loss", "0:00:25"),
            ],
            1,
        ),
        # killed right at a checkpoint: no repeated step, only the clock starting over
        ([(1, "loss", "1:00:00"), (2, "loss", "2:00:00"), (3, "loss", "0:30:00")], 1),
        # train, eval and summary lines at one step are not restarts
        ([(2, "loss", "0:00:20"), (2, "eval_loss", "0:00:21"), (2, None, "0:00:21")], 0),
        # two resumes
        ([(1, "loss", "0:00:10"), (1, "loss", "0:00:01"), (2, "loss", "0:00:02"), (2, "loss", "0:00:01")], 2),
    ],
)
def test_restart_detection(tmp_path: Path, lines: list, restarts: int) -> None:
    records = [
        {"current_steps": st, "total_steps": 9, **({key: 1.0} if key else {}), "elapsed_time": el}
        for st, key, el in lines
    ]
    _write_jsonl(tmp_path / "trainer_log.jsonl", records)
    assert read_trainer_log(tmp_path / "trainer_log.jsonl", [])[2] == restarts


def test_final_loss_after_resume_is_recomputed(finished_run: Path) -> None:
    # transformers' train_loss after a resume from step 2: (sum of step 3..6 losses) / 6 -- too low.
    log = finished_run / "trainer_log.jsonl"
    lines = _train_lines()
    _write_jsonl(log, lines[:3] + [dict(lines[0], elapsed_time="0:00:00")] + lines[1:])
    raw = json.loads((finished_run / "train_results.json").read_text())
    raw["train_loss"] = 2.0
    (finished_run / "train_results.json").write_text(json.dumps(raw))
    s = extract_metrics(finished_run)["summary"]
    assert s["resumed"] is True and s["train_results_train_loss"] == 2.0
    assert s["final_loss"] == pytest.approx((5.1 * 2 + 4.2 * 2 + 4.4 * 2) / 6) == s["loss_step_weighted_mean"]
    assert any("only sums the steps after the resume" in w for w in s["warnings"])


def test_started_but_nothing_logged_yet(tmp_path: Path) -> None:
    (tmp_path / "trainer_log.jsonl").write_text("")
    m = extract_metrics(tmp_path)
    s = m["summary"]
    assert m["series"] == [] and s["finished"] is False
    assert s["total_steps"] is None and s["last_loss"] is None and s["mean_loss"] is None
    assert any("run not finished" in w for w in s["warnings"])


def test_state_from_an_earlier_run_is_flagged(finished_run: Path) -> None:
    # overwrite_output_dir removes trainer_log.jsonl but leaves the old trainer_state.json behind.
    _write_jsonl(finished_run / "trainer_log.jsonl", [_log_line(2, loss=7.7, lr=4e-05, epoch=0.5)])
    s = extract_metrics(finished_run)["summary"]
    assert any("disagree on the loss at steps [2]" in w for w in s["warnings"])
