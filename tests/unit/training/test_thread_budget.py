"""Snakemake's per-job thread count is split between the ranks, not given to each (oversubscribed CPU ranks)."""

from __future__ import annotations

from sftpipe.config import load
from sftpipe.training.process import THREAD_VARS, launch_env, split_thread_budget

from tests.project import make_project


def test_job_threads_are_divided_between_ranks():
    env = {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8", "PATH": "/bin"}
    assert split_thread_budget(env, 2) == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}
    assert split_thread_budget({"OMP_NUM_THREADS": "1"}, 8) == {"OMP_NUM_THREADS": "1"}  # never 0


def test_unset_or_unusual_values_are_left_to_torchrun():
    assert split_thread_budget({}, 2) == {}
    assert split_thread_budget({"OMP_NUM_THREADS": "4,2"}, 2) == {}  # nested OpenMP syntax: not ours to split


def test_launch_env_of_the_cpu_demo_gives_each_rank_one_of_the_jobs_two_threads(tmp_path, monkeypatch):
    cfg = load(root=make_project(tmp_path / "p"))
    ranks = cfg.infrastructure["n_gpus_per_node"]
    for var in THREAD_VARS:  # what Snakemake exports for `threads: 2`
        monkeypatch.setenv(var, str(2 * ranks))
    env = launch_env(cfg, tmp_path / "stop.json")
    assert {env[var] for var in THREAD_VARS} == {"2"}
