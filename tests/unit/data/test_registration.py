"""dataset_info.json registration for the three source types."""

from __future__ import annotations

import json
import os

import pytest
from sftpipe import config as sc
from sftpipe.data.registration import RegistrationError, register

from tests.project import make_project


@pytest.fixture
def root(tmp_path):
    return make_project(tmp_path / "proj")


def cfg_with(root, **source):
    """The shipped config switched to the bundled sharegpt file (local_lf) unless `source` says otherwise."""
    raw = sc.read_yaml(root / "config/config.yaml")
    raw["runtime_info"]["input"]["source"].update(
        {"type": "local_lf", "lf_path": "config/demo/lf_demo.json", **source}
    )
    raw["runtime_info"]["input"]["conversion"]["data_name"] = "demo_sft"
    return raw


def run(root, raw):
    cfg = sc.RunConfig(sc.resolve(raw, root), root)
    info = root / "artifacts/data/lf_data/dataset_info.json"
    marker = root / "artifacts/data/lf_data/.registered" / f"{cfg.data_name}.json"
    return cfg, info, marker, register(cfg, info, marker)


def test_local_lf_points_at_the_file_and_preserves_other_entries(root):
    info = root / "artifacts/data/lf_data/dataset_info.json"
    info.parent.mkdir(parents=True)
    info.write_text(json.dumps({"other": {"file_name": "other.json"}}))
    _, info, marker, record = run(root, cfg_with(root))
    entries = json.loads(info.read_text())
    assert entries["other"] == {"file_name": "other.json"}
    entry = entries["demo_sft"]
    assert entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "conversations", "system": "system", "tools": "tools"}
    # LLaMA-Factory joins dataset_dir and file_name: that must be the user's file.
    resolved = os.path.normpath(os.path.join(info.parent, entry["file_name"]))
    assert resolved == str((root / "config/demo/lf_demo.json").resolve())
    assert "num_samples" not in entry
    assert json.loads(marker.read_text())["rows"] == record["rows"] > 0


def test_max_instances_becomes_num_samples(root):
    raw = cfg_with(root)
    raw["runtime_info"]["input"]["conversion"]["max_instances"] = 7
    *_, record = run(root, raw)
    assert record["entry"]["num_samples"] == 7


def test_hf_lf_registers_natively(root):
    raw = cfg_with(root, type="hf_lf", hf_hub_url="org/data", hf_subset="v2", hf_split="train")
    _, info, _, _ = run(root, raw)
    entry = json.loads(info.read_text())["demo_sft"]
    assert entry["hf_hub_url"] == "org/data" and entry["subset"] == "v2" and entry["split"] == "train"
    assert "file_name" not in entry


def test_harbor_job_needs_the_converted_file(root):
    (root / "job").mkdir()
    raw = cfg_with(root, type="harbor_job", job_dir="job")
    with pytest.raises(RegistrationError, match="demo_sft.json for .demo_sft. does not exist"):
        run(root, raw)
    lf = root / "artifacts/data/lf_data/demo_sft.json"
    lf.parent.mkdir(parents=True, exist_ok=True)
    lf.write_text(json.dumps([{"conversations": []}]))
    *_, record = run(root, raw)
    assert record["entry"]["file_name"] == "demo_sft.json"


def test_corrupt_dataset_info_is_never_overwritten(root):
    info = root / "artifacts/data/lf_data/dataset_info.json"
    info.parent.mkdir(parents=True)
    info.write_text("{not json")
    with pytest.raises(RegistrationError, match="refusing to overwrite"):
        run(root, cfg_with(root))
    assert info.read_text() == "{not json"


def test_invalid_and_empty_data_files_are_errors(root):
    bad = root / "config/demo/bad.json"
    bad.write_text("[{]")
    with pytest.raises(RegistrationError, match="not valid JSON"):
        run(root, cfg_with(root, lf_path="config/demo/bad.json"))
    bad.write_text("[]")
    with pytest.raises(RegistrationError, match="has no rows"):
        run(root, cfg_with(root, lf_path="config/demo/bad.json"))
