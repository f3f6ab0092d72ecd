"""The dashboard's JSON API over real run files and a real conversion, through Starlette's TestClient."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sftpipe.cli import main
from sftpipe.dashboard.app import create_app, plotly_js
from sftpipe.data.conversion.convert import ConversionOptions, convert_job
from sftpipe.runs import index as run_index
from sftpipe.runs.store import RunStore
from starlette.testclient import TestClient

from tests.unit.runs.run_files import add_entry, log_lines, write_checkpoint, write_log, write_run_record

REPO = Path(__file__).resolve().parents[3]
LOSSES = {1: 3.0, 2: 2.8, 3: 2.5, 4: 2.4, 5: 2.2}
EVALS = {2: 2.9, 4: 2.6}
SECRET = "sk-DASHBOARD-test-0b5e6f"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Three runs: completed (variant lr_low), failed (other data), running (this pid, resumed log)."""
    (tmp_path / "artifacts/model").mkdir(parents=True)
    done = tmp_path / "artifacts/model/a"
    write_log(done, log_lines(LOSSES, EVALS, total=5))
    for step in (2, 4):
        write_checkpoint(done, step, LOSSES, EVALS, 5)
    (done / "run_config.yaml").write_text(
        "runtime_info:\n  input:\n    credentials:\n      wandb_api_key: " + SECRET + "\n"
        "    training:\n      learning_rate: 1.0e-4\n"
    )
    (done / "code.diff").write_text("+WANDB_API_KEY=" + SECRET + "\n")
    (done / "environment.json").write_text(json.dumps({"python": "3.11"}))
    RunStore(done).log_event("INFO", "run started", variant="lr_low")
    (tmp_path / "artifacts/logs").mkdir()
    (tmp_path / "artifacts/logs/a.log").write_text(
        "".join(f"line {i}\n" for i in range(300)) + f"api_key={SECRET}\n"
    )
    add_entry(
        tmp_path,
        done,
        status="completed",
        variant="lr_low",
        log="artifacts/logs/a.log",
        completed_at=run_index.utc_now(),
        final_loss=2.2,
    )
    failed = tmp_path / "artifacts/model/b"
    failed.mkdir()
    (failed / "run_config.yaml").write_text(
        "runtime_info:\n  input:\n    training:\n      learning_rate: 3.0e-4\n"
    )
    add_entry(tmp_path, failed, status="failed", data_name="other", error="CUDA out of memory at step 3")
    live = tmp_path / "artifacts/model/c"
    rid = add_entry(tmp_path, live)
    write_run_record(live, rid, os.getpid())
    write_log(live, log_lines({1: 3.0, 2: 2.8, 3: 2.5}, {2: 2.9}, total=10))
    write_log(live, log_lines({3: 2.45, 4: 2.4}, {}, total=10), append=True)  # a resume logs step 3 again
    return tmp_path


@pytest.fixture
def client(root: Path) -> TestClient:
    return TestClient(create_app(root))


def _cli_json(capsys: pytest.CaptureFixture, *argv: str) -> object:
    capsys.readouterr()
    main(list(argv))
    return json.loads(capsys.readouterr().out)


def test_api_runs_is_exactly_sft_runs_json(root, client, capsys):
    assert client.get("/api/runs").json() == _cli_json(capsys, "runs", "--root", str(root), "--json")
    assert [r["id"] for r in client.get("/api/runs").json()] == ["run_003", "run_002", "run_001"]
    for query, argv in (
        ("status=failed", ["--status", "failed"]),
        ("variant=lr_low", ["--variant", "lr_low"]),
        ("data=other", ["--data", "other"]),
    ):
        got = client.get("/api/runs?" + query).json()
        assert got == _cli_json(capsys, "runs", "--root", str(root), "--json", *argv) and len(got) == 1


def test_api_run_is_exactly_sft_status_json(root, client, capsys):
    for rid in ("run_001", "run_002", "run_003"):
        assert client.get(f"/api/runs/{rid}").json() == _cli_json(
            capsys, "status", rid, "--root", str(root), "--json"
        )
    live = client.get("/api/runs/run_003").json()
    assert live["status"] == "running" and live["progress"]["step"] == 4
    assert client.get("/api/runs/b").json()["error"] == "CUDA out of memory at step 3"  # by run name too


def test_series_drops_resume_duplicates(client):
    s = client.get("/api/runs/run_003/series").json()
    assert s["train"]["step"] == [1, 2, 3, 4] and s["train"]["loss"] == [3.0, 2.8, 2.45, 2.4]
    assert s["eval"] == {"step": [2], "loss": [2.9]} and len(s["train"]["lr"]) == 4


def test_checkpoints_mark_best_and_latest(client):
    c = client.get("/api/runs/run_001/checkpoints").json()
    assert c["metric"] == "eval_loss" and (c["best_step"], c["latest_step"]) == (4, 4)
    assert [(r["step"], r["complete"], r["best"], r["latest"]) for r in c["checkpoints"]] == [
        (2, True, False, False),
        (4, True, True, True),
    ]


def test_events_log_tail_and_records_are_redacted(client):
    ev = client.get("/api/runs/run_001/events").json()
    assert [e["message"] for e in ev["events"]] == ["run started"] and ev["error"] is None
    log = client.get("/api/runs/run_001/log?lines=3").json()
    assert log["text"].splitlines()[:2] == ["line 298", "line 299"] and log["truncated"]
    rec = client.get("/api/runs/run_001/records").json()
    body = json.dumps(rec) + log["text"]
    assert (
        SECRET not in body
        and "<redacted>" in rec["config"]["text"]
        and "<redacted>" in rec["code_diff"]["text"]
    )
    assert json.loads(rec["environment"]["text"]) == {"python": "3.11"} and rec["dataset"] is None
    assert client.get("/api/runs/run_002/records").json()["error"] == "CUDA out of memory at step 3"


def test_compare_overlays_runs_and_diffs_config(client):
    res = client.get("/api/compare?runs=run_001,run_002").json()
    assert [r["label"] for r in res["runs"]] == ["run_001", "run_002"]
    assert res["config_differences"]["runtime_info.input.training.learning_rate"] == [1e-4, 3e-4]
    assert not any("credentials" in k for k in res["config_differences"])
    assert [r["step"] for r in res["runs"][0]["series"] if r.get("loss") is not None] == [1, 2, 3, 4, 5]
    assert client.get("/api/compare?runs=run_001").status_code == 400


def test_bad_requests_are_clear_json_errors(client):
    r = client.get("/api/runs/nope")
    assert r.status_code == 404 and "neither a run id" in r.json()["error"]
    assert client.get("/api/runs/..").status_code == 404  # names only, never paths
    assert client.get("/api/runs?status=bogus").json() == []
    assert client.get("/api/runs/run_001/log?lines=many").status_code == 400
    assert client.post("/api/runs").status_code == 405  # read-only: GET only
    assert client.get("/api/data/nope").status_code == 404


@pytest.fixture
def data_root(root: Path) -> Path:
    """The bundled Harbor job converted for real (selection=resolved: the unresolved trial is skipped)."""
    convert_job(
        REPO / "config/demo/harbor_job",
        root / "artifacts/data",
        "demo",
        ConversionOptions(keep_subagents=True),
    )
    return root


def test_data_report_stats_and_sample_browser(data_root, client):
    assert [d["name"] for d in client.get("/api/data").json()] == ["demo"]
    ds = client.get("/api/data/demo").json()
    report = json.loads((data_root / "artifacts/data/demo.report.json").read_text())
    assert ds["report"]["trials"] == report["trials"] and ds["stats"]["rows"] == report["rows"]["written"]
    every = client.get("/api/data/demo/samples").json()
    kept = [s for s in every["samples"] if s["state"] == "kept"]
    assert len(kept) == report["rows"]["written"] and [s["index"] for s in kept] == list(range(len(kept)))
    skipped = client.get("/api/data/demo/samples?state=skipped").json()["samples"]
    assert len(skipped) == report["trials"]["skipped"] > 0 and all(s["reason"] for s in skipped)
    subs = client.get("/api/data/demo/samples?agent_type=subagent").json()["samples"]
    assert subs and all(s["agent_type"] == "subagent" for s in subs)
    high = client.get("/api/data/demo/samples?min_score=0.9").json()["samples"]
    assert all(s["score"] >= 0.9 for s in high)
    one = client.get("/api/data/demo/samples/0").json()
    rows = json.loads((data_root / "artifacts/data/lf_data/demo.json").read_text())
    assert one["lf"] == rows[0] and one["im"]["meta_info"]["trial_name"] == kept[0]["trial_name"]
    assert client.get(f"/api/data/demo/samples/{len(rows)}").status_code == 404
    assert client.get("/api/data/demo/samples?state=lost").status_code == 400


def test_pages_and_bundled_plotly_are_served(client):
    for path in ("/", "/run/run_001", "/compare", "/data", "/static/app.js", "/static/style.css"):
        assert client.get(path).status_code == 200, path
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and js.content == plotly_js().read_bytes()
    assert "https://" not in "".join(client.get(p).text for p in ("/", "/run/x", "/compare", "/data"))


def test_the_dashboard_writes_nothing(data_root, client):
    def snapshot() -> dict[str, tuple[int, int]]:
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in data_root.rglob("*")}

    before = snapshot()
    for path in (
        "/api/runs",
        "/api/runs/run_001",
        "/api/runs/run_003/series",
        "/api/runs/run_001/checkpoints",
        "/api/runs/run_001/events",
        "/api/runs/run_001/log",
        "/api/runs/run_001/records",
        "/api/compare?runs=run_001,run_003",
        "/api/data",
        "/api/data/demo",
        "/api/data/demo/samples",
        "/api/data/demo/samples/0",
    ):
        assert client.get(path).status_code == 200, path
    assert snapshot() == before


def test_cli_binds_localhost_by_default_and_rejects_a_non_project(tmp_path, capsys):
    from sftpipe.cli import build_parser

    args = build_parser().parse_args(["dashboard"])
    assert (args.host, args.port, args.root) == ("127.0.0.1", 8765, Path("."))
    assert main(["dashboard", "--root", str(tmp_path / "nowhere"), "--port", "1"]) == 2
    assert "not a project root" in capsys.readouterr().err


def test_token_view_without_a_config_for_the_dataset_is_a_clear_error(data_root, client):
    r = client.get("/api/data/demo/samples/0/tokens")
    assert r.status_code == 422 and "data_name 'demo'" in r.json()["error"]
    assert client.get("/api/data/demo/checks").status_code == 422
