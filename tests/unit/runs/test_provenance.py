"""Run records: events, heartbeat, environment, dataset fingerprint, code diff; never a credential."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from importlib import metadata

import pytest
from sftpipe import config as sc
from sftpipe import paths
from sftpipe.data.registration import register
from sftpipe.runs import provenance as records
from sftpipe.runs.store import RunStore, heartbeat

from tests.project import edit_config, make_project

SECRET = "sk-UNIQUE-4f1c9e2b7a-SECRET"


def test_log_event_structure_and_levels(tmp_path):
    rec = RunStore(tmp_path).log_event("info", "checkpoint saved", step=4, path="checkpoint-4")
    RunStore(tmp_path).log_event("WARNING", "slow step", seconds=12.5)
    events = RunStore(tmp_path).read_events()
    assert [e["level"] for e in events] == ["INFO", "WARNING"]
    assert events[0] == rec and set(rec) == {"timestamp", "level", "message", "data"}
    assert rec["data"] == {"step": 4, "path": "checkpoint-4"} and rec["timestamp"].endswith("Z")
    with pytest.raises(ValueError, match="level 'LOUD'"):
        RunStore(tmp_path).log_event("loud", "x")


def test_heartbeat_thread_beats_and_closes(tmp_path):
    with heartbeat(RunStore(tmp_path), interval_s=0.05, run_id="run_007") as hb:
        deadline = time.monotonic() + 10
        while hb.beats < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        live = json.loads((tmp_path / paths.HEARTBEAT).read_text())
        assert (
            live["alive"] is True and live["run_id"] == "run_007" and abs(live["unix_time"] - time.time()) < 5
        )
    final = json.loads((tmp_path / paths.HEARTBEAT).read_text())
    assert final["alive"] is False and not hb._thread.is_alive()


def test_environment_info_reports_installed_versions(tmp_path):
    (tmp_path / "uv.lock").write_text("version = 1\n")
    info = records.environment_info(tmp_path)
    assert info["packages"]["transformers"] == metadata.version("transformers")
    assert info["packages"]["llamafactory"] == metadata.version("llamafactory")
    assert info["packages"]["deepspeed"] == metadata.version("deepspeed")
    assert info["uv_lock_sha256"] == hashlib.sha256(b"version = 1\n").hexdigest()
    assert info["python"].startswith("3.") and isinstance(info["gpus"], list)


def test_dataset_fingerprint_of_the_lf_file(tmp_path):
    rows = [
        {"conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": "a"}]}
        for i in range(3)
    ]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    (tmp_path / "dataset_info.json").write_text(
        json.dumps({"d": {"file_name": "d.json", "formatting": "sharegpt"}, "hub": {"hf_hub_url": "org/ds"}})
    )
    fp = records.dataset_fingerprint(tmp_path, "d")
    assert fp["rows"] == 3 and fp["size_bytes"] == (tmp_path / "d.json").stat().st_size
    assert fp["sha256"] == hashlib.sha256((tmp_path / "d.json").read_bytes()).hexdigest()
    assert records.dataset_fingerprint(tmp_path, "hub")["source"] == "hub"
    assert "no entry 'x'" in records.dataset_fingerprint(tmp_path, "x")["error"]


@pytest.fixture
def project_with_secret(tmp_path, monkeypatch):
    """A git checkout of the project whose config.yaml holds credentials as an uncommitted change."""
    root = make_project(tmp_path / "proj", link_code=False)
    git = ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "config"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)

    def put_secrets(data):
        data["runtime_info"]["input"]["source"].update(type="local_lf", lf_path="config/demo/lf_demo.json")
        data["runtime_info"]["input"]["conversion"]["data_name"] = "demo_sft"
        data["runtime_info"]["input"]["credentials"]["wandb_api_key"] = SECRET
        data["runtime_info"]["input"]["credentials"]["hf_token"] = SECRET + "-hf"

    edit_config(root / "config/config.yaml", put_secrets)
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    monkeypatch.setenv("HF_TOKEN", SECRET + "-hf")
    return root


def test_start_records_hold_no_credential(project_with_secret):
    root = project_with_secret
    cfg = sc.load(root=root)
    register(cfg, root / paths.LF_DATA_DIR / "dataset_info.json", root / "artifacts/data/registered.json")
    run_dir = root / cfg.run_dir
    fingerprint = records.write_start_records(cfg, RunStore(run_dir))
    RunStore(run_dir).log_event("INFO", "launch", env={"WANDB_API_KEY": SECRET}, note=f"token {SECRET}-hf")
    records.write_checkpoint_index(RunStore(run_dir))

    diff = (run_dir / paths.CODE_DIFF).read_text()
    assert "wandb_api_key: <redacted>" in diff  # the change is recorded, its value is not
    env = json.loads((run_dir / paths.ENVIRONMENT).read_text())
    assert env["packages"]["torch"] == metadata.version("torch")
    ds = json.loads((run_dir / paths.DATASET_FINGERPRINT).read_text())
    lf_file = root / "config/demo/lf_demo.json"
    assert ds["sha256"] == hashlib.sha256(lf_file.read_bytes()).hexdigest()
    assert ds["rows"] == len(json.loads(lf_file.read_text()))
    assert RunStore(run_dir).read_events()[0]["message"] == "run started"
    assert all(
        (run_dir / name).is_file()
        for name in (paths.CODE_DIFF, paths.ENVIRONMENT, paths.DATASET_FINGERPRINT, paths.EVENTS)
    )
    assert fingerprint["sha256"] == json.loads((run_dir / paths.DATASET_FINGERPRINT).read_text())["sha256"]

    leaks = [p for p in (root / "artifacts").rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []


def test_end_records_index_checkpoints_and_log_the_end(tmp_path):
    from tests.unit.runs.run_files import log_lines, write_checkpoint, write_log

    losses, evals = {1: 3.0, 2: 2.5}, {2: 2.6}
    write_log(tmp_path, log_lines(losses, evals, total=2))
    write_checkpoint(tmp_path, 2, losses, evals, 2)
    write_checkpoint(tmp_path, 3, losses, evals, 3, complete=False)
    records.write_end_records(RunStore(tmp_path), "crashed", -9)
    index = [json.loads(line) for line in (tmp_path / paths.CHECKPOINT_INDEX).read_text().splitlines()]
    assert [(c["step"], c["complete"], c["loss"], c["eval_loss"]) for c in index] == [
        (2, True, 2.5, 2.6),
        (3, False, 2.5, None),
    ]
    end = RunStore(tmp_path).read_events()[-1]
    assert end["level"] == "WARNING" and end["message"] == "run ended"
    assert end["data"] == {"status": "crashed", "exit_code": -9, "checkpoints": 2, "complete_checkpoints": 1}
