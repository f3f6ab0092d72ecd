"""Training throughput of a run: tokens/s per GPU, model FLOPs utilisation (MFU), peak memory per rank.

The formula (docs/performance.md), per token of a sequence of length `s`:

    flops_per_token = 6 * N  +  6 * n_layers * d_attn * s

* `6 * N`: forward (2 FLOPs per weight: a multiply and an add) plus backward (twice the forward), the
  rule of Kaplan et al. 2020 (arXiv 2001.08361, section 2.1) and Chinchilla (Hoffmann et al. 2022).
  N counts the weights that take part in a matrix multiply: every transformer-layer weight plus the
  output projection (vocab x hidden, counted also when tied); the input embedding is a lookup. A
  mixture-of-experts layer counts only the experts a token is routed to.
* `6 * n_layers * d_attn * s`: the attention scores and their weighted sum, which grow with the
  sequence. PaLM (Chowdhery et al. 2022, appendix B) counts `12 * n_layers * H * Q * T` for full
  attention (H heads of width Q: d_attn = H * Q); causal masking computes half of it. This is the
  "model FLOPs" of MFU (no recomputation counted: checkpointing costs time, not model FLOPs).
* `s` is the mean sequence length of the samples seen (padded tokens / samples; cutoff_len with
  packing), a lower bound of the exact sum of s_i^2 / sum of s_i when lengths vary.

tokens/s per GPU = num_input_tokens_seen (transformers gathers it over all ranks; padding included)
/ train runtime / world size; the runtime is LF's, which includes the fail-fast probe (`probe_seconds`).
MFU = tokens/s per GPU * flops_per_token / peak FLOPs of one GPU, the peak being dense bf16 from
`PEAK_TFLOPS` by the GPU name in environment.json, or `infrastructure.peak_tflops_per_gpu` when set.
On CPU the peak is unknown: MFU is None unless set.

N and the shapes come from the model's config.json only (no weights are read).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sftpipe import paths
from sftpipe.runs.store import RunStore
from sftpipe.util.yamltext import read_yaml_mapping

# Dense (no sparsity) bf16 tensor-core peak per accelerator, TFLOPS, from the vendors' data sheets.
# Matched in order against the GPU name nvidia-smi reports: the more specific names come first.
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("GB200", 2500.0),  # NVIDIA GB200 NVL72 data sheet, per Blackwell GPU
    ("B200", 2250.0),  # NVIDIA HGX B200 data sheet
    ("H200", 989.4),  # NVIDIA H200 data sheet (SXM); same tensor cores as H100 SXM
    ("GH200", 989.4),  # Grace Hopper superchip: an H100 SXM-class GPU
    ("H100 PCIe", 756.0),  # NVIDIA H100 data sheet, PCIe
    ("H100 NVL", 835.0),  # NVIDIA H100 data sheet, NVL
    ("H100", 989.4),  # NVIDIA H100 data sheet, SXM ("NVIDIA H100 80GB HBM3")
    ("H800", 989.4),
    ("A100", 312.0),  # NVIDIA A100 data sheet (SXM and PCIe)
    ("A800", 312.0),
    ("L40S", 362.05),  # NVIDIA L40S data sheet
    ("L40", 181.05),  # NVIDIA L40 data sheet
    ("L4", 121.0),  # NVIDIA L4 data sheet
    ("A10G", 70.0),  # AWS g5 instances (A10G): NVIDIA figure quoted by AWS
    ("A10", 125.0),  # NVIDIA A10 data sheet
    ("MI300X", 1307.4),  # AMD Instinct MI300X data sheet
    ("MI250X", 383.0),  # AMD Instinct MI250X data sheet
)


class ThroughputError(ValueError):
    """A model config.json without the fields the FLOPs formula needs."""


def peak_tflops_for(gpu_name: str | None) -> float | None:
    """Dense bf16 peak of one accelerator by its reported name; None when unknown (CPU included)."""
    if not gpu_name:
        return None
    name = gpu_name.upper()
    for key, tflops in PEAK_TFLOPS:
        if re.search(rf"(?<![A-Z0-9]){re.escape(key.upper())}(?![0-9])", name):
            return tflops
    return None


def _req(cfg: dict[str, Any], key: str) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ThroughputError(f"config.json: {key} must be a positive integer, got {value!r}")
    return value


def model_shape(config: dict[str, Any]) -> dict[str, Any]:
    """Layers, attention width and matmul parameter count N of a decoder-only transformer config.json."""
    cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    hidden, layers = _req(cfg, "hidden_size"), _req(cfg, "num_hidden_layers")
    heads, vocab = _req(cfg, "num_attention_heads"), _req(cfg, "vocab_size")
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or hidden // heads
    bias = bool(cfg.get("attention_bias"))
    d_attn, d_kv = heads * head_dim, kv_heads * head_dim
    attention = hidden * d_attn + 2 * hidden * d_kv + d_attn * hidden
    if bias:
        attention += d_attn + 2 * d_kv
    n_experts = cfg.get("num_experts") or cfg.get("n_routed_experts") or 0
    if n_experts and cfg.get("moe_intermediate_size"):
        active = _req(cfg, "num_experts_per_tok")
        mlp = active * 3 * hidden * _req(cfg, "moe_intermediate_size") + hidden * n_experts  # + router
        shared = cfg.get("shared_expert_intermediate_size") or 0
        mlp += 3 * hidden * shared
    else:
        mlp = 3 * hidden * _req(cfg, "intermediate_size")  # gate, up, down (SwiGLU)
    norms = 2 * hidden + (2 * head_dim if cfg.get("model_type", "").startswith("qwen3") else 0)
    n_params = (
        layers * (attention + mlp + norms) + hidden + vocab * hidden
    )  # + final norm + output projection
    return {
        "n_params": n_params,
        "n_layers": layers,
        "d_attn": d_attn,
        "hidden_size": hidden,
        "vocab_size": vocab,
    }


def flops_per_token(n_params: int, n_layers: int, d_attn: int, seq_len: float) -> float:
    """Model FLOPs (forward + backward) per trained token: 6N + 6 * n_layers * d_attn * seq_len."""
    return 6.0 * n_params + 6.0 * n_layers * d_attn * seq_len


def throughput(
    tokens: float | None,
    runtime_s: float | None,
    world_size: int,
    shape: dict[str, Any] | None,
    seq_len: float | None,
    peak_tflops: float | None,
) -> dict[str, Any]:
    """tokens/s per GPU and MFU (None where an input is missing)."""
    out: dict[str, Any] = {
        "tokens_per_second_per_gpu": None,
        "model_flops_per_token": None,
        "achieved_tflops_per_gpu": None,
        "mfu": None,
        "peak_tflops_per_gpu": peak_tflops,
        "mean_seq_len": seq_len,
        "world_size": world_size,
        "n_params": shape["n_params"] if shape else None,
    }
    if not tokens or not runtime_s or runtime_s <= 0 or world_size <= 0:
        return out
    per_gpu = tokens / runtime_s / world_size
    out["tokens_per_second_per_gpu"] = round(per_gpu, 3)
    if shape is None or not seq_len:
        return out
    fpt = flops_per_token(shape["n_params"], shape["n_layers"], shape["d_attn"], seq_len)
    achieved = per_gpu * fpt / 1e12
    out["model_flops_per_token"] = fpt
    out["achieved_tflops_per_gpu"] = achieved
    if peak_tflops:
        out["mfu"] = achieved / peak_tflops
    return out


# ------------------------------------------------------------------ reading a run directory's records


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def find_model_config(run_dir: Path, model_path: str | None) -> Path | None:
    """The model's config.json: the base model named in the LF config (relative to the project root,
    found among the run directory's parents), else one saved into the run directory or a checkpoint."""
    run_dir = Path(run_dir)
    candidates: list[Path] = []
    if model_path:
        p = Path(model_path)
        candidates += (
            [p / "config.json"]
            if p.is_absolute()
            else [parent / p / "config.json" for parent in [Path.cwd(), *run_dir.resolve().parents]]
        )
    candidates.append(run_dir / "config.json")
    candidates += sorted(run_dir.glob("checkpoint-*/config.json"), reverse=True)
    return next((c for c in candidates if c.is_file()), None)


def peak_memory_per_rank(run_dir: Path) -> dict[str, Any]:
    """Per-rank peak GPU memory (GB) and peak RSS (GB) from rank_memory/rank_<R>.json; None on CPU."""
    ranks = RunStore(run_dir).read_rank_memory()
    gpu = [ranks[r].get("peak_gpu_memory_bytes") for r in sorted(ranks)]
    rss = [ranks[r].get("peak_rss_bytes") for r in sorted(ranks)]
    gpu_gb = [round(b / 1e9, 3) if isinstance(b, (int, float)) else None for b in gpu]
    return {
        "peak_gpu_memory_gb_per_rank": gpu_gb if any(v is not None for v in gpu_gb) else None,
        "peak_gpu_memory_gb": max((v for v in gpu_gb if v is not None), default=None),
        "peak_rss_gb": max((round(b / 1e9, 3) for b in rss if isinstance(b, (int, float))), default=None),
    }


def run_context(run_dir: Path) -> dict[str, Any]:
    """What the formula needs from a run's records (run.json, llamafactory_config.yaml, run_config.yaml,
    environment.json), read once: world size, model shape, batch shape, peak FLOPs, warnings."""
    run_dir = Path(run_dir)
    warnings: list[str] = []
    lf = read_yaml_mapping(run_dir / paths.LF_YAML)
    resolved = read_yaml_mapping(run_dir / paths.RESOLVED_CONFIG)
    infra = ((resolved.get("runtime_info") or {}).get("input") or {}).get("infrastructure") or {}
    world = ((RunStore(run_dir).read_run_record() or {}).get("world") or {}).get("world_size")
    if not isinstance(world, int) or world <= 0:
        world = int(infra.get("n_gpus_per_node", 1)) * int(infra.get("n_nodes", 1))
    shape = None
    config_path = find_model_config(run_dir, lf.get("model_name_or_path"))
    if config_path is None:
        warnings.append("model config.json not found: MFU unknown")
    else:
        try:
            shape = model_shape(_read_json(config_path) or {})
        except ThroughputError as exc:
            warnings.append(f"{config_path}: {exc}: MFU unknown")
    on_cpu = infra.get("accelerator", "cuda") == "cpu"
    gpus = (RunStore(run_dir).read_environment() or {}).get("gpus") or []
    gpu_name = gpus[0].get("name") if gpus and isinstance(gpus[0], dict) and not on_cpu else None
    peak = infra.get("peak_tflops_per_gpu")
    if peak is None:
        peak = peak_tflops_for(gpu_name)
        if peak is None and gpu_name:
            warnings.append(
                f"no peak FLOPs known for GPU {gpu_name!r}: set infrastructure.peak_tflops_per_gpu"
            )
    packed = bool(lf.get("packing") or lf.get("neat_packing"))
    samples_per_step = (
        int(lf.get("per_device_train_batch_size") or 1)
        * int(lf.get("gradient_accumulation_steps") or 1)
        * world
    )
    return {
        "world_size": world,
        "shape": shape,
        "peak_tflops": peak,
        "gpu_name": gpu_name,
        "packed_len": float(lf["cutoff_len"]) if packed and lf.get("cutoff_len") else None,
        "samples_per_step": samples_per_step,
        "warnings": warnings,
    }


def rates(
    ctx: dict[str, Any], tokens: float | None, runtime_s: float | None, steps: int | None
) -> dict[str, Any]:
    """throughput() for a run context: the mean sequence length is tokens / samples (steps x global batch)."""
    seq_len = ctx["packed_len"]
    if seq_len is None and tokens and steps:
        seq_len = round(tokens / (steps * ctx["samples_per_step"]), 1)
    return throughput(tokens, runtime_s, ctx["world_size"], ctx["shape"], seq_len, ctx["peak_tflops"])


def run_throughput(
    run_dir: Path, tokens: float | None, runtime_s: float | None, steps: int | None
) -> dict[str, Any]:
    """Throughput and per-rank peak memory of a run from its records and the given tokens, runtime, steps."""
    ctx = run_context(run_dir)
    out = rates(ctx, tokens, runtime_s, steps)
    out["gpu_name"] = ctx["gpu_name"]
    # LF's train_runtime includes the fail-fast probe's one forward + backward at train begin: its seconds are
    # given next to the rate (a one-off; on a long run it vanishes, on a 10-step benchmark it does not).
    out["probe_seconds"] = (RunStore(run_dir).read_probe() or {}).get("seconds")
    out.update(peak_memory_per_rank(run_dir))
    out["warnings"] = list(ctx["warnings"])
    return out
