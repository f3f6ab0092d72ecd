"""The fail-fast probe's parts on real components: a real tiny model, a real arrow dataset, a real RLIMIT_AS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sftpipe.runs.ending import TERMINAL_STATUSES, final_status, status_from_stop_reason
from sftpipe.training import fail_fast


def test_probe_env_from_config() -> None:
    infra = {"fail_fast_probe": True, "accelerator": "cpu", "cpu_rank_memory_limit_mb": 64}
    assert fail_fast.probe_env(infra, {"cutoff_len": 2048}) == {
        "SFT_FAIL_FAST_PROBE": "1",
        "SFT_PROBE_MAX_LEN": "2048",
        "SFT_CPU_RANK_MEMORY_LIMIT_MB": "64",
    }
    # the memory limit is a CPU test knob: never applied to GPU runs
    assert fail_fast.probe_env(infra | {"accelerator": "cuda"}, {"cutoff_len": 8}) == {
        "SFT_FAIL_FAST_PROBE": "1",
        "SFT_PROBE_MAX_LEN": "8",
    }
    assert fail_fast.probe_env({"fail_fast_probe": False, "accelerator": "cuda"}, {"cutoff_len": 8}) == {}


def test_oom_stop_reason_maps_to_its_status(tmp_path: Path) -> None:
    stop = {
        "reason": "oom_at_max_length",
        "message": "out of memory at the maximum length: 1 x 8",
        "suggestion": "To make it fit: ...",
    }
    assert final_status(76, stop, None, finished=False) == "oom_at_max_length"
    assert final_status(76, stop, "interrupted", finished=False) == "oom_at_max_length"  # the probe's finding
    assert status_from_stop_reason(stop) == "oom_at_max_length"
    assert "oom_at_max_length" in TERMINAL_STATUSES
    assert fail_fast.oom_error(stop) == "out of memory at the maximum length: 1 x 8\nTo make it fit: ..."
    assert fail_fast.oom_error({"reason": "stop_file"}) is None


def test_longest_length_from_the_arrow_table() -> None:
    from datasets import Dataset
    from sftpipe.training.probe import longest_length

    class Loader:  # what the Trainer's DataLoader exposes: .dataset
        dataset = Dataset.from_dict({"input_ids": [[1] * 5, [1] * 17, [1] * 3]})

    assert longest_length(Loader(), 100) == (17, "dataset")
    assert longest_length(Loader(), 10) == (10, "dataset")  # LF truncates at cutoff_len anyway
    assert longest_length(object(), 64) == (64, "cutoff_len")  # no table: the cap
    with pytest.raises(ValueError, match="SFT_PROBE_MAX_LEN"):
        longest_length(object(), None)


def test_forward_backward_leaves_no_gradient_and_no_rng_trace() -> None:
    import torch
    from sftpipe.training.probe import forward_backward
    from transformers import AutoModelForCausalLM, Qwen3Config

    config = Qwen3Config(
        vocab_size=512,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
    )
    model = AutoModelForCausalLM.from_config(config)
    optimizer = torch.optim.AdamW(model.parameters())
    model.eval()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    forward_backward(model, optimizer, torch.device("cpu"), batch_size=2, length=64)
    assert torch.equal(torch.rand(3), expected_next)  # the global RNG did not move: same training draws
    assert all(p.grad is None for p in model.parameters())
    assert not model.training  # mode restored


def test_is_oom_only_for_allocation_failures() -> None:
    import torch
    from sftpipe.training.probe import is_oom

    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"))
    assert is_oom(MemoryError())
    assert not is_oom(RuntimeError("shape mismatch"))
    assert not is_oom(ValueError("out of memory"))


def test_cpu_memory_limit_makes_a_real_allocation_fail() -> None:
    # In a child process: the limit stays for the rest of a process's life.
    code = """
import torch
from sftpipe.training.probe import apply_cpu_memory_limit, is_oom
small = torch.ones(1 << 20)  # 4 MB fits in 64 MB of headroom
assert apply_cpu_memory_limit(64) is not None
small2 = torch.ones(1 << 20)
try:
    big = torch.ones(1 << 28)  # 1 GiB does not
except Exception as exc:
    print("oom" if is_oom(exc) else f"other {exc!r}")
else:
    print("fit")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.stdout.strip() == "oom", out.stderr[-2000:]
