"""The LF YAML is read by YAML 1.1 (PyYAML/OmegaConf): what we write must read back to the same values."""

from __future__ import annotations

import yaml
from sftpipe.lf.render import dump


def test_yaml11_readers_get_the_values_back(tmp_path):
    values = {
        "eval_strategy": "no",
        "save_strategy": "steps",
        "learning_rate": 1e-5,
        "warmup_ratio": 0.1,
        "resume_from_checkpoint": None,
        "bf16": False,
        "template": "qwen3",
        "n": 3,
        "tags": ["on", "off", 1],
        "deepspeed": "artifacts/training_config/deepspeed/ds_z3_config.json",
        "run_name": "2024-01-01",
    }
    path = tmp_path / "lf.yaml"
    dump(values, path)
    assert yaml.safe_load(path.read_text()) == values
    assert "eval_strategy: 'no'" in path.read_text()
