"""`sft validate`, `sft render` and `sft memory` on the qwen3-8b-128k production profile, with a
Qwen3-8B-shaped config.json and no weights; `variants=all` on the CPU demo leaves that profile out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from sftpipe.cli import main
from sftpipe.config import read_yaml
from sftpipe.plan import requested_variants

from tests.project import edit_config, make_project

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures/models/qwen3-8b"
VARIANT = "qwen3-8b-128k"


@pytest.fixture()
def root(tmp_path):
    root = make_project(tmp_path / "proj")
    edit_config(
        root / f"config/variants/{VARIANT}.yaml",
        lambda d: d["runtime_info"]["input"]["model"].__setitem__("model_name_or_path", str(FIXTURE)),
    )
    return root


def sft(capsys, root, *args):
    code = main(
        [*args, "--root", str(root), "--config", str(root / "config/config.yaml"), "--variant", VARIANT]
    )
    return code, capsys.readouterr()


def test_profile_validates_without_weights(root, capsys):
    code, out = sft(capsys, root, "validate", "--json")
    report = json.loads(out.out)
    assert code == 0 and report["ok"] and report["warnings"] == []
    assert report["global_batch"] == 1 * 4 * 8 * 2


def test_profile_renders_the_long_context_settings(root, capsys):
    code, out = sft(capsys, root, "render")
    lf = YAML(typ="safe").load(out.out)
    assert code == 0
    assert lf["model_name_or_path"] == str(FIXTURE) and lf["cutoff_len"] == 131072
    assert lf["rope_scaling"] == "yarn" and lf["bf16"] is True and lf["flash_attn"] == "fa2"
    assert lf["enable_liger_kernel"] is True and lf["use_unsloth_gc"] is True
    assert lf["deepspeed"].endswith("ds_z3_config.json")


def test_memory_json_fits_and_exit_codes(root, capsys):
    code, out = sft(capsys, root, "memory", "--json")
    plan = json.loads(out.out)
    assert code == 0 and plan["fits"] and plan["gpu_memory_gb"] == 80
    assert {"per_gpu_gb", "gpu_memory_gb", "fits", "breakdown", "suggestions"} <= set(plan)

    variant = root / f"config/variants/{VARIANT}.yaml"
    edit_config(
        variant, lambda d: d["runtime_info"]["input"]["training"].__setitem__("enable_liger_kernel", False)
    )
    code, out = sft(capsys, root, "memory", "--json")
    plan = json.loads(out.out)
    assert code == 1 and not plan["fits"]
    assert plan["suggestions"][0]["change"] == "training.enable_liger_kernel: true"
    code, out = sft(capsys, root, "validate")  # validation warns with the plan's numbers
    assert code == 0 and "warning: runtime_info.input.training.enable_liger_kernel: false" in out.out

    edit_config(
        variant,
        lambda d: d["runtime_info"]["input"]["model"].__setitem__("model_name_or_path", str(root / "config")),
    )
    code, out = sft(capsys, root, "memory")
    assert code == 2 and "no config.json" in out.err


def test_variants_all_skips_the_cuda_profile_on_the_cpu_demo(root):
    raw = read_yaml(root / "config/config.yaml")
    names = requested_variants({**raw, "variants": "all"}, root)
    assert "demo-local" in names and VARIANT not in names
    assert VARIANT in requested_variants({**raw, "variants": f"base,{VARIANT}"}, root)
