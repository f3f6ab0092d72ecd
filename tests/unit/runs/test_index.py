"""run_index: append-only run history with fixed field order, safe under concurrent writers."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest
import yaml as pyyaml
from sftpipe.cli import main
from sftpipe.runs.ending import status_from_exit_code
from sftpipe.runs.index import FIELDS, HEADER, RunIndexError, append_entry, read_entries, update_entry


def _entry(**kw) -> dict:
    return {
        "variant": "default",
        "status": "running",
        "run_dir": "artifacts/model/r",
        "started_at": "2026-11-21T06:00:00Z",
        "data_name": "demo",
        **kw,
    }


def test_append_assigns_ids_and_keeps_field_order(tmp_path: Path) -> None:
    index = tmp_path / "artifacts" / "index.yaml"
    assert read_entries(index) == []
    assert append_entry(index, _entry()) == "run_001"
    assert append_entry(index, _entry(records={"metrics": tmp_path / "m.json"})) == "run_002"
    text = index.read_text()
    assert text.startswith(HEADER)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(index.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    entries = read_entries(index)
    assert [e["id"] for e in entries] == ["run_001", "run_002"]
    assert list(entries[0]) == list(FIELDS)
    assert entries[0]["block"] == "sft" and entries[0]["final_loss"] is None
    assert entries[1]["records"] == {"metrics": str(tmp_path / "m.json")}
    # Field order in the text itself.
    first_entry_keys = [line.split(":")[0].strip() for line in text.split("- id:")[1].splitlines()[1:]]
    assert first_entry_keys[: len(FIELDS) - 1] == list(FIELDS[1:])
    assert pyyaml.safe_load(text)[0]["started_at"] == "2026-11-21T06:00:00Z"


def test_update_rewrites_only_that_entry(tmp_path: Path) -> None:
    index = tmp_path / "index.yaml"
    index.write_text("# my header, keep me\n# second line\n")
    for _ in range(3):
        append_entry(index, _entry())
    before = index.read_text()
    first_two = before[: before.index("- id: run_003")]
    updated = update_entry(
        index,
        "run_003",
        status="failed",
        exit_code=1,
        error="Traceback (most recent call last):\n  x\nRuntimeError: boom\n",
    )
    after = index.read_text()
    assert after.startswith("# my header, keep me\n# second line\n")
    assert after.startswith(first_two)
    assert updated["status"] == "failed" and updated["completed_at"] is not None
    e = read_entries(index)[2]
    assert e["error"].endswith("RuntimeError: boom\n") and e["exit_code"] == 1
    # Updating a middle entry leaves the entries after it byte-identical too.
    tail = after[after.index("- id: run_003") :]
    update_entry(index, "run_002", status="completed", exit_code=0, final_loss=1.25)
    final = index.read_text()
    assert final.startswith(first_two[: first_two.index("- id: run_002")]) and final.endswith(tail)
    assert read_entries(index)[1]["final_loss"] == 1.25


def test_comment_between_entries_survives_update(tmp_path: Path) -> None:
    index = tmp_path / "index.yaml"
    append_entry(index, _entry())
    with index.open("a") as f:
        f.write("# operator note: run_001 was a smoke test\n")
    append_entry(index, _entry())
    update_entry(index, "run_001", status="stopped")
    assert "# operator note: run_001 was a smoke test\n- id: run_002" in index.read_text()


def test_validation(tmp_path: Path) -> None:
    index = tmp_path / "index.yaml"
    with pytest.raises(RunIndexError, match="status 'finished' is not one of"):
        append_entry(index, _entry(status="finished"))
    with pytest.raises(RunIndexError, match="unknown run-index fields: colour"):
        append_entry(index, _entry(colour="red"))
    with pytest.raises(RunIndexError, match="not UTC ISO 8601"):
        append_entry(index, _entry(started_at="2026-11-21 06:00:00"))
    assert not index.exists()
    append_entry(index, _entry(id="custom"))
    before = index.read_bytes()
    with pytest.raises(RunIndexError, match="already exists"):
        append_entry(index, _entry(id="custom"))
    with pytest.raises(RunIndexError, match="status 'done'"):
        update_entry(index, "custom", status="done")
    with pytest.raises(RunIndexError, match="found 0 times"):
        update_entry(index, "nope", status="failed")
    assert index.read_bytes() == before


def test_corrupt_index_is_refused(tmp_path: Path) -> None:
    index = tmp_path / "index.yaml"
    index.write_text("- id: run_001\n  status: [\n")
    with pytest.raises(RunIndexError, match="not valid YAML"):
        append_entry(index, _entry())
    index.write_text("{a: 1}\n")
    with pytest.raises(RunIndexError, match="block-style YAML list"):
        read_entries(index)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, "completed"),
        (130, "interrupted"),
        (143, "interrupted"),
        (-2, "interrupted"),
        (-15, "interrupted"),
        (1, "failed"),
        (137, "failed"),
        (-9, "failed"),
        (2, "failed"),
    ],
)
def test_status_from_exit_code(code: int, status: str) -> None:
    assert status_from_exit_code(code) == status


def _append_worker(index: str, barrier, n: int) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    append_entry(Path(index), _entry(variant=f"v{n}"))


def _update_worker(index: str, barrier, run_id: str) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    update_entry(Path(index), run_id, status="completed", exit_code=0, final_loss=float(run_id[-3:]))


def _run_all(target, args_list) -> None:  # type: ignore[no-untyped-def]
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(args_list))
    procs = [ctx.Process(target=target, args=(a[0], barrier, a[1])) for a in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_fifty_parallel_appends_then_parallel_updates(tmp_path: Path) -> None:
    index = tmp_path / "index.yaml"
    _run_all(_append_worker, [(str(index), n) for n in range(50)])
    entries = read_entries(index)
    assert len(entries) == 50
    assert sorted(e["id"] for e in entries) == [f"run_{i:03d}" for i in range(1, 51)]
    assert sorted(e["variant"] for e in entries) == sorted(f"v{n}" for n in range(50))
    assert all(list(e) == list(FIELDS) and e["status"] == "running" for e in entries)

    _run_all(_update_worker, [(str(index), f"run_{i:03d}") for i in range(1, 51, 2)])
    entries = read_entries(index)
    assert len(entries) == 50
    done = {e["id"]: e for e in entries if e["status"] == "completed"}
    assert sorted(done) == [f"run_{i:03d}" for i in range(1, 51, 2)]
    assert all(e["final_loss"] == float(e["id"][-3:]) for e in done.values())
    assert not list(tmp_path.glob(".index.yaml.*.tmp"))


def test_number_like_strings_stay_strings_for_any_yaml_reader(tmp_path: Path) -> None:
    from ruamel.yaml import YAML

    index = tmp_path / "index.yaml"
    append_entry(index, _entry(config_hash="123e4", git_commit="0123", slurm_job_id="42", variant="yes"))
    for doc in (pyyaml.safe_load(index.read_text()), YAML(typ="safe", pure=True).load(index.read_text())):
        e = doc[0]
        assert (e["config_hash"], e["git_commit"], e["slurm_job_id"], e["variant"]) == (
            "123e4",
            "0123",
            "42",
            "yes",
        )


def test_cli_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    index = tmp_path / "index.yaml"
    append_entry(index, _entry())
    append_entry(index, _entry(variant="lr-sweep"))
    update_entry(
        index,
        "run_002",
        status="completed",
        exit_code=0,
        final_loss=0.5,
        checkpoint_path="artifacts/model/r/checkpoint-6/",
    )
    argv = ["history", "--index", str(index), "--last", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "run_002" in out and "0.5000" in out and "run_001" not in out
    argv = ["history", "--index", str(index), "--json"]
    assert main(argv) == 0
    assert [e["status"] for e in json.loads(capsys.readouterr().out)] == ["running", "completed"]
    index.write_text("- id: [\n")
    assert main(argv) == 1
