"""Schema + cross-field validation of config.yaml: every error names its key path."""

from __future__ import annotations

import copy

import pytest
from sftpipe import config as sc

from tests.project import make_project, shipped_text


@pytest.fixture
def root(tmp_path):
    return make_project(tmp_path / "proj")


@pytest.fixture
def raw(root):
    return sc.read_yaml(root / "config/config.yaml")


def problems(raw, root, variant=None):
    with pytest.raises(sc.ConfigError) as info:
        sc.resolve(raw, root, variant)
    return info.value.problems


def test_shipped_config_is_valid(root):
    cfg = sc.load(root=root)
    assert cfg.run_dir.as_posix() == "artifacts/model/demo-run"
    assert cfg.inp["experiment"]["on_existing_run"] == "archive"


def test_every_key_of_shipped_config_is_commented():
    for n, line in enumerate(shipped_text("config/config.yaml").splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and ":" in stripped and not stripped.endswith(":"):
            assert "#" in line, f"config.yaml line {n} has no comment: {line!r}"


def test_defaults_are_filled_from_schema(root, raw):
    del raw["runtime_info"]["input"]["training"]["warmup_ratio"]
    del raw["runtime_info"]["input"]["experiment"]
    data = sc.resolve(raw, root)
    assert data["runtime_info"]["input"]["training"]["warmup_ratio"] == 0.1
    assert data["runtime_info"]["input"]["experiment"]["wandb_mode"] == "offline"


def test_unknown_key_names_path_and_suggests(root, raw):
    raw["runtime_info"]["input"]["source"]["job_dri"] = "x"
    (msg,) = problems(raw, root)
    assert msg.startswith("runtime_info.input.source:")
    assert "'job_dri'" in msg and "did you mean 'job_dir'" in msg


@pytest.mark.parametrize(
    "key,value,expect",
    [
        ("template", "qwen4", "runtime_info.input.training.template: expected one of"),
        ("stage", "sftt", "runtime_info.input.training.stage: expected one of"),
        ("flash_attn", "fa3", "runtime_info.input.training.flash_attn: expected one of"),
        ("rope_scaling", "yarnn", "runtime_info.input.training.rope_scaling"),
        ("cutoff_len", "long", "runtime_info.input.training.cutoff_len: 'long' is not of type 'integer'"),
        ("overwrite_output_dir", True, "runtime_info.input.training.overwrite_output_dir: must be False"),
    ],
)
def test_enum_and_type_errors(root, raw, key, value, expect):
    raw["runtime_info"]["input"]["training"][key] = value
    assert any(p.startswith(expect) for p in problems(raw, root)), problems(raw, root)


def test_finetuning_type_must_be_explicit(root, raw):
    del raw["runtime_info"]["input"]["training"]["finetuning_type"]
    assert problems(raw, root) == ["runtime_info.input.training: missing required key: 'finetuning_type'"]


def test_yarn_required_above_32k(root, raw):
    raw["runtime_info"]["input"]["training"]["cutoff_len"] = 65536
    (msg,) = problems(raw, root)
    assert msg.startswith("runtime_info.input.training.rope_scaling: must be 'yarn' when cutoff_len (65536)")
    raw["runtime_info"]["input"]["training"]["rope_scaling"] = "yarn"
    sc.resolve(raw, root)


def test_required_fields_per_source_type(root, raw):
    src = raw["runtime_info"]["input"]["source"]
    src.update(type="hf_lf", hf_hub_url="")
    assert problems(raw, root) == ["runtime_info.input.source.hf_hub_url: required for source.type hf_lf"]
    src.update(type="local_lf", lf_path="nope.json")
    assert problems(raw, root) == ["runtime_info.input.source.lf_path: file 'nope.json' does not exist"]
    src.update(type="harbor_job", job_dir="")
    assert problems(raw, root)[0].startswith(
        "runtime_info.input.source.job_dir: required for source.type harbor_job"
    )
    src.update(job_dir="missing/job")
    assert "does not exist" in problems(raw, root)[0]


def test_trajectories_dir_feeds_job_dir(root, raw):
    (root / "jobs/j1").mkdir(parents=True)
    raw["runtime_info"]["input"]["source"].update(type="harbor_job", job_dir="")
    raw["meta_info"]["dependencies"]["trajectories_dir"] = "jobs/j1"
    assert sc.RunConfig(sc.resolve(raw, root), root).job_dir == "jobs/j1"


def test_deepspeed_file_must_exist(root, raw):
    raw["runtime_info"]["input"]["training"]["deepspeed"] = "artifacts/training_config/deepspeed/nope.json"
    expected = (
        "runtime_info.input.training.deepspeed: DeepSpeed config "
        "'artifacts/training_config/deepspeed/nope.json' does not exist"
    )
    assert problems(raw, root) == [expected]


def test_cpu_rejects_bf16_and_fa2(root, raw):
    raw["runtime_info"]["input"]["training"].update(bf16=True, flash_attn="fa2")
    assert len(problems(raw, root)) == 2


def test_all_problems_reported_at_once(root, raw):
    train = raw["runtime_info"]["input"]["training"]
    train.update(template="nope", learning_rate=-1)
    raw["runtime_info"]["input"]["source"]["bogus"] = 1
    assert len(problems(raw, root)) == 3


def test_relative_and_absolute_output_dir(root, raw, tmp_path):
    raw["runtime_info"]["input"]["training"]["output_dir"] = "some/nested/my-run"
    assert sc.RunConfig(sc.resolve(raw, root), root).run_dir.as_posix() == "artifacts/model/my-run"
    raw["runtime_info"]["input"]["training"]["output_dir"] = str(tmp_path / "abs-run")
    assert sc.RunConfig(sc.resolve(raw, root), root).run_dir == tmp_path / "abs-run"


def test_credentials_from_env_and_never_in_hashes_or_redacted_copy(root, raw, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "env-secret-123")
    cfg = sc.RunConfig(sc.resolve(raw, root), root)
    assert cfg.credential("wandb_api_key") == "env-secret-123"
    raw["runtime_info"]["input"]["credentials"]["hf_token"] = "hf_file_secret"
    cfg2 = sc.RunConfig(sc.resolve(raw, root), root)
    assert cfg2.credential("hf_token") == "hf_file_secret"
    assert "hf_file_secret" not in repr(sc.redacted(cfg2.data))
    assert cfg.config_hash() == cfg2.config_hash()  # secrets do not define the run


def test_training_hash_ignores_logging_but_not_lr(root, raw):
    base = sc.RunConfig(sc.resolve(raw, root), root)
    changed = copy.deepcopy(raw)
    changed["runtime_info"]["input"]["training"]["logging_steps"] = 5
    assert sc.RunConfig(sc.resolve(changed, root), root).training_hash() == base.training_hash()
    changed["runtime_info"]["input"]["training"]["learning_rate"] = 5e-5
    assert sc.RunConfig(sc.resolve(changed, root), root).training_hash() != base.training_hash()


def test_variant_overrides_merge_and_cannot_set_output(root, raw):
    (root / "config/variants").mkdir(exist_ok=True)
    (root / "config/variants/lr5.yaml").write_text(
        "runtime_info:\n  input:\n    training:\n      learning_rate: 5.0e-5\n      output_dir: lr5-run\n"
    )
    cfg = sc.RunConfig(sc.resolve(raw, root, "lr5"), root)
    assert cfg.training["learning_rate"] == 5e-5 and cfg.variant == "lr5"
    assert cfg.training["template"] == raw["runtime_info"]["input"]["training"]["template"]
    (root / "config/variants/bad.yaml").write_text("runtime_info:\n  output: {checkpoint_path: x}\n")
    assert "written by the pipeline" in problems(raw, root, "bad")[0]
    assert "does not exist" in problems(raw, root, "missing")[0]


def test_template_enum_matches_llamafactory_registry():
    from llamafactory.data.template import TEMPLATES

    schema_enum = sc.load_schema()["properties"]["runtime_info"]["properties"]["input"]["properties"][
        "training"
    ]["properties"]["template"]["enum"]
    assert sorted(schema_enum) == sorted(TEMPLATES)
