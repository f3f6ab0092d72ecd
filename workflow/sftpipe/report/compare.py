"""`sft compare RUN RUN...`: which config keys differ, how the key metrics compare, one loss plot.

Config comes from each run directory's `run_config.yaml` (the resolved config the launcher wrote),
flattened to dotted keys; `runtime_info.output` (results, not inputs) is left out and credentials
are never shown, not even redacted. Metrics come from sftpipe.runs.metrics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from sftpipe import paths
from sftpipe.util.redact import SECRET_NAME

RUN_CONFIG = paths.RESOLVED_CONFIG
LF_CONFIG = paths.LF_YAML
ABSENT = "<absent>"
SKIP_PREFIXES = ("runtime_info.output", "runtime_info.input.credentials")
METRIC_KEYS = (
    "final_loss",
    "last_loss",
    "best_loss",
    "best_loss_step",
    "best_eval_loss",
    "best_eval_step",
    "eval_loss_last",
    "total_steps",
    "max_steps",
    "epochs",
    "train_runtime",
    "num_input_tokens_seen",
    "train_samples_per_second",
)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings → {"a.b.c": leaf}; lists stay values (compared whole)."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: obj} if prefix else {}


def _shown(key: str) -> bool:
    if any(key == p or key.startswith(p + ".") for p in SKIP_PREFIXES):
        return False
    return not SECRET_NAME.search(key.rsplit(".", 1)[-1])


def run_config(run_dir: Path) -> tuple[dict[str, Any], str]:
    """Flattened config of a run (run_config.yaml, else the LF YAML under `lf.`) and its source."""
    for name, prefix in ((RUN_CONFIG, ""), (LF_CONFIG, "lf")):
        path = Path(run_dir) / name
        if path.is_file():
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            flat = flatten(data, prefix)
            return {k: v for k, v in flat.items() if _shown(k)}, name
    return {}, ""


def config_differences(configs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The keys whose values differ between the flattened configs, with each config's value
    (ABSENT where a config lacks the key)."""
    keys = sorted(set().union(*configs)) if configs else []
    diffs = {}
    for key in keys:
        values = [c.get(key, ABSENT) for c in configs]
        if any(
            json.dumps(v, sort_keys=True, default=str) != json.dumps(values[0], sort_keys=True, default=str)
            for v in values[1:]
        ):
            diffs[key] = values
    return diffs


def compare(root: Path, refs: list[str]) -> dict[str, Any]:
    """Metrics, status and config differences of the referenced runs; labels fall back to the refs
    when two runs share a name."""
    from sftpipe.runs.metrics import MetricsError, extract_metrics
    from sftpipe.runs.status import derive_status, resolve_run

    runs = []
    for ref_text in refs:
        ref = resolve_run(root, ref_text)
        config, source = run_config(ref.run_dir)
        try:
            metrics = extract_metrics(ref.run_dir)
        except MetricsError as exc:
            metrics = {"summary": {"warnings": [str(exc)]}, "series": []}
        runs.append(
            {
                "ref": ref_text,
                "run_id": ref.run_id,
                "run_dir": str(ref.run_dir),
                "label": ref.run_id or ref.run_dir.name,
                "status": derive_status(ref).status,
                "config_source": source,
                "config": config,
                "metrics": {k: metrics["summary"].get(k) for k in METRIC_KEYS},
                "warnings": metrics["summary"].get("warnings", []),
                "series": metrics["series"],
            }
        )
    labels = [r["label"] for r in runs]
    if len(set(labels)) != len(labels):  # the same name twice (e.g. two dirs called alike): use refs
        for r in runs:
            r["label"] = r["ref"]
    return {"runs": runs, "config_differences": config_differences([r["config"] for r in runs])}


def plot_comparison(result: dict[str, Any], out_png: Path) -> Path:
    """Draw the runs' train (EMA-smoothed) and eval loss curves side by side to `out_png`; returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sftpipe.runs.metrics import ema, smoothing_weight

    fig, (ax_train, ax_eval) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(result["runs"]):
        color = colors[i % len(colors)]
        pts = [
            (r["step"], float(r["loss"]))
            for r in run["series"]
            if isinstance(r.get("loss"), (int, float)) and math.isfinite(r["loss"])
        ]
        evals = [
            (r["step"], float(r["eval_loss"]))
            for r in run["series"]
            if isinstance(r.get("eval_loss"), (int, float)) and math.isfinite(r["eval_loss"])
        ]
        if pts:
            steps, losses = zip(*pts)
            weight = smoothing_weight(len(losses))
            ax_train.plot(
                steps,
                losses,
                color=color,
                alpha=0.3 if weight else 1.0,
                linewidth=1,
                marker="o" if len(pts) <= 20 else None,
                markersize=3,
                label=None if weight else run["label"],
            )
            if weight:
                ax_train.plot(steps, ema(list(losses), weight), color=color, linewidth=2, label=run["label"])
        if evals:
            steps, losses = zip(*evals)
            ax_eval.plot(
                steps, losses, color=color, marker="D", markersize=4, linewidth=1.2, label=run["label"]
            )
    for ax, title in ((ax_train, "train loss"), (ax_eval, "eval loss")):
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, f"no {title} logged", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("Run comparison: " + " vs ".join(r["label"] for r in result["runs"]), fontsize=12)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a text table: status and metrics per run, then the differing config keys."""
    labels = [r["label"] for r in result["runs"]]
    rows = [("metric / key", labels)]
    rows.append(("status", [r["status"] for r in result["runs"]]))
    rows += [(k, [r["metrics"].get(k) for r in result["runs"]]) for k in METRIC_KEYS]
    width_key = max(len(k) for k, _ in rows + [(k, None) for k in result["config_differences"]])
    widths = [max(12, len(label)) for label in labels]

    def line(key: str, values: list[Any]) -> str:
        return f"{key:{width_key}s}  " + "  ".join(
            f"{_cell(v) if v is not None else '-':>{w}s}" for v, w in zip(values, widths)
        )

    out = [line(k, v) for k, v in rows]
    out.append("")
    missing = [r for r in result["runs"] if not r["config_source"]]
    if result["config_differences"]:
        out.append(f"config differences ({len(result['config_differences'])} keys):")
        out += [line(k, v) for k, v in result["config_differences"].items()]
    elif not missing:
        out.append("config: no differences")
    for r in missing:
        out.append(
            f"warning: {r['label']}: no {RUN_CONFIG} or {LF_CONFIG} in {r['run_dir']}: its config is "
            "unknown and not compared"
        )
    return "\n".join(out)
