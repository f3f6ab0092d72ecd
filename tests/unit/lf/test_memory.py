"""Memory plan: Qwen3-8B-shaped config.json only (no weights), the issue-10 "done means" cases."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from sftpipe.config import RunConfig, load
from sftpipe.lf.memory import MemoryPlanError, format_plan, memory_plan, memory_warnings, read_arch

REPO = Path(__file__).resolve().parents[3]
QWEN3_8B = REPO / "tests/fixtures/models/qwen3-8b"


def profile(**changes) -> RunConfig:
    """The shipped qwen3-8b-128k profile on the fixture model, with training/infrastructure keys changed."""
    cfg = load("config/config.yaml", root=REPO, variant="qwen3-8b-128k")
    data = copy.deepcopy(cfg.data)
    inp = data["runtime_info"]["input"]
    inp["model"]["model_name_or_path"] = str(QWEN3_8B)
    for key, value in changes.items():
        (inp["infrastructure"] if key in inp["infrastructure"] else inp["training"])[key] = value
    return RunConfig(data, REPO)


def test_parameter_count_matches_transformers_on_meta_device():
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(QWEN3_8B))
    assert read_arch(QWEN3_8B / "config.json").params == sum(p.numel() for p in model.parameters())
    assert list(QWEN3_8B.iterdir()) == [QWEN3_8B / "config.json"]  # config.json only: no weights needed


def test_profile_as_shipped_fits_on_80gb():
    plan = memory_plan(profile())
    assert plan["fits"] and plan["per_gpu_gb"] <= plan["gpu_memory_gb"] == 80
    assert plan["suggestions"] == []
    assert set(plan["breakdown"]) == {
        "params",
        "grads",
        "optimizer",
        "activations_checkpointed",
        "recompute_working_set",
        "logits_loss",
        "zero3_buckets",
        "framework_reserve",
    }
    assert plan["per_gpu_gb"] == pytest.approx(sum(plan["breakdown"].values()), abs=0.05)


def test_131072_without_liger_does_not_fit_and_suggests_liger_first():
    plan = memory_plan(profile(enable_liger_kernel=False, use_unsloth_gc=False, n_nodes=1))
    assert not plan["fits"]
    assert plan["breakdown"]["logits_loss"] > 150  # 131072 x 151936 x (2 + 4 + 4) bytes ~ 199 GB
    first = plan["suggestions"][0]
    assert first["change"] == "training.enable_liger_kernel: true"
    assert first["per_gpu_gb"] < plan["per_gpu_gb"] - 150
    assert any(s["cumulative_fits"] for s in plan["suggestions"])  # the ranked list reaches a fitting run
    assert "DOES NOT FIT" in format_plan(plan) and "1. training.enable_liger_kernel" in format_plan(plan)
    # The shipped profile without Liger (unsloth offload and 16 GPUs kept) does not fit either:
    assert not memory_plan(profile(enable_liger_kernel=False))["fits"]


def test_8192_fits_even_without_liger():
    assert memory_plan(profile(cutoff_len=8192, enable_liger_kernel=False, use_unsloth_gc=False, n_nodes=1))[
        "fits"
    ]


def test_zero3_model_states_8b_on_8_gpus_about_16gb():
    plan = memory_plan(profile(n_nodes=1))
    assert plan["inputs"]["gpus"] == 8 and plan["inputs"]["zero_stage"] == 3
    assert plan["model_states_gb"] == pytest.approx(16.4, abs=0.2)  # 16 bytes x 8.19e9 / 8
    assert memory_plan(profile(n_nodes=2))["model_states_gb"] == pytest.approx(8.2, abs=0.1)


def test_offload_and_zero_stage_and_eager_attention():
    offload = memory_plan(profile(deepspeed="artifacts/training_config/deepspeed/ds_z3_offload_config.json"))
    assert offload["breakdown"]["optimizer"] == offload["breakdown"]["params"] == 0
    z2 = memory_plan(
        profile(deepspeed="artifacts/training_config/deepspeed/ds_z2_config.json", cutoff_len=8192, n_nodes=1)
    )
    assert z2["breakdown"]["params"] == pytest.approx(16.4, abs=0.1)  # ZeRO-2 replicates the 16-bit params
    assert z2["breakdown"]["zero3_buckets"] == 0
    sdpa = memory_plan(profile(cutoff_len=8192))["breakdown"]["recompute_working_set"]
    eager = memory_plan(profile(cutoff_len=8192, flash_attn="disabled"))["breakdown"]["recompute_working_set"]
    assert eager > sdpa + 8 * 32 * 8192**2 / 1e9 - 0.1  # the s^2 scores of one layer
    no_gc = memory_plan(profile(cutoff_len=8192, disable_gradient_checkpointing=True, use_unsloth_gc=False))
    assert no_gc["breakdown"]["activations_checkpointed"] > 36 * 8192 * 4096 * 2 * 10 / 1e9


def test_memory_warnings_long_context_on_cuda_without_liger():
    (warning,) = memory_warnings(profile(enable_liger_kernel=False))
    assert "cutoff_len 131072 > 32768" in warning and "logits/loss take 199.2 GB" in warning
    assert "with Liger" in warning
    assert memory_warnings(profile()) == []
    assert memory_warnings(profile(enable_liger_kernel=False, cutoff_len=32768)) == []


def test_missing_or_bad_model_config_is_a_clear_error(tmp_path):
    with pytest.raises(MemoryPlanError, match="no config.json"):
        memory_plan(profile(), model_config=tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(MemoryPlanError, match="unreadable config.json"):
        memory_plan(profile(), model_config=tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(MemoryPlanError, match="lacks a decoder architecture key"):
        memory_plan(profile(), model_config=tmp_path)


def test_bad_architecture_or_deepspeed_json_is_a_clear_error(tmp_path):
    conf = json.loads((QWEN3_8B / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**conf, "num_attention_heads": 0, "head_dim": None}))
    with pytest.raises(MemoryPlanError, match="must be positive"):
        memory_plan(profile(), model_config=tmp_path)
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": "three"}}))
    with pytest.raises(MemoryPlanError, match="stage is not a number"):
        memory_plan(profile(deepspeed=str(tmp_path / "ds.json")))
    (tmp_path / "ds.json").write_text("[1, 2]")
    with pytest.raises(MemoryPlanError, match="cannot read"):
        memory_plan(profile(deepspeed=str(tmp_path / "ds.json")))
