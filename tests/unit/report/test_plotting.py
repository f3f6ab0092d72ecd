"""plotting.plot_training on long, single-point, eval-less and empty runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import pytest
from sftpipe.cli import main
from sftpipe.report.plotting import plot_training
from sftpipe.runs.metrics import ema, smoothing_weight


def _metrics(n: int, eval_every: int = 0) -> dict:
    series = []
    for step in range(1, n + 1):
        series.append(
            {
                "step": step,
                "loss": 2.0 + 3.0 * math.exp(-step / 40) + 0.3 * math.sin(step * 1.7),
                "eval_loss": (1.9 + 3.0 * math.exp(-step / 40))
                if eval_every and step % eval_every == 0
                else None,
                "learning_rate": 1e-4 * min(1.0, step / 20) * (0.5 + 0.5 * math.cos(math.pi * step / n)),
                "grad_norm": 1.0,
                "epoch": step / 50,
                "num_input_tokens_seen": None,
            }
        )
    losses = [r["loss"] for r in series]
    evals = [(r["step"], r["eval_loss"]) for r in series if r["eval_loss"] is not None]
    best_eval = min(evals, key=lambda p: p[1]) if evals else (None, None)
    return {
        "series": series,
        "summary": {
            "finished": True,
            "final_loss": sum(losses) / n,
            "last_loss": losses[-1],
            "best_eval_loss": best_eval[1],
            "best_eval_step": best_eval[0],
            "total_steps": n,
            "max_steps": n,
        },
    }


def _check_png(path: Path) -> None:
    img = mpimg.imread(path)
    assert img.shape[0] > 400 and img.shape[1] > 600
    assert img.std() > 0.01  # not a blank canvas


def test_ema_debiased() -> None:
    assert ema([3.0, 3.0, 3.0], 0.9) == pytest.approx([3.0, 3.0, 3.0])
    assert ema([1.0, 3.0], 0.5) == pytest.approx([1.0, (0.25 * 1 + 0.5 * 3) / 0.75])
    assert ema([4.0], 0.0) == [4.0]
    assert smoothing_weight(1) == 0.0 and 0.8 < smoothing_weight(200) <= 0.95


@pytest.mark.parametrize(("n", "eval_every"), [(200, 25), (1, 0), (7, 0), (7, 3)])
def test_plot_shapes(tmp_path: Path, n: int, eval_every: int) -> None:
    out = plot_training(_metrics(n, eval_every), tmp_path / "sub" / "loss.png", f"run with {n} steps")
    _check_png(out)


def test_plot_with_no_points(tmp_path: Path) -> None:
    _check_png(plot_training({"series": [], "summary": {}}, tmp_path / "empty.png", "nothing yet"))


def test_cli_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    line = {
        "current_steps": 1,
        "total_steps": 2,
        "loss": 2.5,
        "lr": 1e-5,
        "epoch": 0.5,
        "percentage": 50.0,
        "elapsed_time": "0:00:01",
        "remaining_time": "0:00:01",
    }
    (tmp_path / "trainer_log.jsonl").write_text(json.dumps(line) + "\n")
    argv = ["plot", str(tmp_path)]
    assert main(argv) == 0
    _check_png(tmp_path / "training_loss.png")
    argv = ["plot", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")]
    assert main(argv) == 1 and not (tmp_path / "x.png").exists()


def test_cli_plot_from_metrics_json(tmp_path: Path) -> None:

    (tmp_path / "metrics.json").write_text(json.dumps(_metrics(30, 10)))
    argv = [
        "plot",
        str(tmp_path),
        "--metrics",
        str(tmp_path / "metrics.json"),
        "--out",
        str(tmp_path / "p.png"),
    ]
    assert main(argv) == 0
    _check_png(tmp_path / "p.png")
    (tmp_path / "bad.json").write_text("{")
    argv = ["plot", str(tmp_path), "--metrics", str(tmp_path / "bad.json")]
    assert main(argv) == 1
