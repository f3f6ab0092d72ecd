"""writeback.write_output_block: only runtime_info.output changes, byte for byte."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml as pyyaml  # PyYAML (YAML 1.1), what Snakemake reads configs with
from ruamel.yaml import YAML
from sftpipe.report.writeback import WritebackError, write_output_block

from tests.project import shipped_text

# Odd on purpose: mixed indentation widths, quoting styles, anchors/merge keys, a folded scalar,
# trailing spaces, comments everywhere, a key-line comment on `output:`.
HEAD = """\
# sft profile -- hand edited, keep this comment
meta_info:
    block: sft     # four-space indentation in this mapping
    environment: {sft_uv: artifacts/env/lf}
    shared: &shared
      seed: 42
runtime_info:   # the run
  input:
    source:
      type: 'harbor_job'   # single quoted
      job_dir: "jobs/x"
    training:
      learning_rate: 1.0e-4
      merged:
        <<: *shared
        b: 2
    note: >
      folded text
      continues here

  # comment before output
"""
OUTPUT_BLOCK = """\
  output:                          # written back after a successful run
    checkpoint_path: old/checkpoint-2/
    # inner comment, part of the block
    training_metrics: {final_loss: 9.9,
      total_steps: 2}
"""
TAIL = """\

  # trailing comment after the block belongs to what follows
  experiment: {run_name: "x"}    \n\
credentials:
  token: "abc"    # trailing spaces   \n\
# last line comment
"""

NEW = {
    "checkpoint_path": "artifacts/model/run1/checkpoint-6/",
    "training_metrics": {
        "final_loss": 4.5667,
        "train_runtime": 7.5,
        "total_steps": 6,
        "lr_last": 1e-05,
        "tiny": 1e-300,
        "big": 1e20,
        "missing": None,
    },
    "artifacts": {"train_results": "artifacts/model/run1/train_results.json", "plot": "a: b # not a comment"},
    "training_curves": {"wandb_run_id": "0123"},
    "flags": [True, "yes", "1.5"],
}


def _write(tmp_path: Path, text: str, newline: str = "\n") -> Path:
    path = tmp_path / "config.yaml"
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def _read_output(path: Path) -> dict:
    return YAML(typ="safe", pure=True).load(path.read_text())["runtime_info"]["output"]


def test_present_block_replaced_rest_byte_identical(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + OUTPUT_BLOCK + TAIL)
    write_output_block(path, NEW)
    text = path.read_text()
    assert text.startswith(
        HEAD + "  output:                          # written back after a successful run\n"
    )
    assert text.endswith(TAIL)
    assert "inner comment" not in text and "old/checkpoint-2" not in text
    assert _read_output(path) == NEW
    assert pyyaml.safe_load(text)["runtime_info"]["output"] == NEW  # 1e-05, 1e20 stay floats for YAML 1.1


def test_idempotent(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + OUTPUT_BLOCK + TAIL)
    write_output_block(path, NEW)
    first = path.read_bytes()
    write_output_block(path, NEW)
    assert path.read_bytes() == first
    write_output_block(path, {"checkpoint_path": "x/"})
    write_output_block(path, NEW)
    assert path.read_bytes() == first


@pytest.mark.parametrize(
    "empty",
    ["  output: {}\n", "  output:\n", "  output: {}   # filled by the pipeline\n", "  output: null\n"],
)
def test_present_but_empty(tmp_path: Path, empty: str) -> None:
    path = _write(tmp_path, HEAD + empty + TAIL)
    write_output_block(path, NEW)
    text = path.read_text()
    assert text.startswith(HEAD) and text.endswith(TAIL)
    assert ("# filled by the pipeline" in text) == ("#" in empty)
    assert _read_output(path) == NEW
    write_output_block(path, {})  # and back to empty
    assert _read_output(path) == {} and path.read_text().startswith(HEAD) and path.read_text().endswith(TAIL)


def test_absent_block_inserted_under_runtime_info(tmp_path: Path) -> None:
    tail = "\n  # comment kept after runtime_info\ncredentials:\n  token: abc\n"
    path = _write(tmp_path, HEAD.removesuffix("\n  # comment before output\n") + tail)
    original = path.read_text()
    write_output_block(path, NEW)
    text = path.read_text()
    body_end = original.index(tail)
    assert text.startswith(original[:body_end]) and text.endswith(tail)
    assert text[body_end:].startswith("  output:\n    checkpoint_path: artifacts/model/run1/checkpoint-6/\n")
    assert _read_output(path) == NEW


@pytest.mark.parametrize("ending", ["\n", "", "\n\n# final comment\n", "\n# no newline at end"])
def test_block_last_in_file(tmp_path: Path, ending: str) -> None:
    block = OUTPUT_BLOCK.rstrip("\n") + ending
    path = _write(tmp_path, HEAD + block)
    write_output_block(path, NEW)
    text = path.read_text()
    assert text.startswith(HEAD)
    assert _read_output(path) == NEW
    if ending.strip():
        assert text.endswith(ending)
    assert text.endswith("\n") == ending.endswith("\n")


def test_block_last_absent_no_trailing_newline(tmp_path: Path) -> None:
    path = _write(tmp_path, "runtime_info:\n  input: {a: 1}")
    write_output_block(path, {"x": 1})
    assert path.read_text() == "runtime_info:\n  input: {a: 1}\n  output:\n    x: 1"


def test_crlf_file_stays_crlf(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + OUTPUT_BLOCK + TAIL, newline="\r\n")
    write_output_block(path, NEW)
    raw = path.read_bytes()
    assert raw.startswith((HEAD).replace("\n", "\r\n").encode())
    assert raw.endswith(TAIL.replace("\n", "\r\n").encode())
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert _read_output(path) == NEW


def test_mode_kept_and_symlink_written_through(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + OUTPUT_BLOCK + TAIL)
    path.chmod(0o640)
    link = tmp_path / "active.yaml"
    link.symlink_to(path.name)
    write_output_block(link, NEW)
    assert link.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert _read_output(path) == NEW
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runtime_info: {input: {a: 1}, output: {}}\n", "flow-style"),
        ("meta_info: {}\n", "no 'runtime_info'"),
        ("runtime_info:\n  input: [1,\n", "not valid YAML"),
        ("runtime_info:\n  input: 1\n  input: 2\n", "not valid YAML"),
    ],
)
def test_refused_configs_left_untouched(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    before = path.read_bytes(), path.stat().st_mtime_ns
    with pytest.raises(WritebackError, match=message):
        write_output_block(path, NEW)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_unrepresentable_value_leaves_file_untouched(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + OUTPUT_BLOCK + TAIL)
    before = path.read_bytes()
    with pytest.raises(WritebackError, match=r"output.x: cannot write a object"):
        write_output_block(path, {"x": object()})
    assert path.read_bytes() == before


def test_anchor_inside_output_used_elsewhere_is_refused(tmp_path: Path) -> None:
    # Replacing the block would drop an anchor that another key aliases: the splice must not happen.
    text = "runtime_info:\n  output:\n    ck: &ck a/b\n  input:\n    from: *ck\n"
    path = _write(tmp_path, text)
    with pytest.raises(WritebackError):
        write_output_block(path, {"ck": "c/d"})
    assert path.read_text() == text


def test_paths_become_strings(tmp_path: Path) -> None:
    path = _write(tmp_path, "runtime_info:\n  input: 1\n")
    write_output_block(path, {"checkpoint_path": tmp_path / "ck"})
    assert _read_output(path) == {"checkpoint_path": str(tmp_path / "ck")}
    assert os.access(path, os.R_OK)


def test_shipped_config_round_trip(tmp_path: Path) -> None:
    """The real profile: a write changes only the output block; writing its old value back restores it."""
    shipped_config = shipped_text("config/config.yaml")
    path = tmp_path / "config.yaml"
    path.write_text(shipped_config)
    old_output = _read_output(path)
    write_output_block(path, NEW)
    assert _read_output(path) == NEW
    before = YAML(typ="safe", pure=True).load(shipped_config)
    after = YAML(typ="safe", pure=True).load(path.read_text())
    before["runtime_info"].pop("output")
    after["runtime_info"].pop("output")
    assert before == after
    if old_output == {}:
        write_output_block(path, {})
        assert path.read_text() == shipped_config
