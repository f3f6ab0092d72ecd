"""Training-curve figure of one run: loss (raw + smoothed + eval points) over learning rate."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sftpipe import paths
from sftpipe.runs.metrics import ema, smoothing_weight

DEFAULT_PNG = paths.LOSS_PLOT


def _points(series: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [
        (r["step"], float(r[key]))
        for r in series
        if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
    ]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_training(metrics: dict[str, Any], out_png: Path, title: str) -> Path:
    """Write the figure; works for 1-point runs, runs without eval and runs without any loss yet."""
    import matplotlib  # imported here: every `sft` command loads this module, few of them plot

    matplotlib.use("Agg")  # headless: rules and CI have no display
    import matplotlib.pyplot as plt

    series = metrics.get("series", [])
    summary = metrics.get("summary", {})
    steps, losses = _points(series, "loss")
    eval_steps, eval_losses = _points(series, "eval_loss")
    lr_steps, lrs = _points(series, "learning_rate")

    fig, (ax_loss, ax_lr) = plt.subplots(
        2, 1, figsize=(9, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True
    )
    marker = "o" if len(steps) <= 20 else None
    if steps:
        weight = smoothing_weight(len(steps))  # 0 for short runs: the raw curve is drawn solid alone
        ax_loss.plot(
            steps,
            losses,
            color="tab:blue",
            alpha=0.35 if weight else 1.0,
            linewidth=1,
            marker=marker,
            markersize=4,
            label="train loss (raw)",
        )
        if weight > 0:
            ax_loss.plot(
                steps,
                ema(losses, weight),
                color="tab:blue",
                linewidth=2,
                label=f"train loss (EMA, weight {weight:.2f})",
            )
    if eval_steps:
        ax_loss.plot(
            eval_steps,
            eval_losses,
            color="tab:orange",
            marker="D",
            markersize=5,
            linewidth=1.2,
            label="eval loss",
        )
    if not steps and not eval_steps:
        ax_loss.text(0.5, 0.5, "no loss logged yet", ha="center", va="center", transform=ax_loss.transAxes)
    ax_loss.set_ylabel("loss")
    ax_loss.grid(True, alpha=0.3)
    if steps or eval_steps:
        ax_loss.legend(loc="upper right")

    notes = []
    if summary.get("final_loss") is not None:
        notes.append(f"final train loss {summary['final_loss']:.4f}")
    elif summary.get("last_loss") is not None:
        notes.append(f"last loss {summary['last_loss']:.4f}")
    if summary.get("best_eval_loss") is not None:
        notes.append(f"best eval {summary['best_eval_loss']:.4f} @ step {summary['best_eval_step']}")
    if summary.get("total_steps") is not None:
        progress = f"step {summary['total_steps']}"
        if summary.get("max_steps"):
            progress += f"/{summary['max_steps']}"
        notes.append(progress + ("" if summary.get("finished", True) else " (running or unfinished)"))
    fig.suptitle(title, fontsize=13)
    ax_loss.set_title(" · ".join(notes), fontsize=9, color="dimgray")

    if lr_steps:
        ax_lr.plot(lr_steps, lrs, color="tab:green", linewidth=1.5, marker=marker, markersize=3)
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    else:
        ax_lr.text(0.5, 0.5, "no learning rate logged", ha="center", va="center", transform=ax_lr.transAxes)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("optimizer step")
    ax_lr.grid(True, alpha=0.3)
    all_steps = steps + eval_steps + lr_steps
    if len(set(all_steps)) == 1:  # a single step: give the axis some width
        ax_lr.set_xlim(all_steps[0] - 1, all_steps[0] + 1)
    ax_lr.xaxis.get_major_locator().set_params(integer=True)

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
