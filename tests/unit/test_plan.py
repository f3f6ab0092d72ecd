"""The Snakefile's planner (sftpipe.plan): which runs and datasets one invocation builds, and what reruns them."""

from __future__ import annotations

import copy
import os

import pytest
from sftpipe import paths, plan
from sftpipe.config import ConfigError, read_yaml

from tests.project import make_project


@pytest.fixture
def root(tmp_path):
    return make_project(tmp_path / "p")


@pytest.fixture
def raw(root):
    return read_yaml(root / paths.DEFAULT_CONFIG)


def _write_variant(root, name, text):
    (root / paths.VARIANTS_DIR / f"{name}.yaml").write_text(text)


def test_requested_variants(root, raw):
    assert plan.requested_variants(raw, root) == [plan.BASE]
    assert plan.requested_variants({**raw, "variant": "demo-local"}, root) == ["demo-local"]
    assert plan.requested_variants({**raw, "variants": "base, demo-local"}, root) == ["base", "demo-local"]
    assert plan.requested_variants({**raw, "variants": ["demo-local"]}, root) == ["demo-local"]
    (root / paths.VARIANTS_DIR / "demo-local.output.yaml").write_text("runtime_info: {output: {}}\n")
    everything = plan.requested_variants({**raw, "variants": "all"}, root)
    assert everything[0] == plan.BASE and "demo-local" in everything
    assert not any(name.endswith(".output") for name in everything)  # written-back results are no variants


def test_build_base_and_variant(root, raw):
    built = plan.build({**raw, "variants": "base,demo-local"}, root)
    assert set(built.runs) == {"demo-run", "demo-local-run"}
    assert set(built.datasets) == {built.runs["demo-run"].data_name, "demo_local"}
    assert plan.targets(built) == [str(paths.run_file(run, paths.RECORD_MARKER)) for run in built.runs]
    assert built.env_dir == raw["meta_info"]["environment"]["sft_uv"]
    for (data, key), cfg in built.tokenized.items():
        assert plan.tokenized_path(cfg) == paths.tokenized_dir(data, key)


def test_two_variants_into_one_run_dir_are_refused(root, raw):
    _write_variant(root, "twin", "runtime_info:\n  input:\n    training: {output_dir: demo-run}\n")
    with pytest.raises(ConfigError, match="both train into"):
        plan.build({**raw, "variants": "base,twin"}, root)


def test_one_dataset_name_defined_twice_is_refused(root, raw):
    _write_variant(
        root,
        "other-data",
        "runtime_info:\n  input:\n    conversion: {min_score: 0.9}\n    training: {output_dir: other-run}\n",
    )
    with pytest.raises(ConfigError, match="define dataset"):
        plan.build({**raw, "variants": "base,other-data"}, root)


def test_building_the_plan_writes_nothing(root, raw, tmp_path):
    outside = tmp_path / "abs-run"
    raw = copy.deepcopy(raw)
    raw["runtime_info"]["input"]["training"]["output_dir"] = str(outside)
    before = sorted(p for p in root.rglob("*"))
    built = plan.build(raw, root)
    assert sorted(p for p in root.rglob("*")) == before and not outside.exists()
    assert next(iter(built.runs.values())).run_dir == outside


def test_absolute_run_dir_link_conflicts(root, raw, tmp_path):
    raw = copy.deepcopy(raw)
    raw["runtime_info"]["input"]["training"]["output_dir"] = str(tmp_path / "abs-run")
    link = root / paths.MODEL_ROOT / "abs-run"
    link.parent.mkdir(parents=True)
    os.symlink(tmp_path / "elsewhere", link)
    with pytest.raises(ConfigError, match="links to"):
        plan.build(raw, root)
    link.unlink()
    (link / "checkpoint-1").mkdir(parents=True)
    with pytest.raises(ConfigError, match="is not a link"):
        plan.build(raw, root)


def test_rerun_triggers(root, raw):
    """Cadence and resume settings never retrain; a learning-rate change does; tokenization keys re-tokenize."""
    base = plan.build(raw, root).runs["demo-run"]

    def changed(**training):
        edited = copy.deepcopy(raw)
        edited["runtime_info"]["input"]["training"].update(training)
        return plan.build(edited, root).runs["demo-run"]

    assert plan.training_inputs(changed(save_steps=999, logging_steps=7)) == plan.training_inputs(base)
    assert plan.training_inputs(changed(learning_rate=0.5)) != plan.training_inputs(base)
    assert plan.tokenize_key(changed(learning_rate=0.5)) == plan.tokenize_key(base)
    assert plan.tokenize_key(changed(cutoff_len=base.training["cutoff_len"] // 2)) != plan.tokenize_key(base)
    assert plan.cli_config_args("config/config.yaml", base) == "--config config/config.yaml"
    allowed = copy.deepcopy(raw)
    allowed["runtime_info"]["input"]["conversion"]["allow_failed_checks"] = ["truncation"]
    assert plan.conversion_inputs(plan.build(allowed, root).runs["demo-run"]) == plan.conversion_inputs(base)


def test_train_resources(root, raw):
    cfg = plan.build(raw, root).runs["demo-run"]
    cpu = plan.train_resources(cfg)
    assert (
        cpu["gres"] == ""
        and cpu["tasks_per_gpu"] == 0
        and cpu["threads"] == cfg.infrastructure["n_gpus_per_node"]
    )
    gpu_raw = copy.deepcopy(raw)
    infra = gpu_raw["runtime_info"]["input"].setdefault("infrastructure", {})
    infra.update(accelerator="cuda", n_nodes=2, n_gpus_per_node=8)
    gpu_raw["runtime_info"]["input"]["training"]["bf16"] = True
    gpu = plan.train_resources(plan.build(gpu_raw, root).runs["demo-run"])
    assert gpu["gres"] == "gpu:8" and gpu["nodes"] == 2 and gpu["tasks"] == 2 and gpu["threads"] == 1
    assert gpu["mem_mb"] == infra.get("mem_mb_per_node", gpu["mem_mb"] // 2) * 2
