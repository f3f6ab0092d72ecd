"""Per-rank peak memory of a training run: `<output_dir>/rank_memory/rank_<R>.json`, read by sftpipe.runs.throughput.

Each rank rewrites its own small file at every log step and at train end (no collective, so a rank
that dies leaves its last figure): CUDA `torch.cuda.max_memory_allocated` of its device (null on
CPU) and the process's peak RSS.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import resource
from typing import Any

from transformers import TrainerCallback

from sftpipe.runs.store import RunStore


def rank_memory(device: Any) -> dict[str, Any]:
    """This process's peak figures now."""
    import torch

    on_cuda = getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_available()
    return {
        "peak_gpu_memory_bytes": int(torch.cuda.max_memory_allocated(device)) if on_cuda else None,
        "peak_gpu_reserved_bytes": int(torch.cuda.max_memory_reserved(device)) if on_cuda else None,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }  # Linux: KiB


class RankMemoryCallback(TrainerCallback):
    """Write this rank's peak memory at each log and at train end."""

    def _write(self, args: Any, state: Any) -> None:
        with contextlib.suppress(OSError):  # a full or flaky filesystem must not stop training
            RunStore(args.output_dir).write_rank_memory(
                args.process_index,
                {
                    "rank": args.process_index,
                    "step": state.global_step,
                    "device": str(args.device),
                    **rank_memory(args.device),
                    "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                },
            )

    def on_log(self, args, state, control, **kwargs):
        self._write(args, state)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self._write(args, state)
        return control
