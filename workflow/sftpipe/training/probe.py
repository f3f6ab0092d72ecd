"""Fail fast: at train begin every rank runs one forward + backward on a batch of the longest length.

A long-context run typically runs out of memory the first time a long sample comes up, possibly hours
in. `MaxLengthProbeCallback.on_train_begin` proves the worst batch fits before the first step: random
tokens, `per_device_train_batch_size` x the longest length any batch will have (the longest row of the
tokenized train set, capped at cutoff_len; cutoff_len when the set is not readable), through the model
exactly as training runs it (train mode, gradient checkpointing, DeepSpeed ZeRO-3 hooks, Liger when on).

* Cost: one step's worth of compute, seconds. The RNG is forked and the gradients are cleared after
  it (DeepSpeed: its optimizer's zero_grad, so the first real micro-batch overwrites its partitions),
  so the run trains exactly as without the probe.
* Peak memory: CUDA `torch.cuda.max_memory_allocated` per rank (reset first); CPU the peak RSS (VmHWM,
  reset through /proc/self/clear_refs).
* Every rank runs the same shapes, so they fail or pass together; one all-gather makes them agree.
  Then rank 0 writes max_length_probe.json and an events.jsonl record; on failure also
  stop_reason.json (reason `oom_at_max_length`, with suggestions), and every rank raises
  `ProbeFailed`, which the entry point turns into a clean exit (OOM_EXIT_CODE), not a stack trace.
* CPU only, for tests: env SFT_CPU_RANK_MEMORY_LIMIT_MB caps each rank's address space at what it
  holds at train begin plus that many MB (RLIMIT_AS, for the rest of the run), so an allocation past
  it fails for real, as a GPU allocation past its memory does.
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import resource
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from sftpipe import paths
from sftpipe.runs.store import RunStore
from sftpipe.training.fail_fast import CPU_LIMIT_ENV, MAX_LEN_ENV, OOM_REASON, PROBE_ENV

_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "std::bad_alloc")
SUGGESTIONS = (
    "training.enable_liger_kernel: true (fused linear cross-entropy: no full-vocabulary logits)",
    "training.use_unsloth_gc: true (offload checkpointed activations to host memory)",
    "a DeepSpeed ZeRO-3 config with offload_optimizer/offload_param to cpu",
    "more GPUs or nodes (infrastructure.n_gpus_per_node, infrastructure.n_nodes) to shard model states",
    "a shorter training.cutoff_len, or per_device_train_batch_size: 1",
)


class ProbeFailed(Exception):
    """Raised on every rank when a batch of the longest length did not fit on at least one rank."""

    def __init__(self, record: dict[str, Any]):
        super().__init__(record.get("message", OOM_REASON))
        self.record = record


def is_oom(exc: BaseException) -> bool:
    """A real allocation failure: CUDA OOM, a CPU allocator failure, MemoryError."""
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MARKERS)


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def apply_cpu_memory_limit(limit_mb: int) -> int | None:
    """RLIMIT_AS = the address space held now + limit_mb; returns the limit in bytes (None: not applied)."""
    held_kb = _status_kb("VmSize")
    if held_kb is None or limit_mb <= 0:
        return None
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = held_kb * 1024 + limit_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


class _PeakMemory:
    """Peak memory of this rank over a block: CUDA max allocated, or CPU peak RSS."""

    def __init__(self, device: Any):
        import torch

        self.cuda = getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_available()
        self.device = device

    def reset(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:  # "5" resets VmHWM (Linux >= 4.0); otherwise the peak since process start
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass

    def current_bytes(self) -> int | None:
        """What the rank holds now: CUDA memory allocated, or CPU RSS (the probe's baseline)."""
        import torch

        if self.cuda:
            return int(torch.cuda.memory_allocated(self.device))
        kb = _status_kb("VmRSS")
        return kb * 1024 if kb is not None else None

    def peak_bytes(self) -> int | None:
        import torch

        if self.cuda:
            return int(torch.cuda.max_memory_allocated(self.device))
        kb = _status_kb("VmHWM")
        return kb * 1024 if kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    @property
    def kind(self) -> str:
        return "cuda_max_memory_allocated" if self.cuda else "cpu_peak_rss"


def longest_length(train_dataloader: Any, cutoff_len: int | None) -> tuple[int, str]:
    """(length, where it came from): the longest tokenized train row (capped at cutoff_len) or cutoff_len."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = getattr(getattr(train_dataloader, "dataset", None), "data", None)  # an HF Dataset's arrow table
    try:
        longest = pc.max(pc.list_value_length(table.column("input_ids"))).as_py()
    except (AttributeError, KeyError, TypeError, pa.ArrowException):  # streamed/iterable: use the cap
        longest = None
    if isinstance(longest, int) and longest > 0:
        return (min(longest, cutoff_len) if cutoff_len else longest), "dataset"
    if not cutoff_len:
        raise ValueError(
            f"fail-fast probe: the train set's row lengths are unreadable and {MAX_LEN_ENV} is unset"
        )
    return cutoff_len, "cutoff_len"


def zero_optimizer(optimizer: Any) -> Any:
    """The DeepSpeed ZeRO optimizer behind the Trainer's optimizer (accelerate wraps it), or None."""
    for _ in range(4):
        if optimizer is None or hasattr(optimizer, "enter_backward"):
            return optimizer
        optimizer = getattr(optimizer, "optimizer", None)
    return None


def forward_backward(model: Any, optimizer: Any, device: Any, batch_size: int, length: int) -> None:
    """One training forward + backward on random tokens; gradients cleared afterwards.

    Under DeepSpeed ZeRO the module's hooks reduce gradients into the optimizer's buckets; the engine
    brackets every step with the optimizer's step/backward protocol, so this does the same (a bare
    backward would leave a bucket behind for the first real step), then `zero_grad` on the ZeRO
    optimizer itself: accelerate's wrapper makes the Trainer's `optimizer.zero_grad` a no-op.
    """
    import torch

    vocab = int(getattr(model.config, "vocab_size", 0) or 1000)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch_size, length), generator=gen).to(device)
    zero = zero_optimizer(optimizer)
    was_training = model.training
    model.train()
    try:
        cuda_devices = [device] if getattr(device, "type", "") == "cuda" else []
        with torch.random.fork_rng(devices=cuda_devices):
            if zero is not None:
                zero.clear_backward_seen_flag()  # as DeepSpeedEngine.forward
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss
            if zero is not None:  # as DeepSpeedEngine._backward_prologue / _backward_epilogue
                zero.backward_prologue()
                zero.enter_backward()
            try:
                loss.backward()
            finally:
                if zero is not None:
                    zero.backward_epilogue()
                    zero.exit_backward()
            del loss
    finally:
        model.train(was_training)
        if zero is not None:
            zero.zero_grad(set_to_none=True)  # resets its accumulation: the first real micro-batch overwrites
        elif optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        model.zero_grad(set_to_none=True)
        del ids
        if getattr(device, "type", "") == "cuda":  # hand the probe's blocks back before the first step;
            gc.collect()  # a full collection costs ~0.4 s in a rank, worth it only for the GPU's cache
            torch.cuda.empty_cache()


def _gather(values: list[float], device: Any) -> list[list[float]]:
    """Every rank's values (one all-gather); this rank's alone when not distributed."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [values]
    t = torch.tensor(values, dtype=torch.float64, device=device)
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return [x.tolist() for x in out]


def suggestion_text() -> str:
    return "To make it fit, in this order: " + "; ".join(f"({i}) {s}" for i, s in enumerate(SUGGESTIONS, 1))


class MaxLengthProbeCallback(TrainerCallback):
    """Run the max-length probe at train begin; stop the job with `oom_at_max_length` if it fails."""

    def __init__(self, cutoff_len: int | None, cpu_limit_mb: int = 0):
        self.cutoff_len = cutoff_len
        self.cpu_limit_mb = cpu_limit_mb
        self.record: dict[str, Any] | None = None

    @classmethod
    def from_env(cls) -> MaxLengthProbeCallback | None:
        """The callback when the launcher turned the probe on (SFT_FAIL_FAST_PROBE=1), else None."""
        if os.environ.get(PROBE_ENV) != "1":
            return None
        return cls(int(os.environ.get(MAX_LEN_ENV) or 0) or None, int(os.environ.get(CPU_LIMIT_ENV) or 0))

    def on_train_begin(
        self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kwargs
    ):
        limit = None
        if self.cpu_limit_mb and args.device.type == "cpu":
            limit = apply_cpu_memory_limit(self.cpu_limit_mb)
        length, source = longest_length(train_dataloader, self.cutoff_len)
        batch = args.per_device_train_batch_size
        meter = _PeakMemory(args.device)
        baseline = meter.current_bytes()
        meter.reset()
        error: str | None = None
        start = time.monotonic()
        try:
            forward_backward(model, optimizer, args.device, batch, length)
        except Exception as exc:  # only allocation failures are the probe's business
            if not is_oom(exc):
                raise
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
            gc.collect()
        seconds = time.monotonic() - start
        peak = meter.peak_bytes()
        ranks = _gather(
            [0.0 if error is None else 1.0, float(peak or 0), seconds, float(baseline or 0)], args.device
        )
        failed = [r for r, v in enumerate(ranks) if v[0] > 0]
        peaks = [int(v[1]) for v in ranks]
        record = {
            "ok": not failed,
            "status": "ok" if not failed else OOM_REASON,
            "length": length,
            "length_source": source,
            "cutoff_len": self.cutoff_len,
            "batch_size": batch,
            "tokens_per_rank": batch * length,
            "seconds": round(max(v[2] for v in ranks), 3),
            "memory_kind": meter.kind,
            "peak_memory_bytes_per_rank": peaks,
            "baseline_memory_bytes_per_rank": [int(v[3]) for v in ranks],  # held before the probe
            "peak_memory_gb": round(max(peaks) / 1e9, 4),
            "failed_ranks": failed,
            "cpu_memory_limit_bytes": limit,
            "error": error if args.process_index == 0 else None,
            "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        if failed:
            record["message"] = (
                f"out of memory at the maximum length: a batch of {batch} x {length} tokens "
                f"({source}) did not fit on rank(s) {failed} "
                f"(peak {record['peak_memory_gb']} GB, {meter.kind})"
            )
            record["suggestion"] = suggestion_text()
        self.record = record
        if state.is_world_process_zero:
            out = Path(args.output_dir)
            RunStore(out).write_probe(record)
            RunStore(out).log_event(
                "INFO" if not failed else "ERROR",
                "max-length probe passed" if not failed else "max-length probe: out of memory",
                **record,
            )
            if failed:
                RunStore(out).write_stop_reason(
                    {
                        "reason": OOM_REASON,
                        "step": state.global_step,
                        "probe": str(out / paths.PROBE_RECORD),
                        **record,
                    }
                )
        if failed:
            raise ProbeFailed(record)
        return control
