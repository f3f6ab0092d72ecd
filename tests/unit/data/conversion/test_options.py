"""One source of conversion defaults: the config schema drives `sft convert`, the pipeline and dryrun."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from harbor_job_builder import make_trial, write_job_result
from sftpipe.cli import main
from sftpipe.cli.convert import register_cli
from sftpipe.data.conversion.options import (
    ConversionOptions,
    conversion_choices,
    conversion_schema,
    default_conversion,
    default_options,
)

from tests.project import edit_config, make_project

OUTPUTS = ("lf_data/{n}.json", "{n}.im.jsonl")


def _bare_args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    return parser.parse_args(["convert", "--job-dir", "j", "--data-name", "d", "--out-dir", "o", *extra])


def test_cli_defaults_and_choices_are_the_schema_defaults_and_enums():
    args = _bare_args()
    schema = conversion_schema()
    defaults = default_conversion()
    assert defaults["on_damaged_trial"] == "skip" and defaults["keep_subagents"] is False
    assert defaults["keep_lossy_fallback"] is False
    for key, value in defaults.items():
        assert getattr(args, key) == value, key
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    register_cli(sub)
    convert = sub.choices["convert"]
    for action in convert._actions:
        if action.dest in schema and action.choices is not None:
            assert tuple(action.choices) == conversion_choices(action.dest), action.dest


def test_dataclass_defaults_match_the_schema():
    built = default_options()
    plain = ConversionOptions()
    for f in fields(ConversionOptions):
        if f.name == "exclude_repos_file":  # a library call names no file; the CLI and config default to one
            assert plain.exclude_repos_file == "" and built.exclude_repos_file == default_conversion()[f.name]
            continue
        assert getattr(plain, f.name) == getattr(built, f.name), f.name


def test_bare_convert_and_the_pipeline_with_a_default_conversion_section_write_identical_data(
    tmp_path, monkeypatch
):
    root = make_project(tmp_path / "proj")
    job = root / "data" / "job"
    rewards = {}
    for i in range(3):
        name = f"own__repo-{i}__t{i}"
        make_trial(job, name, f"own__repo-{i}", reward=1.0 if i < 2 else 0.0, n_turns=2 + i)
        rewards[name] = 1.0 if i < 2 else 0.0
    write_job_result(job, rewards)

    def defaults_only(data):
        data["runtime_info"]["input"]["source"]["job_dir"] = "data/job"
        data["runtime_info"]["input"]["source"]["type"] = "harbor_job"
        data["runtime_info"]["input"]["conversion"] = {"data_name": "same"}
        data["runtime_info"]["input"]["model"]["model_name_or_path"] = "artifacts/base_models/absent"

    edit_config(root / "config" / "config.yaml", defaults_only)
    monkeypatch.chdir(root)
    assert main(["convert-config", "--out-dir", "pipe"]) == 0
    assert main(["convert", "--job-dir", "data/job", "--data-name", "same", "--out-dir", "bare"]) == 0
    for pattern in OUTPUTS:
        rel = pattern.format(n="same")
        assert (root / "pipe" / rel).read_bytes() == (root / "bare" / rel).read_bytes(), rel
    # stats.json differs only in the training cutoff it was measured against (training.cutoff_len).
    stats = [json.loads((root / d / "same.stats.json").read_text()) for d in ("pipe", "bare")]
    for s in stats:
        s["token_length"].pop("cutoff_len")
    assert stats[0] == stats[1]
    pipe = json.loads((root / "pipe/same.report.json").read_text())
    bare = json.loads((root / "bare/same.report.json").read_text())
    assert pipe["trials"] == bare["trials"] and pipe["trials"]["kept"] == 2


def test_convert_writes_exactly_the_paths_it_is_given(tmp_path):
    job = tmp_path / "job"
    make_trial(job, "own__repo-1__a", "own__repo-1")
    write_job_result(job, {"own__repo-1__a": 1.0})
    paths = {
        "--lf": tmp_path / "x/rows.json",
        "--im": tmp_path / "y/im.jsonl",
        "--stats": tmp_path / "s.json",
        "--report": tmp_path / "r/rep.json",
        "--report-txt": tmp_path / "r/rep.txt",
    }
    flags = [a for flag, path in paths.items() for a in (flag, str(path))]
    before = {p for p in tmp_path.rglob("*")}
    assert (
        main(["convert", "--job-dir", str(job), "--data-name", "d", "--exclude-repos-file", "", *flags]) == 0
    )
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert written == set(paths.values())
    # Without --out-dir every path is required.
    assert (
        main(
            [
                "convert",
                "--job-dir",
                str(job),
                "--data-name",
                "d",
                "--exclude-repos-file",
                "",
                "--lf",
                str(tmp_path / "z.json"),
            ]
        )
        == 2
    )
