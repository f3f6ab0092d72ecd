"""Config mistakes are one clear line each, caught by `sft validate` and by loading the workflow (issue 11 §5)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from sftpipe import paths
from sftpipe.cli import main
from sftpipe.config import ConfigError, load
from sftpipe.config.schema import LF_KEYS_PATH, lf_argument_keys

from tests.project import edit_config, make_project


@pytest.fixture
def root(tmp_path):
    return make_project(tmp_path / "p")


def test_broken_yaml_is_one_line_with_file_line_column(root, capsys):
    config = root / paths.DEFAULT_CONFIG
    lines = config.read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if line.startswith("runtime_info:"))
    lines[n] = "runtime_info: [unclosed"
    config.write_text("\n".join(lines) + "\n")
    code = main(["validate", "--root", str(root), "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{config}:" in err and "not valid YAML" in err and "Traceback" not in err
    line = int(err.split(f"{config}:")[1].split(":")[0])
    assert n + 1 <= line <= n + 3  # where the parser noticed, next to the broken line
    assert len([line for line in err.splitlines() if "not valid YAML" in line]) == 1


def test_broken_variant_yaml_names_the_variant_file(root, capsys):
    (root / paths.VARIANTS_DIR / "broken.yaml").write_text(
        "runtime_info:\n  input:\n    training: {lr: [1,\n"
    )
    code = main(["validate", "--root", str(root), "--variant", "broken"])
    err = capsys.readouterr().err
    assert code == 2 and "broken.yaml:" in err and "not valid YAML" in err


def test_misspelled_training_key_is_caught_with_a_suggestion(root, capsys):
    edit_config(
        root / paths.DEFAULT_CONFIG,
        lambda d: d["runtime_info"]["input"]["training"].__setitem__("learning_rat", 1e-5),
    )
    with pytest.raises(
        ConfigError,
        match=r"learning_rat: unknown LLaMA-Factory argument \(did you mean "
        r"'learning_rate'\?\)",
    ):
        load(paths.DEFAULT_CONFIG, root)
    assert main(["validate", "--root", str(root), "--json"]) == 2
    assert "did you mean 'learning_rate'" in capsys.readouterr().out


def test_real_llamafactory_arguments_pass(root):
    edit_config(
        root / paths.DEFAULT_CONFIG,
        lambda d: d["runtime_info"]["input"]["training"].update(
            {"neftune_noise_alpha": 5, "lr_scheduler_type": "cosine", "weight_decay": 0.01}
        ),
    )
    load(paths.DEFAULT_CONFIG, root)


def test_lf_argument_list_matches_the_installed_llamafactory():
    """workflow/schemas/lf_argument_keys.txt is read at workflow load (no LF import); it must not go stale."""
    from llamafactory.hparams.parser import _TRAIN_ARGS

    installed = {f.name for cls in _TRAIN_ARGS for f in dataclasses.fields(cls) if not f.name.startswith("_")}
    assert lf_argument_keys() == installed, f"regenerate {LF_KEYS_PATH.name} for this LLaMA-Factory version"


def test_snakemake_refuses_the_typo_before_any_job(root):
    edit_config(
        root / paths.DEFAULT_CONFIG,
        lambda d: d["runtime_info"]["input"]["training"].__setitem__("learning_rat", 1e-5),
    )
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run(
        [str(snakemake), "-n", "--cores", "1"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode != 0
    assert "did you mean 'learning_rate'" in proc.stdout + proc.stderr
