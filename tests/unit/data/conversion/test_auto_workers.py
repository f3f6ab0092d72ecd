"""`workers: 0` does not spawn a worker (one LF start-up each) per core for a job of a few trials."""

from __future__ import annotations

import os

from sftpipe.data.conversion.convert import TRIALS_PER_TOKENIZER_WORKER, auto_workers


def test_without_token_lengths_one_worker_per_core():
    assert auto_workers(3, measures_tokens=False) == (os.cpu_count() or 1)


def test_small_job_measuring_tokens_converts_in_process():
    assert auto_workers(3, measures_tokens=True) == 1
    assert auto_workers(TRIALS_PER_TOKENIZER_WORKER * 2 - 1, measures_tokens=True) == 1


def test_large_job_measuring_tokens_uses_the_cores():
    cores = os.cpu_count() or 1
    assert auto_workers(TRIALS_PER_TOKENIZER_WORKER * 1000, measures_tokens=True) == cores
    assert auto_workers(TRIALS_PER_TOKENIZER_WORKER * 2, measures_tokens=True) == min(cores, 2)
