"""throughput.py: the FLOPs formula and MFU on hand-computed numbers, N against a real model's parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sftpipe.runs.store import RunStore
from sftpipe.runs.throughput import (
    ThroughputError,
    flops_per_token,
    model_shape,
    peak_memory_per_rank,
    peak_tflops_for,
    run_throughput,
    throughput,
)

QWEN3_8B = {
    "model_type": "qwen3",
    "hidden_size": 4096,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 12288,
    "vocab_size": 151936,
    "tie_word_embeddings": False,
    "attention_bias": False,
}
TINY = {
    "model_type": "qwen3",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 128,
    "vocab_size": 6144,
    "tie_word_embeddings": True,
    "attention_bias": False,
}


def test_qwen3_8b_matmul_parameters_by_hand() -> None:
    # per layer: q 4096*4096 + k,v 2*4096*1024 + o 4096*4096 + mlp 3*4096*12288 + norms 2*4096 + 2*128
    layer = 4096 * 4096 * 2 + 2 * 4096 * 1024 + 3 * 4096 * 12288 + 2 * 4096 + 2 * 128
    assert layer == 192_946_432
    shape = model_shape(QWEN3_8B)
    # 36 layers + final norm + output projection 151936*4096 (Qwen's card: 6.95B non-embedding)
    assert shape["n_params"] == 36 * layer + 4096 + 151936 * 4096 == 7_568_405_504
    assert (shape["n_layers"], shape["d_attn"]) == (36, 4096)


def test_flops_per_token_6n_plus_causal_attention() -> None:
    # 6 * 7,568,380,928 + 6 * 36 * 4096 * 8192 = 45,410,433,024 + 7,247,757,312
    assert flops_per_token(7_568_405_504, 36, 4096, 8192) == 52_658_190_336
    assert flops_per_token(1_000, 2, 10, 0) == 6_000


def test_mfu_by_hand() -> None:
    shape = {"n_params": 1_000_000_000, "n_layers": 10, "d_attn": 1000}
    out = throughput(
        tokens=1_000_000, runtime_s=100.0, world_size=8, shape=shape, seq_len=1000.0, peak_tflops=500.0
    )
    assert out["tokens_per_second_per_gpu"] == 1250.0  # 1e6 / 100 s / 8 GPUs
    assert out["model_flops_per_token"] == 6.06e9  # 6e9 + 6 * 10 * 1000 * 1000
    assert out["achieved_tflops_per_gpu"] == pytest.approx(7.575)  # 1250 * 6.06e9 / 1e12
    assert out["mfu"] == pytest.approx(7.575 / 500)
    cpu = throughput(1_000_000, 100.0, 8, shape, 1000.0, peak_tflops=None)
    assert cpu["tokens_per_second_per_gpu"] == 1250.0 and cpu["mfu"] is None
    assert throughput(None, 100.0, 8, shape, 1000.0, 500.0)["tokens_per_second_per_gpu"] is None
    assert throughput(10, 0.0, 8, shape, 1000.0, 500.0)["mfu"] is None


def test_n_matches_a_real_model_minus_the_input_embedding() -> None:
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    for tied in (True, False):
        fields = {k: v for k, v in TINY.items() if k != "model_type"} | {"tie_word_embeddings": tied}
        config = Qwen3Config(**fields)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        total = sum(p.numel() for p in model.parameters())  # tied weights are counted once
        embedding = TINY["vocab_size"] * TINY["hidden_size"]
        expected = total if tied else total - embedding  # the output projection counts, the lookup does not
        assert model_shape(config.to_dict())["n_params"] == expected


def test_moe_counts_only_routed_experts() -> None:
    moe = {
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 4,
        "vocab_size": 10,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 3,
    }
    # attention 8*8*4 = 256; experts 2 * 3*8*3 = 144; router 8*4 = 32; norms 16; final norm 8; head 80
    assert model_shape(moe)["n_params"] == 256 + 144 + 32 + 16 + 8 + 80


def test_bad_config_is_a_clear_error() -> None:
    with pytest.raises(ThroughputError, match="num_hidden_layers"):
        model_shape({"hidden_size": 8, "num_attention_heads": 2, "vocab_size": 10, "intermediate_size": 4})


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.05),
        ("NVIDIA L4", 121.0),
        ("NVIDIA A10", 125.0),
        ("NVIDIA GH200 480GB", 989.4),
        ("Tesla V100-SXM2-32GB", None),
        (None, None),
        ("", None),
    ],
)
def test_peak_table_by_gpu_name(name: str | None, tflops: float | None) -> None:
    assert peak_tflops_for(name) == tflops


def _run_dir(tmp: Path, accelerator: str, gpu: str | None, peak: float | None = None) -> Path:
    root = tmp / "proj"
    model = root / "artifacts/base_models/m"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps(QWEN3_8B))
    run = root / "artifacts/model/r"
    run.mkdir(parents=True)
    (run / "llamafactory_config.yaml").write_text(
        "model_name_or_path: artifacts/base_models/m\nper_device_train_batch_size: 1\n"
        "gradient_accumulation_steps: 2\ncutoff_len: 8192\n"
    )
    (run / "run_config.yaml").write_text(
        "runtime_info:\n  input:\n    infrastructure:\n"
        f"      accelerator: {accelerator}\n      peak_tflops_per_gpu: {'null' if peak is None else peak}\n"
    )
    (run / "run.json").write_text(json.dumps({"world": {"world_size": 8}}))
    (run / "environment.json").write_text(json.dumps({"gpus": [{"name": gpu}] if gpu else []}))
    return run


def test_run_records_give_world_model_and_peak(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, "cuda", "NVIDIA H100 80GB HBM3")
    # 10 steps x 1 x 2 x 8 = 160 samples of 8192 tokens; 100 s
    out = run_throughput(run, tokens=160 * 8192, runtime_s=100.0, steps=10)
    assert out["mean_seq_len"] == 8192.0 and out["world_size"] == 8
    assert out["tokens_per_second_per_gpu"] == 160 * 8192 / 100 / 8
    assert out["mfu"] == pytest.approx(1638.4 * 52_658_190_336 / 989.4e12)
    assert out["peak_gpu_memory_gb"] is None and out["warnings"] == []
    assert out["probe_seconds"] is None  # no fail-fast probe record
    RunStore(run).write_probe({"ok": True, "seconds": 2.5})
    assert run_throughput(run, 160 * 8192, 100.0, 10)["probe_seconds"] == 2.5  # included in the runtime
    overridden = run_throughput(
        _run_dir(tmp_path / "b", "cuda", "NVIDIA H100 80GB HBM3", peak=1000.0), 160 * 8192, 100.0, 10
    )
    assert overridden["mfu"] == pytest.approx(1638.4 * 52_658_190_336 / 1000e12)
    cpu = run_throughput(_run_dir(tmp_path / "c", "cpu", None), 160 * 8192, 100.0, 10)
    assert cpu["mfu"] is None and cpu["tokens_per_second_per_gpu"] == 1638.4
    unknown = run_throughput(_run_dir(tmp_path / "d", "cuda", "Some New GPU"), 160 * 8192, 100.0, 10)
    assert unknown["mfu"] is None and "peak_tflops_per_gpu" in unknown["warnings"][0]


def test_peak_memory_per_rank(tmp_path: Path) -> None:
    d = tmp_path / "rank_memory"
    d.mkdir()

    def rank(r: int, gpu: float | None, rss: float) -> str:
        return json.dumps({"rank": r, "peak_gpu_memory_bytes": gpu, "peak_rss_bytes": rss})

    (d / "rank_0.json").write_text(rank(0, 70e9, 9e9))
    (d / "rank_1.json").write_text(rank(1, 72.5e9, 8e9))
    assert peak_memory_per_rank(tmp_path) == {
        "peak_gpu_memory_gb_per_rank": [70.0, 72.5],
        "peak_gpu_memory_gb": 72.5,
        "peak_rss_gb": 9.0,
    }
    (d / "rank_0.json").write_text(rank(0, None, 1e9))
    (d / "rank_1.json").write_text("{not json")
    assert peak_memory_per_rank(tmp_path) == {
        "peak_gpu_memory_gb_per_rank": None,
        "peak_gpu_memory_gb": None,
        "peak_rss_gb": 1.0,
    }
