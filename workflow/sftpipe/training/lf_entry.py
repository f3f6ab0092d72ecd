"""Training entry point run under torchrun instead of `llamafactory-cli train`.

    torchrun --nproc_per_node N [--nnodes ... --master_addr ... --master_port ...] \
        -m sftpipe.training.lf_entry CONFIG.yaml [key=value ...]

It calls LLaMA-Factory's own `run_exp` (same YAML, same OmegaConf `key=value` overrides as
`llamafactory-cli train`) with extra trainer callbacks:

* `StopOnRequestCallback` (always): a graceful stop. SIGTERM or SIGUSR1, or the appearance of the
  file named by env `SFT_STOP_FILE`, makes every rank save a complete checkpoint at the next
  optimizer-step end and stop. Rank 0 then writes `<output_dir>/stop_reason.json` (reason, signal,
  step, checkpoint, and under `requested` the stop file's JSON content if any) and the process
  exits with `STOP_EXIT_CODE` (75). LLaMA-Factory's end-of-run work (final model in output_dir,
  train_results.json, loss plot) is skipped for a stopped run, so `train_results.json` still means
  "finished". Re-running the same config resumes from the checkpoint (LF auto-resume).
* `MaxLengthProbeCallback` (when env SFT_FAIL_FAST_PROBE=1, sftpipe.training.probe): one forward +
  backward on a batch of the longest length at train begin; if it does not fit, every rank stops with
  `OOM_EXIT_CODE` (76) and rank 0 writes stop_reason.json (reason `oom_at_max_length`).
* `RankMemoryCallback` (always): per-rank peak memory under `<output_dir>/rank_memory/`.
* Any classes named in env `SFT_EXTRA_CALLBACKS` ("pkg.module:Class,..."; built with no arguments).

Why an all-reduce: a signal may reach only some ranks and a stop file on a shared filesystem may
become visible at different steps on different nodes; if ranks disagreed, some would enter the
checkpoint collectives and others the next forward pass, and all would hang. One MAX all-reduce of
a small code per optimizer step makes every rank take the same decision at the same step.

Exit codes: 0 finished; 75 stopped on request (checkpoint complete, stop_reason.json written);
76 out of memory at the maximum length (stop_reason.json written); anything else is a failure. torchrun reports every non-zero worker code as 1, so launchers must
read stop_reason.json. Note that torchrun itself, when it receives SIGTERM, forwards it to the
workers and SIGKILLs them 30 s later (hard-coded in torch.distributed.elastic), so on that path the
step in progress plus the checkpoint save must fit in 30 s; the stop file has no such limit.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from sftpipe.runs import checkpoints
from sftpipe.runs.store import RunStore, read_json
from sftpipe.training.attention import KernelReportCallback

STOP_EXIT_CODE = 75  # EX_TEMPFAIL: stopped on request, resumable
STOP_FILE_ENV = "SFT_STOP_FILE"
EXTRA_CALLBACKS_ENV = "SFT_EXTRA_CALLBACKS"

# Stop codes, reduced with MAX across ranks: the highest-priority reason wins.
_NONE, _STOP_FILE = 0, 1
_SIGNAL_CODES = {signal.SIGUSR1: 2, signal.SIGTERM: 3}
_CODE_NAMES = {_STOP_FILE: "stop_file", **{code: sig.name for sig, code in _SIGNAL_CODES.items()}}


class TrainingStopped(Exception):
    """Raised at train end on every rank after a requested stop, to skip LF's end-of-run saving."""

    def __init__(self, reason: dict[str, Any]):
        super().__init__(f"training stopped on request: {reason}")
        self.reason = reason


class StopOnRequestCallback(TrainerCallback):
    """Checkpoint-and-stop on SIGTERM/SIGUSR1 or a stop file; all ranks agree on the step."""

    def __init__(self, stop_file: str | os.PathLike[str] | None = None, install_signal_handlers: bool = True):
        self.stop_file = Path(stop_file) if stop_file else None
        self._signal_code = _NONE
        self._install = install_signal_handlers
        self.reason: dict[str, Any] | None = None
        if install_signal_handlers:
            self._install_handlers()

    @classmethod
    def from_env(cls) -> StopOnRequestCallback:
        return cls(stop_file=os.environ.get(STOP_FILE_ENV) or None)

    # --- signal handling: only set a flag; acting happens at a step boundary -------------------
    def _install_handlers(self) -> None:
        for sig in _SIGNAL_CODES:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # Repeated signals (process-group SIGTERM, then torchrun forwarding it) must not kill us.
        self._signal_code = max(self._signal_code, _SIGNAL_CODES[signal.Signals(signum)])

    def request_code(self) -> int:
        """This rank's current stop request (before agreement)."""
        code = self._signal_code
        if self.stop_file is not None and self.stop_file.exists():
            code = max(code, _STOP_FILE)
        return code

    # --- trainer hooks ----------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        if self._install:  # re-assert: libraries loaded since construction may have replaced them
            self._install_handlers()
        if state.is_world_process_zero:
            _archive_stale_stop_reason(Path(args.output_dir))

    def on_step_end(self, args, state, control, **kwargs):
        code = _agree_max(self.request_code(), args)
        # At the last step the run is finishing anyway: let it finish and write its final outputs.
        if code != _NONE and self.reason is None and state.global_step < state.max_steps:
            self.reason = {
                "reason": "stop_file" if code == _STOP_FILE else "signal",
                "signal": None if code == _STOP_FILE else _CODE_NAMES[code],
                "stop_file": str(self.stop_file) if code == _STOP_FILE else None,
                "step": state.global_step,
                "max_steps": state.max_steps,
            }
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_save(self, args, state, control, **kwargs):
        if self.reason is None:
            return control
        _barrier()  # every rank has finished writing its shards before the checkpoint is declared
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.reason.update(
                checkpoint=str(ckpt),
                checkpoint_complete=checkpoints.check(
                    ckpt, state.global_step, bool(args.save_only_model)
                ).complete,
                time=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            )
            if self.reason["reason"] == "stop_file" and self.stop_file is not None:
                self.reason["requested"] = read_json(self.stop_file)
            RunStore(args.output_dir).write_stop_reason(self.reason)
            if self.reason["reason"] == "stop_file" and self.stop_file is not None:
                self.stop_file.unlink(missing_ok=True)  # honoured; a resumed run must not stop again
        _barrier()
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.reason is not None:
            raise TrainingStopped(self.reason)  # same point on every rank: no collective is left open
        return control


def _agree_max(code: int, args: Any) -> int:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return code
    # args.device is cuda:<local_rank> under NCCL and cpu under gloo, as each backend requires
    t = torch.tensor([code], dtype=torch.int32, device=args.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _archive_stale_stop_reason(output_dir: Path) -> None:
    """A resumed run keeps the previous stop record under a step-numbered name."""
    store = RunStore(output_dir)
    previous = store.read_stop_reason() or {}
    store.archive_stop_reason(f"step{previous.get('step', 'unknown')}")


def extra_callbacks_from_env() -> list[TrainerCallback]:
    """Instantiate the callbacks named in SFT_EXTRA_CALLBACKS ("pkg.mod:Class,pkg.mod:Other")."""
    out: list[TrainerCallback] = []
    for spec in filter(None, (s.strip() for s in os.environ.get(EXTRA_CALLBACKS_ENV, "").split(","))):
        module, sep, attr = spec.partition(":")
        if not sep:
            raise ValueError(f"{EXTRA_CALLBACKS_ENV}: {spec!r} must look like 'package.module:ClassName'")
        out.append(getattr(importlib.import_module(module), attr)())
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or not argv[0].endswith((".yaml", ".yml", ".json")):
        print("usage: python -m sftpipe.training.lf_entry CONFIG.yaml [key=value ...]", file=sys.stderr)
        return 2
    stop = StopOnRequestCallback.from_env()  # handlers installed before the slow imports and loading
    from llamafactory.train.tuner import run_exp

    from sftpipe.training.fail_fast import OOM_EXIT_CODE
    from sftpipe.training.probe import MaxLengthProbeCallback, ProbeFailed
    from sftpipe.training.rank_memory import RankMemoryCallback

    probe = MaxLengthProbeCallback.from_env()
    sys.argv = [sys.argv[0], *argv]  # LF's read_args parses the YAML path and overrides from sys.argv
    try:  # the stop callback first: it archives a stale stop_reason.json before the probe may write one
        run_exp(
            callbacks=[
                stop,
                *([probe] if probe else []),
                RankMemoryCallback(),
                KernelReportCallback(),
                *extra_callbacks_from_env(),
            ]
        )
    except TrainingStopped as exc:
        print(f"[sftpipe.training.lf_entry] {exc}", file=sys.stderr)
        _destroy_process_group()
        return STOP_EXIT_CODE
    except ProbeFailed as exc:  # a clear record instead of a stack trace; every rank gets here together
        print(f"[sftpipe.training.lf_entry] {exc}\n{exc.record.get('suggestion', '')}", file=sys.stderr)
        _destroy_process_group()
        return OOM_EXIT_CODE
    return 0


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    # Without interpreter teardown (sftpipe.util.process_exit): each rank would spend ~1.5 s freeing torch,
    # transformers and DeepSpeed after the run is saved, and torchrun waits for the slowest rank.
    from sftpipe.util.process_exit import exit_now

    exit_now(main())
