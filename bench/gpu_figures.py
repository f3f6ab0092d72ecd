"""GPU figures (issue 10 item 7): tokens/s per GPU, MFU and peak memory of random-init Qwen3 models.

For every (preset, cutoff) case, cheapest first, on a throwaway project (tests/project.py):
  1. the memory plan (`sft memory --json`) decides the DeepSpeed config: the shipped ZeRO-3 JSON when
     the plan fits `gpu_memory_gb` (the GPU's GiB count, the docs' margin convention), else the ZeRO-3
     offload JSON when that fits the GPU and the node's RAM holds the offloaded states (~18 bytes per
     parameter: bf16 params + fp32 master, Adam moments and gradients), else ZeRO-3 anyway when its plan
     is at most 10% over (to measure how conservative the plan is), else the case is skipped;
  2. `sft build-tiny-model --preset P` (once per preset, in a background thread while smaller cases
     train) and a synthetic sharegpt set of long rows with
     packing on, so every step is a full cutoff_len sequence;
  3. the pipeline: `snakemake` up to the run's metrics.json (register, tokenize, train rule with the
     fail-fast probe, metrics); read back tokens/s per GPU, MFU, per-rank peak GPU memory and the
     probe's `max_length_probe.json` peak;
  4. bare `llamafactory-cli train` on the very same rendered `llamafactory_config.yaml` (another
     output_dir; same pretokenized data): wall time and tokens/s from all_results.json/trainer_log.jsonl;
then prints one table and (--json OUT) writes every figure.

tokens/s per GPU = num_input_tokens_seen / train_runtime / GPUs for both runs (the pipeline's own
metrics.json figure is the same formula; its runtime includes the probe's one extra step). "steady" is
the same rate between the first and the last logged step (from trainer_log.jsonl), without start-up.

Usage (GPU machine, one call, ~10 minutes):
  python bench/gpu_figures.py --json gpu_figures.json
CPU dry check of the whole flow:
  python bench/gpu_figures.py --accelerator cpu --presets tiny --cutoffs 256 --steps 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "workflow"))

from tests.project import edit_config, make_project

BIN = Path(sys.executable).parent
RUN = "gpufig-run"
DS_DIR = "artifacts/training_config/deepspeed"
DS_Z3, DS_OFFLOAD = f"{DS_DIR}/ds_z3_config.json", f"{DS_DIR}/ds_z3_offload_config.json"
PRESET_ORDER = ("tiny", "qwen3-0.6b", "qwen3-1.7b", "qwen3-8b")  # cheapest first
OFFLOAD_HOST_BYTES_PER_PARAM = 18  # bf16 params 2 + fp32 master 4 + Adam moments 8 + fp32 grads 4
# Do not start a case with less budget left than this (model load, tokenize, two short runs; the build
# runs in the background).
MIN_CASE_S = {"tiny": 30, "qwen3-0.6b": 90, "qwen3-1.7b": 120, "qwen3-8b": 240}
# The plan is an estimate with margins (a 4 GB reserve, 16 bytes/param, gathered buckets): a ZeRO-3 plan
# up to this factor over the limit is still run when offloading cannot help, to measure the real peak.
OVER_PLAN_TOLERANCE = 1.10


class CaseError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------
def base_env(accelerator: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env.pop("WANDB_API_KEY", None)
    env["WANDB_MODE"] = "disabled"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "workflow"), env.get("PYTHONPATH", "")]))
    if accelerator == "cpu":
        env.update(CUDA_VISIBLE_DEVICES="", DS_ACCELERATOR="cpu")
    return env


def run(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str],
    log: Path,
    timeout: float,
    running: list[subprocess.Popen] | None = None,
) -> tuple[int, float]:
    """Run `cmd` (output to `log`); kill it and its descendants on timeout (rc 124). While it runs it is
    in `running`, so that main can kill it on the way out."""
    start = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        if running is not None:
            running.append(proc)
        try:
            rc = proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            rc = 124
        finally:
            if running is not None:
                running.remove(proc)
    return rc, time.perf_counter() - start


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL `proc` and every descendant, by pid. Not SIGTERM: the train launcher (its own session) would
    turn that into a graceful stop that writes a checkpoint (optimizer states included) first."""
    import psutil

    try:
        family = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait()


def tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_memory_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def rate(tokens: float | None, seconds: float | None, gpus: int) -> float | None:
    return tokens / seconds / gpus if tokens and seconds else None


def run_rates(run_dir: Path, gpus: int) -> dict[str, Any]:
    """Whole-run and steady tokens/s per GPU of a finished LF output dir."""
    results = read_json(run_dir / "all_results.json") or {}
    tokens, runtime = results.get("num_input_tokens_seen"), results.get("train_runtime")
    points = []  # (seconds since start, tokens seen) at each logged step; LF's throughput = tokens / seconds
    log = run_dir / "trainer_log.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("total_tokens") and rec.get("throughput"):
                points.append((rec["total_tokens"] / rec["throughput"], rec["total_tokens"]))
    steady = None
    if len(points) >= 2 and points[-1][0] > points[0][0]:
        steady = (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0]) / gpus
    return {
        "tokens": tokens,
        "train_runtime_s": runtime,
        "tokens_per_s_per_gpu": rate(tokens, runtime, gpus),
        "steady_tokens_per_s_per_gpu": steady,
        "logged_steps": len(points),
    }


# ---------------------------------------------------------------------------------------------
# data, config, plan
# ---------------------------------------------------------------------------------------------
def write_dataset(path: Path, cutoff: int, steps: int, gpus: int, seed: int = 0) -> int:
    """Sharegpt rows of ~cutoff/4 words each, enough for `steps` packed full sequences per rank (x2)."""
    from sftpipe.data.tiny_model import _WORDS

    rng = random.Random(seed)
    words_per_row = max(32, cutoff // 4)
    n_rows = 2 * steps * gpus * math.ceil(cutoff / words_per_row) + 8
    rows = []
    for i in range(n_rows):
        text = " ".join(rng.choice(_WORDS) for _ in range(words_per_row))
        rows.append(
            {
                "conversations": [
                    {"from": "human", "value": f"Task {i}: continue the notes."},
                    {"from": "gpt", "value": text},
                ],
                "system": "You are a helpful assistant.",
                "tools": "",
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))
    return n_rows


def configure(
    root: Path,
    *,
    preset: str,
    cutoff: int,
    steps: int,
    gpus: int,
    accelerator: str,
    deepspeed: str,
    gpu_memory_gb: float,
    data_rel: str,
) -> None:
    cpus = max(1, min(os.cpu_count() or 1, 16))

    def edit(cfg):
        inp = cfg["runtime_info"]["input"]
        inp["source"].update(type="local_lf", lf_path=data_rel)
        inp["conversion"].update(data_name="gpufig", over_cutoff="keep")
        inp["model"]["model_name_or_path"] = f"artifacts/base_models/{preset}"
        inp["training"].update(
            template="qwen3_nothink",
            cutoff_len=cutoff,
            packing=True,
            per_device_train_batch_size=1,
            gradient_accumulation_steps=1,
            max_steps=steps,
            save_steps=100000,
            logging_steps=1,
            val_size=0.0,
            eval_strategy="no",
            output_dir=RUN,
            deepspeed=deepspeed,
            warmup_ratio=0.0,
            learning_rate=0.0001,
            bf16=accelerator == "cuda",
            flash_attn="sdpa" if accelerator == "cuda" else "auto",
            preprocessing_num_workers=min(cpus, 8),
        )
        inp["infrastructure"].update(
            accelerator=accelerator,
            n_gpus_per_node=gpus,
            n_nodes=1,
            cpus_per_node=cpus,
            gpu_memory_gb=gpu_memory_gb,
            allow_memory_overcommit=True,
        )
        inp["experiment"].update(tracker="none")

    edit_config(root / "config/config.yaml", edit)


def set_deepspeed(root: Path, deepspeed: str) -> None:
    def edit(cfg):
        cfg["runtime_info"]["input"]["training"]["deepspeed"] = deepspeed

    edit_config(root / "config/config.yaml", edit)


def memory_plan(root: Path, model_config: Path, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [str(BIN / "sft"), "memory", "--json", "--model-config", str(model_config)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        plan = json.loads(proc.stdout)
    except ValueError:
        raise CaseError(f"sft memory failed ({proc.returncode}): {proc.stderr[-2000:]}") from None
    if "per_gpu_gb" not in plan:
        raise CaseError(f"sft memory: {plan.get('problems')}")
    return plan


def preset_config_dir(work: Path, preset: str) -> Path:
    """A directory holding only the preset's config.json (the plan needs nothing else), before building."""
    from sftpipe.data.tiny_model import PRESETS

    p = PRESETS[preset]
    d = work / "plan-configs" / preset
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["Qwen3ForCausalLM"],
                "model_type": "qwen3",
                "hidden_size": p.hidden_size,
                "intermediate_size": p.intermediate_size,
                "num_hidden_layers": p.num_hidden_layers,
                "num_attention_heads": p.num_attention_heads,
                "num_key_value_heads": p.num_key_value_heads,
                "head_dim": p.head_dim,
                "vocab_size": max(p.vocab_size, p.tokenizer_vocab),
                "tie_word_embeddings": True,
            }
        )
    )
    return d


def choose_deepspeed(
    root: Path, plan_dir: Path, env: dict[str, str], choice: str, gpus: int
) -> tuple[str | None, str]:
    """(DeepSpeed JSON, why), or (None, why) to skip the case."""
    if choice == "z3":
        return DS_Z3, "forced (--deepspeed z3)"
    if choice == "offload":
        return DS_OFFLOAD, "forced (--deepspeed offload)"
    set_deepspeed(root, DS_Z3)
    plan = memory_plan(root, plan_dir, env)
    if plan["fits"]:
        return DS_Z3, f"plan {plan['per_gpu_gb']:.1f} GB fits {plan['gpu_memory_gb']:g} GB with ZeRO-3"
    set_deepspeed(root, DS_OFFLOAD)
    off = memory_plan(root, plan_dir, env)
    host_need = OFFLOAD_HOST_BYTES_PER_PARAM * off["inputs"]["params_b"] * 1e9
    host = host_memory_bytes()
    why = (
        f"ZeRO-3 plan {plan['per_gpu_gb']:.1f} GB > {plan['gpu_memory_gb']:g} GB; offload plan "
        f"{off['per_gpu_gb']:.1f} GB on the GPU, ~{host_need / 1e9:.0f} GB of offloaded states in "
        f"{host / 1e9:.0f} GB host RAM"
    )
    if off["fits"] and host_need <= 0.85 * host:
        return DS_OFFLOAD, why
    why += (
        " (offload: "
        + ("does not fit the GPU either" if not off["fits"] else "more than 85% of host RAM")
        + ")"
    )
    if plan["per_gpu_gb"] <= OVER_PLAN_TOLERANCE * plan["gpu_memory_gb"]:
        return (
            DS_Z3,
            why + f"; ZeRO-3 within {OVER_PLAN_TOLERANCE:.2f}x of the limit: run to measure the real peak",
        )
    return None, why


class Builder:
    """`sft build-tiny-model --preset P` for every preset, one after another in a background thread,
    so that the large models are built (CPU) while the small ones train (GPU)."""

    def __init__(self, work: Path, presets: list[str], env: dict[str, str], deadline: float):
        import threading

        self.work, self.env, self.deadline = work, env, deadline
        self.done: dict[str, tuple[int, float]] = {}
        self.running: list[subprocess.Popen] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._build_all, args=(presets,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        for proc in list(self.running):
            kill_tree(proc)

    def path(self, preset: str) -> Path:
        return self.work / "models" / preset

    def _build_all(self, presets: list[str]) -> None:
        for preset in presets:
            out = self.path(preset)
            if (out / "sftpipe_model.json").is_file():
                result = (0, 0.0)
            else:
                result = run(
                    [str(BIN / "sft"), "build-tiny-model", "--preset", preset, "--out", str(out)],
                    self.work,
                    self.env,
                    self.work / "logs" / f"build-{preset}.log",
                    self.deadline - time.monotonic(),
                    self.running,
                )
            with self.cond:
                self.done[preset] = result
                self.cond.notify_all()

    def wait(self, preset: str) -> tuple[Path, float]:
        with self.cond:
            self.cond.wait_for(
                lambda: preset in self.done, timeout=max(1.0, self.deadline - time.monotonic())
            )
        if preset not in self.done:
            raise CaseError(f"sft build-tiny-model --preset {preset}: not built within the time budget")
        rc, secs = self.done[preset]
        if rc != 0:
            raise CaseError(
                f"sft build-tiny-model --preset {preset} failed ({rc}):\n"
                f"{tail(self.work / 'logs' / f'build-{preset}.log')}"
            )
        return self.path(preset), secs


# ---------------------------------------------------------------------------------------------
# one case
# ---------------------------------------------------------------------------------------------
def prepare_case(
    work: Path, args: argparse.Namespace, preset: str, cutoff: int, gpu_memory_gb: float
) -> tuple[dict[str, Any], Path]:
    """The case's project (config, data) and its DeepSpeed choice; row["status"] is set when skipped."""
    row: dict[str, Any] = {"preset": preset, "cutoff": cutoff, "gpus": args.gpus, "steps": args.steps}
    env = base_env(args.accelerator)
    shutil.rmtree(work / f"{preset}-{cutoff}", ignore_errors=True)  # a reused --workdir
    root = make_project(work / f"{preset}-{cutoff}")
    data_rel = "bench_data/gpufig.json"
    row["dataset_rows"] = write_dataset(root / data_rel, cutoff, args.steps, args.gpus)
    configure(
        root,
        preset=preset,
        cutoff=cutoff,
        steps=args.steps,
        gpus=args.gpus,
        accelerator=args.accelerator,
        deepspeed=DS_Z3,
        gpu_memory_gb=gpu_memory_gb,
        data_rel=data_rel,
    )
    ds, why = choose_deepspeed(root, preset_config_dir(work, preset), env, args.deepspeed, args.gpus)
    row["deepspeed_choice"] = why
    if ds is None:
        row["status"] = "skipped: memory plan"
        return row, root
    set_deepspeed(root, ds)
    row["deepspeed"] = Path(ds).name
    return row, root


def run_case(
    work: Path, args: argparse.Namespace, row: dict[str, Any], root: Path, deadline: float, builder: Builder
) -> dict[str, Any]:
    from sftpipe import paths as sftpaths

    preset, cutoff = row["preset"], row["cutoff"]
    env = base_env(args.accelerator)

    waited = time.monotonic()
    model, build_s = builder.wait(preset)
    row["model_build_s"], row["model_wait_s"] = round(build_s, 1), round(time.monotonic() - waited, 1)
    (root / "artifacts/base_models").mkdir(parents=True, exist_ok=True)
    (root / "artifacts/base_models" / preset).symlink_to(model)
    plan = memory_plan(root, model, env)
    row["plan_gb"], row["plan_fits"] = plan["per_gpu_gb"], plan["fits"]
    row["plan_breakdown_gb"], row["plan_limit_gb"] = plan["breakdown"], plan["gpu_memory_gb"]
    row["params_b"] = plan["inputs"]["params_b"]

    # 1) the pipeline, up to metrics.json (register, tokenize, train with the probe, metrics)
    run_dir = root / sftpaths.run_file(RUN, "")
    target = str(sftpaths.run_file(RUN, sftpaths.METRICS_JSON))
    cores = str(max(2, os.cpu_count() or 2))
    rc, secs = run(
        [str(BIN / "snakemake"), "--profile", "profiles/default", "--cores", cores, target],
        root,
        env,
        work / "logs" / f"{preset}-{cutoff}-pipeline.log",
        deadline - time.monotonic(),
    )
    row["pipeline_wall_s"] = round(secs, 1)
    probe = read_json(run_dir / sftpaths.PROBE_RECORD)
    if probe:
        row["probe_ok"], row["probe_peak_gb"] = probe.get("ok"), probe.get("peak_memory_gb")
        row["probe_length"], row["probe_s"] = probe.get("length"), probe.get("seconds")
        row["probe_memory_kind"] = probe.get("memory_kind")
    if rc != 0:
        row["status"] = "pipeline timed out (budget)" if rc == 124 else f"pipeline failed ({rc})"
        row["log_tail"] = tail(work / "logs" / f"{preset}-{cutoff}-pipeline.log", 40)
        index = root / sftpaths.INDEX_PATH
        if index.is_file():
            row["index_tail"] = tail(index, 15)
        return row
    summary = (read_json(run_dir / sftpaths.METRICS_JSON) or {}).get("summary", {})
    perf = summary.get("throughput") or {}
    row["pipeline_tokens_per_s_per_gpu"] = summary.get("tokens_per_second_per_gpu")
    row["mfu"] = summary.get("mfu")
    row["peak_gpu_memory_gb"] = summary.get("peak_gpu_memory_gb")
    row["peak_gpu_memory_gb_per_rank"] = perf.get("peak_gpu_memory_gb_per_rank")
    row["peak_rss_gb"] = perf.get("peak_rss_gb")
    row["model_flops_per_token"] = perf.get("model_flops_per_token")
    row["mean_seq_len"] = perf.get("mean_seq_len")
    row["throughput_warnings"] = perf.get("warnings")
    row["pipeline"] = run_rates(run_dir, args.gpus)

    # 2) bare llamafactory-cli on the same rendered config, another output_dir
    lf_yaml = run_dir / sftpaths.LF_YAML
    from ruamel.yaml import YAML
    from sftpipe.lf import render as lf_render

    lf = YAML(typ="safe").load(lf_yaml.read_text())
    bare_dir = root / "artifacts/model/bare"
    lf["output_dir"] = str(bare_dir)
    lf.pop("resume_from_checkpoint", None)
    lf["report_to"] = "none"
    lf_render.dump(
        lf, root / "bare.yaml"
    )  # YAML 1.1-safe, as LF reads it (eval_strategy 'no' stays a string)
    bare_env = dict(env, FORCE_TORCHRUN="1", NPROC_PER_NODE=str(args.gpus), MASTER_PORT=str(free_port()))
    rc, secs = run(
        [str(BIN / "llamafactory-cli"), "train", "bare.yaml"],
        root,
        bare_env,
        work / "logs" / f"{preset}-{cutoff}-bare.log",
        deadline - time.monotonic(),
    )
    row["bare_wall_s"] = round(secs, 1)
    if rc != 0:
        row["status"] = "bare timed out (budget)" if rc == 124 else f"bare llamafactory-cli failed ({rc})"
        row["log_tail"] = tail(work / "logs" / f"{preset}-{cutoff}-bare.log", 40)
        return row
    row["bare"] = run_rates(bare_dir, args.gpus)
    p, b = row["pipeline"]["tokens_per_s_per_gpu"], row["bare"]["tokens_per_s_per_gpu"]
    row["ratio"] = p / b if p and b else None
    ps, bs = row["pipeline"]["steady_tokens_per_s_per_gpu"], row["bare"]["steady_tokens_per_s_per_gpu"]
    row["steady_ratio"] = ps / bs if ps and bs else None
    row["status"] = "ok"
    return row


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def fmt(v: Any, spec: str = ".0f") -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "preset",
        "cutoff",
        "zero3",
        "tok/s/GPU pipe",
        "bare",
        "ratio",
        "steady ratio",
        "MFU",
        "peak GB",
        "probe GB",
        "plan GB",
        "status",
    )
    lines = []
    for r in rows:
        mfu = r.get("mfu")
        peak = r.get("peak_gpu_memory_gb")
        if peak is None and r.get("peak_rss_gb") is not None:
            peak_s = f"{r['peak_rss_gb']:.2f} rss"  # CPU: the ranks' peak RSS, not GPU memory
        else:
            peak_s = fmt(peak, ".1f")
        lines.append(
            (
                r["preset"],
                str(r["cutoff"]),
                {"ds_z3_config.json": "z3", "ds_z3_offload_config.json": "z3+offload"}.get(
                    r.get("deepspeed"), "-"
                ),
                fmt((r.get("pipeline") or {}).get("tokens_per_s_per_gpu")),
                fmt((r.get("bare") or {}).get("tokens_per_s_per_gpu")),
                fmt(r.get("ratio"), ".3f"),
                fmt(r.get("steady_ratio"), ".3f"),
                "-" if mfu is None else f"{100 * mfu:.1f}%",
                peak_s,
                fmt(r.get("probe_peak_gb"), ".2f"),
                fmt(r.get("plan_gb"), ".1f"),
                r.get("status", "?"),
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines]
    return "\n".join(out)


def machine_info(accelerator: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "host_memory_gb": round(host_memory_bytes() / 1e9, 1),
    }
    if accelerator == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_count=torch.cuda.device_count(),
            gpu_memory_bytes=props.total_memory,
            cuda=torch.version.cuda,
        )
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="qwen3-1.7b,qwen3-8b", help="comma list of tiny_model presets")
    parser.add_argument("--cutoffs", default="8192,32768", help="comma list of cutoff_len values")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run (max_steps)")
    parser.add_argument("--gpus", type=int, default=1, help="ranks (GPUs) on this node")
    parser.add_argument("--accelerator", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument(
        "--deepspeed",
        default="auto",
        choices=["auto", "z3", "offload"],
        help="auto: ZeRO-3 if the memory plan fits, else offload if GPU and host RAM allow, else skip",
    )
    parser.add_argument(
        "--time-budget-s",
        type=float,
        default=540,
        help="stop starting cases (and kill a running one) when this is spent",
    )
    parser.add_argument(
        "--gpu-memory-gb",
        type=float,
        default=None,
        help="plan limit; default the GPU's memory in GiB (cuda) or 80 (cpu)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep everything here (default: a temp dir)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the rows and machine info here")
    args = parser.parse_args()
    start = time.monotonic()
    deadline = start + args.time_budget_s

    try:
        import torch
    except ImportError:
        print(
            f"error: torch is not importable from {sys.executable}; run with the training env's python "
            "(artifacts/env/lf/bin/python)",
            file=sys.stderr,
        )
        return 2
    if args.accelerator == "cuda":
        if not torch.cuda.is_available():
            print(
                "error: --accelerator cuda but CUDA is not available here (torch.cuda.is_available() is "
                "False). On a CPU machine run the dry check: --accelerator cpu --presets tiny --cutoffs 256",
                file=sys.stderr,
            )
            return 2
        if torch.cuda.device_count() < args.gpus:
            print(
                f"error: --gpus {args.gpus} but only {torch.cuda.device_count()} CUDA device(s)",
                file=sys.stderr,
            )
            return 2
    from sftpipe.data.tiny_model import PRESETS

    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        print(f"error: unknown preset(s) {unknown}; choose from {sorted(PRESETS)}", file=sys.stderr)
        return 2
    cutoffs = sorted(int(c) for c in args.cutoffs.split(",") if c.strip())
    rank = {p: i for i, p in enumerate(PRESET_ORDER)}
    cases = [(p, c) for p in sorted(presets, key=lambda p: rank.get(p, 99)) for c in cutoffs]
    info = machine_info(args.accelerator)
    gpu_memory_gb = args.gpu_memory_gb or (
        math.floor(info["gpu_memory_bytes"] / 2**30) if args.accelerator == "cuda" else 80
    )
    info["plan_gpu_memory_gb"] = gpu_memory_gb
    print(f"machine: {json.dumps(info)}", flush=True)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="sft-gpufig-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    builder = None
    try:
        prepared = []  # every case's project and DeepSpeed choice first: only models that will train are built
        for preset, cutoff in cases:
            try:
                prepared.append(prepare_case(work, args, preset, cutoff, gpu_memory_gb))
            except CaseError as exc:
                prepared.append(({"preset": preset, "cutoff": cutoff, "status": f"error: {exc}"}, None))
        to_build = list(dict.fromkeys(r["preset"] for r, _ in prepared if "status" not in r))
        builder = Builder(work, to_build, base_env(args.accelerator), deadline)
        for row, root in prepared:
            preset, cutoff = row["preset"], row["cutoff"]
            left = deadline - time.monotonic()
            if "status" not in row and left < MIN_CASE_S.get(preset, 120):
                row["status"] = f"skipped: time budget ({left:.0f} s left)"
            if "status" in row:
                rows.append(row)
                print(
                    f"[{time.monotonic() - start:6.0f} s] {preset} cutoff {cutoff}: {row['status']}"
                    + (f" ({row['deepspeed_choice']})" if row.get("deepspeed_choice") else ""),
                    flush=True,
                )
                continue
            print(f"[{time.monotonic() - start:6.0f} s] {preset} cutoff {cutoff} ...", flush=True)
            try:
                row = run_case(work, args, row, root, deadline, builder)
            except CaseError as exc:
                row["status"] = f"error: {exc}"
            rows.append(row)
            print(
                f"[{time.monotonic() - start:6.0f} s]   {row.get('status')}"
                + (f" ({row['deepspeed_choice']})" if row.get("deepspeed_choice") else ""),
                flush=True,
            )
            if row.get("log_tail"):
                print(row["log_tail"], flush=True)
    finally:
        if builder is not None:
            builder.stop()
        result = {
            "machine": info,
            "args": {k: str(v) for k, v in vars(args).items()},
            "elapsed_s": round(time.monotonic() - start, 1),
            "workdir": str(work),
            "rows": rows,
        }
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    print(f"total {result['elapsed_s']:.0f} s" + (f"; JSON: {args.json}" if args.json else ""))
    return (
        0
        if rows and all(r.get("status") == "ok" or str(r.get("status")).startswith("skipped") for r in rows)
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
