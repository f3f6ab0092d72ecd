"""The run log names the attention implementation the loaded model really uses, and Liger if patched in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sftpipe.training.attention import LOG_PREFIX, KernelReportCallback, kernels_in_use
from transformers import Qwen3Config, Qwen3ForCausalLM, TrainerControl, TrainerState, TrainingArguments

TINY = {
    "vocab_size": 64,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 16,
}


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_callback_logs_the_loaded_attention(impl, tmp_path, capsys):
    model = Qwen3ForCausalLM(Qwen3Config(**TINY, attn_implementation=impl))
    state = TrainerState()
    state.is_world_process_zero = True
    KernelReportCallback().on_train_begin(
        TrainingArguments(output_dir=str(tmp_path), use_cpu=True), state, TrainerControl(), model=model
    )
    line = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith(LOG_PREFIX)]
    assert json.loads(line[0][len(LOG_PREFIX) :]) == {
        "attn_implementation": impl,
        "liger_kernel": False,
        "model_class": "Qwen3ForCausalLM",
    }


def test_liger_imports_with_our_stack_and_is_detected():
    # A subprocess: Liger patches transformers' Qwen3 classes process-wide.
    code = (
        "from liger_kernel.transformers import apply_liger_kernel_to_qwen3\n"
        "from transformers import Qwen3Config, Qwen3ForCausalLM\n"
        "from sftpipe.training.attention import kernels_in_use\n"
        "apply_liger_kernel_to_qwen3()\n"
        f"print(kernels_in_use(Qwen3ForCausalLM(Qwen3Config(**{TINY!r})))['liger_kernel'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"
    assert kernels_in_use(object())["attn_implementation"] is None  # no config: reported, not a crash
