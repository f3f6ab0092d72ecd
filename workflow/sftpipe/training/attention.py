"""Say in the run log which attention implementation and kernels the model really trains with.

LLaMA-Factory falls back silently: `flash_attn: fa2` without the flash-attn package only logs a
warning and the model runs sdpa (or eager). Once the Trainer has the model, rank 0 prints one line
with `config._attn_implementation` and whether Liger's fused loss is patched in.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from transformers import TrainerCallback

LOG_PREFIX = "[sftpipe] kernels: "


def kernels_in_use(model: Any) -> dict[str, Any]:
    """Attention implementation from the loaded model's config; Liger detected by its patched forward."""
    config = getattr(model, "config", None)
    forward = getattr(type(model), "forward", None)
    return {
        "attn_implementation": getattr(config, "_attn_implementation", None),
        "liger_kernel": bool(
            forward is not None and getattr(forward, "__module__", "").startswith("liger_kernel")
        ),
        "model_class": type(model).__name__,
    }


class KernelReportCallback(TrainerCallback):
    """Prints `[sftpipe] kernels: {...}` (JSON) on the world-zero rank when training begins."""

    def on_train_begin(self, args, state, control, **kwargs):
        model = kwargs.get("model")
        if model is not None and state.is_world_process_zero:
            print(LOG_PREFIX + json.dumps(kernels_in_use(model)), file=sys.stderr, flush=True)
        return control
