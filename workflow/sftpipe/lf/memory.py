"""Per-GPU memory plan of a training run, from the resolved config and the model's config.json alone.

No weights and no torch: the plan is arithmetic over the architecture (hidden size, layers, heads,
vocabulary), the training keys LLaMA-Factory acts on (cutoff_len, batch size, bf16, gradient
checkpointing, use_unsloth_gc, enable_liger_kernel, flash_attn) and the DeepSpeed JSON (ZeRO stage and
offload). Every formula, with its source, is in docs/memory.md; GB here means 10^9 bytes.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftpipe.config import RunConfig

GB = 1e9
# CUDA context, NCCL communicators, cuBLAS workspaces and allocator fragmentation: not modelled
# term by term, so a fixed reserve (docs/memory.md).
FRAMEWORK_RESERVE_GB = 4.0
# Above this cutoff on CUDA without Liger, the fp32 logits alone are tens of GB (issue 10).
LONG_CONTEXT_TOKENS = 32768
OFFLOAD_DS_CONFIG = "artifacts/training_config/deepspeed/ds_z3_offload_config.json"


class MemoryPlanError(ValueError):
    """The plan cannot be made: no readable config.json, or an architecture it does not understand."""


@dataclass(frozen=True)
class Arch:
    """The architecture numbers the plan needs, read from config.json."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int  # per token actually computed (MoE: experts per token x expert width)
    vocab: int
    tied: bool
    params: int  # every parameter, all experts included
    largest_layer_params: int

    @classmethod
    def from_config(cls, conf: dict[str, Any]) -> Arch:
        """Dense or MoE decoder (llama/qwen2/qwen3/mistral family) from a transformers config dict."""
        conf = conf.get("text_config", conf)  # multimodal wrappers keep the LM under text_config
        try:
            h, n_layers = int(conf["hidden_size"]), int(conf["num_hidden_layers"])
            heads, vocab = int(conf["num_attention_heads"]), int(conf["vocab_size"])
            inter = int(conf.get("intermediate_size") or 0)
        except (KeyError, TypeError, ValueError) as exc:
            raise MemoryPlanError(f"config.json lacks a decoder architecture key: {exc}") from None
        if min(h, n_layers, heads, vocab) <= 0:
            raise MemoryPlanError(
                "config.json: hidden_size, num_hidden_layers, num_attention_heads and "
                "vocab_size must be positive"
            )
        kv = int(conf.get("num_key_value_heads") or heads)
        d = int(conf.get("head_dim") or h // heads)
        tied = bool(conf.get("tie_word_embeddings", False))
        attn = h * heads * d + 2 * h * kv * d + heads * d * h + 2 * h + 2 * d  # q,k,v,o + 2 norms + q/k norms
        if conf.get("attention_bias"):
            attn += heads * d + 2 * kv * d
        experts = int(conf.get("num_experts") or conf.get("num_local_experts") or 0)
        if experts:
            width = int(conf.get("moe_intermediate_size") or inter)
            mlp = experts * 3 * h * width + h * experts  # experts + router
            per_token_inter = int(conf.get("num_experts_per_tok") or 1) * width
        else:
            mlp, per_token_inter = 3 * h * inter, inter  # SwiGLU: gate, up, down
        if per_token_inter <= 0:
            raise MemoryPlanError("config.json has no intermediate_size")
        layer = attn + mlp
        embed = vocab * h
        params = n_layers * layer + embed * (1 if tied else 2) + h
        return cls(h, n_layers, heads, kv, d, per_token_inter, vocab, tied, params, max(layer, embed))


def model_config_path(cfg: RunConfig, override: Path | None = None) -> Path:
    """config.json of the model: `override` (a dir or file), the model dir, else the local Hub cache."""
    candidates: list[Path] = []
    if override is not None:
        candidates.append(override / "config.json" if override.is_dir() else override)
    else:
        local = Path(cfg.model_path)
        local = local if local.is_absolute() else cfg.root / local
        candidates.append(local / "config.json")
    for path in candidates:
        if path.is_file():
            return path
    if override is None and "/" in cfg.model_path and not Path(cfg.root / cfg.model_path).exists():
        try:  # a Hub id already downloaded here: the cache has its config.json, no network needed
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(cfg.model_path, "config.json")
            if isinstance(cached, str):
                return Path(cached)
        except Exception:  # noqa: BLE001, S110 - a broken cache is the same finding as no cache
            pass
    raise MemoryPlanError(
        f"no config.json for model {cfg.model_path!r} (looked at {candidates[0]}); "
        "point model_name_or_path at a directory holding it (weights are not needed)"
    )


def read_arch(path: Path) -> Arch:
    """The architecture from a model's config.json; MemoryPlanError when unreadable."""
    try:
        conf = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MemoryPlanError(f"{path}: unreadable config.json ({exc})") from None
    if not isinstance(conf, dict):
        raise MemoryPlanError(f"{path}: expected a JSON object")
    return Arch.from_config(conf)


def zero_settings(cfg: RunConfig) -> dict[str, Any]:
    """ZeRO stage and offload targets from the DeepSpeed JSON; stage 0 without DeepSpeed."""
    ds = cfg.training.get("deepspeed") or ""
    if not ds:
        return {"stage": 0, "offload_optimizer": False, "offload_param": False}
    path = Path(ds) if Path(ds).is_absolute() else cfg.root / ds
    try:
        zero = json.loads(path.read_text()).get("zero_optimization", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise MemoryPlanError(f"training.deepspeed: cannot read {ds!r} ({exc})") from None

    def offloaded(key: str) -> bool:
        section = zero.get(key)
        return isinstance(section, dict) and str(section.get("device", "none")).lower() in ("cpu", "nvme")

    if not isinstance(zero, dict):
        raise MemoryPlanError(f"training.deepspeed: {ds!r}: zero_optimization must be an object")

    try:
        stage = int(zero.get("stage", 0))
    except (TypeError, ValueError):
        raise MemoryPlanError(
            f"training.deepspeed: {ds!r}: zero_optimization.stage is not a number"
        ) from None
    return {
        "stage": stage,
        "offload_optimizer": offloaded("offload_optimizer"),
        "offload_param": offloaded("offload_param"),
        "file": ds,
    }


def _plan(arch: Arch, train: dict[str, Any], infra: dict[str, Any], zero: dict[str, Any]) -> dict[str, Any]:
    n_gpus = infra["n_gpus_per_node"] * infra["n_nodes"]
    s, b = int(train["cutoff_len"]), int(train.get("per_device_train_batch_size") or 1)
    tokens = s * b
    half = bool(train.get("bf16") or train.get("fp16"))
    act_bytes = 2 if half else 4
    gc = not train.get("disable_gradient_checkpointing", False)
    unsloth = gc and bool(train.get("use_unsloth_gc", False))
    liger = bool(train.get("enable_liger_kernel", False))
    attn = {"disabled": "eager", "fa2": "flash_attention_2"}.get(train.get("flash_attn", "auto"), "sdpa")
    h, psi, stage = arch.hidden, arch.params, zero["stage"]

    # Model states, ZeRO paper (Rajbhandari et al. 2020) as in DeepSpeed's estimate_zero{2,3}_model_states_
    # mem_needs: 16-bit params 2 + grads 2 + fp32 master/Adam m/v 12 bytes per param (fp32: 4 + 4 + 8),
    # partitioned over the GPUs from stage 1 (optimizer), 2 (+grads), 3 (+params); offloaded parts leave.
    p_b, g_b, o_b = (2, 2, 12) if half else (4, 4, 8)
    params = psi * p_b / (n_gpus if stage >= 3 else 1)
    grads = psi * g_b / (n_gpus if stage >= 2 else 1)
    optim = psi * o_b / (n_gpus if stage >= 1 else 1)
    if zero["offload_optimizer"] and stage >= 1:
        optim = 0.0
        grads = 0.0 if stage >= 2 else grads  # ZeRO-Offload moves the gradient partitions with it
    if zero["offload_param"] and stage >= 3:
        params = 0.0

    # Activations, Korthikanti et al. 2022 (sec. 4.1) re-counted for a pre-norm GQA + SwiGLU layer without
    # dropout: bytes kept for backward per token = act_bytes x (2h norms' inputs + 2h norms' outputs
    # + q, k, v, attention output + 4 x intermediate). Full recomputation keeps only the layer input
    # (their "2sbh"), and unsloth GC moves that to host memory, leaving ~2 layers' worth in flight.
    qkvo = 2 * arch.heads * arch.head_dim + 2 * arch.kv_heads * arch.head_dim
    per_token_layer = act_bytes * (4 * h + qkvo + 4 * arch.intermediate)
    quadratic = 0.0
    if attn == "eager":  # scores (16-bit) + fp32 softmax + probs (16-bit): 8 bytes x heads x s^2
        quadratic = 8.0 * b * arch.heads * s * s
    full_layer = tokens * per_token_layer + quadratic
    if gc:
        checkpointed = act_bytes * tokens * h * (2 if unsloth else arch.layers)
        # Backward of one checkpointed layer re-materializes its activations, plus the two largest
        # gradients in flight (input and output of the MLP's widest matmul).
        working = full_layer + 2 * act_bytes * tokens * max(arch.intermediate, h)
    else:
        checkpointed = arch.layers * full_layer
        working = 2 * act_bytes * tokens * max(arch.intermediate, h)

    # Loss: transformers' ForCausalLMLoss upcasts the 16-bit logits to fp32 and log_softmax writes a
    # fp32 result: 2 + 4 + 4 bytes per token x vocab at the peak. Liger's fused linear cross-entropy
    # never builds them: chunks of ~tokens*h/V rows, i.e. ~tokens x h fp32 logits, plus the 16-bit
    # grad of the hidden states and an fp32 grad of the lm_head weight.
    if liger:
        logits = tokens * h * 4 + tokens * h * act_bytes + arch.vocab * h * 4
    else:
        logits = tokens * arch.vocab * (act_bytes + 4 + 4)

    # ZeRO-3 gathers whole layers: DeepSpeed's estimator counts 4 x largest_layer_params (16-bit params
    # and grads of the largest gathered module), plus the prefetch and reduce buckets HF sets to
    # 0.9 h^2 and h^2 elements ("auto").
    buckets = 0.0
    if stage >= 3:
        buckets = 4.0 * arch.largest_layer_params + 2 * (0.9 + 1.0) * h * h

    breakdown = {
        "params": params,
        "grads": grads,
        "optimizer": optim,
        "activations_checkpointed": checkpointed,
        "recompute_working_set": working,
        "logits_loss": logits,
        "zero3_buckets": buckets,
        "framework_reserve": FRAMEWORK_RESERVE_GB * GB,
    }
    breakdown_gb = {k: round(v / GB, 2) for k, v in breakdown.items()}
    per_gpu = round(sum(breakdown.values()) / GB, 2)
    limit = float(infra.get("gpu_memory_gb", 80))
    return {
        "per_gpu_gb": per_gpu,
        "gpu_memory_gb": limit,
        "fits": per_gpu <= limit,
        "headroom_gb": round(limit - per_gpu, 2),
        "breakdown": breakdown_gb,
        "model_states_gb": round((params + grads + optim) / GB, 2),
        "inputs": {
            "params": psi,
            "params_b": round(psi / 1e9, 3),
            "tokens_per_micro_batch": tokens,
            "cutoff_len": s,
            "per_device_train_batch_size": b,
            "gpus": n_gpus,
            "zero_stage": stage,
            "offload_optimizer": zero["offload_optimizer"],
            "offload_param": zero["offload_param"],
            "gradient_checkpointing": gc,
            "use_unsloth_gc": unsloth,
            "enable_liger_kernel": liger,
            "attention": attn,
            "dtype_bytes": act_bytes,
        },
    }


def _candidates(
    arch: Arch, train: dict[str, Any], infra: dict[str, Any], zero: dict[str, Any]
) -> list[tuple[str, str, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """The ranked changes (issue 10's order) not already on: (change, why, train, infra, zero)."""
    out = []
    if not train.get("enable_liger_kernel"):
        out.append(
            (
                "training.enable_liger_kernel: true",
                "fused linear cross-entropy: no full-vocab logits",
                {**train, "enable_liger_kernel": True},
                infra,
                zero,
            )
        )
    if not train.get("disable_gradient_checkpointing") and not train.get("use_unsloth_gc"):
        out.append(
            (
                "training.use_unsloth_gc: true",
                "checkpointed activations offloaded to host memory",
                {**train, "use_unsloth_gc": True},
                infra,
                zero,
            )
        )
    if not (zero["stage"] >= 3 and zero["offload_optimizer"] and zero["offload_param"]):
        out.append(
            (
                f"training.deepspeed: {OFFLOAD_DS_CONFIG}",
                "ZeRO-3 with optimizer and params on CPU",
                train,
                infra,
                {**zero, "stage": 3, "offload_optimizer": True, "offload_param": True},
            )
        )
    for factor in (2, 4, 8):  # the fewest nodes that fit, else 8x
        more = {**infra, "n_nodes": infra["n_nodes"] * factor}
        if _plan(arch, train, more, zero)["fits"] or factor == 8:
            out.append(
                (
                    f"infrastructure.n_nodes: {more['n_nodes']}",
                    f"{factor}x the GPUs: model states spread thinner",
                    train,
                    more,
                    zero,
                )
            )
            break
    cut = int(train["cutoff_len"]) // 2
    while cut >= 1024:  # the longest power-of-two fraction that fits, else 1024
        shorter = {**train, "cutoff_len": cut}
        if _plan(arch, shorter, infra, zero)["fits"] or cut // 2 < 1024:
            out.append(
                (
                    f"training.cutoff_len: {cut}",
                    "shorter samples (longer ones are truncated or dropped)",
                    shorter,
                    infra,
                    zero,
                )
            )
            break
        cut //= 2
    return out


def memory_plan(cfg: RunConfig, model_config: Path | None = None) -> dict[str, Any]:
    """Per-GPU estimate (GB) with its breakdown, the limit, whether it fits and, if not, ranked fixes.

    `model_config` overrides where config.json is read from (a dir or the file). Each suggestion is
    re-planned alone (`per_gpu_gb`, `fits`) and together with every higher-ranked one
    (`cumulative_per_gpu_gb`, `cumulative_fits`). Raises MemoryPlanError when no plan can be made.
    """
    path = model_config_path(cfg, model_config)
    arch = read_arch(path)
    train, infra = copy.deepcopy(cfg.training), copy.deepcopy(cfg.infrastructure)
    zero = zero_settings(cfg)
    plan = _plan(arch, train, infra, zero)
    plan["model"] = {
        "config": str(path),
        "hidden_size": arch.hidden,
        "num_hidden_layers": arch.layers,
        "vocab_size": arch.vocab,
    }
    plan["suggestions"] = []
    if plan["fits"]:
        return plan
    cum_train, cum_infra, cum_zero = train, infra, zero
    for change, why, t, i, z in _candidates(arch, train, infra, zero):
        alone = _plan(arch, t, i, z)
        cum_train = {**cum_train, **{k: v for k, v in t.items() if train.get(k) != v}}
        cum_infra = {**cum_infra, **{k: v for k, v in i.items() if infra.get(k) != v}}
        cum_zero = z if z is not zero else cum_zero
        together = _plan(arch, cum_train, cum_infra, cum_zero)
        plan["suggestions"].append(
            {
                "change": change,
                "why": why,
                "per_gpu_gb": alone["per_gpu_gb"],
                "fits": alone["fits"],
                "cumulative_per_gpu_gb": together["per_gpu_gb"],
                "cumulative_fits": together["fits"],
            }
        )
    return plan


def format_plan(plan: dict[str, Any]) -> str:
    """Human-readable plan: the breakdown, the total against the limit, and the ranked suggestions."""
    i = plan["inputs"]
    lines = [
        f"memory plan per GPU: {i['params_b']}B params, {i['tokens_per_micro_batch']} tokens/micro-batch "
        f"(cutoff_len {i['cutoff_len']} x batch {i['per_device_train_batch_size']}), {i['gpus']} GPU(s), "
        f"ZeRO-{i['zero_stage']}"
        + (" +offload optimizer" if i["offload_optimizer"] else "")
        + (" +offload params" if i["offload_param"] else "")
        + f", attention {i['attention']}, liger {'on' if i['enable_liger_kernel'] else 'off'}, "
        f"gradient checkpointing {'on' if i['gradient_checkpointing'] else 'off'}"
        + (" (unsloth offload)" if i["use_unsloth_gc"] else "")
    ]
    for key, gb in plan["breakdown"].items():
        lines.append(f"  {key:<26}{gb:>9.2f} GB")
    verdict = "fits" if plan["fits"] else "DOES NOT FIT"
    lines.append(
        f"  {'total':<26}{plan['per_gpu_gb']:>9.2f} GB of {plan['gpu_memory_gb']:g} GB "
        f"(infrastructure.gpu_memory_gb): {verdict}"
    )
    if plan["suggestions"]:
        lines.append("suggestions (ranked; alone -> with all above):")
        for n, sug in enumerate(plan["suggestions"], 1):
            lines.append(
                f"  {n}. {sug['change']}: {sug['per_gpu_gb']:.1f} GB "
                f"{'fits' if sug['fits'] else 'no'} -> {sug['cumulative_per_gpu_gb']:.1f} GB "
                f"{'fits' if sug['cumulative_fits'] else 'no'}  ({sug['why']})"
            )
    return "\n".join(lines)


def memory_warnings(cfg: RunConfig) -> list[str]:
    """Validation warnings: cutoff_len > 32768 on CUDA without Liger, with the plan's numbers."""
    train = cfg.training
    if (
        cfg.infrastructure["accelerator"] != "cuda"
        or train["cutoff_len"] <= LONG_CONTEXT_TOKENS
        or train.get("enable_liger_kernel")
    ):
        return []
    head = (
        f"runtime_info.input.training.enable_liger_kernel: false with cutoff_len {train['cutoff_len']} "
        f"> {LONG_CONTEXT_TOKENS} on cuda"
    )
    try:
        plan = memory_plan(cfg)
    except MemoryPlanError as exc:
        return [f"{head}: the full-vocabulary fp32 logits alone are large (no memory plan: {exc})"]
    liger = next((s for s in plan["suggestions"] if "enable_liger_kernel" in s["change"]), None)
    text = (
        f"{head}: logits/loss take {plan['breakdown']['logits_loss']:.1f} GB per GPU, "
        f"the plan {plan['per_gpu_gb']:.1f} GB of {plan['gpu_memory_gb']:g} GB"
    )
    if liger:
        text += f"; with Liger {liger['per_gpu_gb']:.1f} GB"
    return [text + " (sft memory)"]
