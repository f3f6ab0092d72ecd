"""`sft dashboard` in a real browser (Debian's headless Chromium via Selenium) over a real pipeline run.

One module-scoped Snakemake invocation trains the base profile (the bundled Harbor job, converted) and
the `demo-local` variant: a tiny model, 1 CPU rank, 12 steps. The dashboard (`sft dashboard`, a
subprocess) is started before training, the run page is opened while it trains and must advance by
itself; then the finished run, the comparison and the token view are checked against the domain
functions. Screenshots go to artifacts/test-screenshots/ (git-ignored; SFT_SCREENSHOT_DIR overrides).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from sftpipe import config as sc
from sftpipe.data.inspect import inspect_dataset, render_sample
from sftpipe.runs import index as run_index

from tests.integration.browser import ensure_chromium, start_browser
from tests.integration.pipeline import BIN, demo_project, env
from tests.project import edit_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("SFT_SCREENSHOT_DIR", REPO / "artifacts" / "test-screenshots"))
MAX_STEPS = 12


def _wait(predicate, timeout: float, what: str, every: float = 0.5):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    reason = ensure_chromium()
    if reason:
        pytest.skip(reason)
    driver = start_browser()
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir):
    root = demo_project(tmp_path_factory.mktemp("dashboard") / "proj", tiny_model_dir)

    def edit(data):
        tr = data["runtime_info"]["input"]["training"]
        tr.update(deepspeed="", max_steps=MAX_STEPS, save_steps=MAX_STEPS // 2, eval_steps=MAX_STEPS // 2)
        data["runtime_info"]["input"]["infrastructure"]["n_gpus_per_node"] = 1

    edit_config(root / "config/config.yaml", edit)
    return root


@pytest.fixture(scope="module")
def server(project):
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN / "sft"), "dashboard", "--root", str(project), "--port", str(port)],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return urllib.request.urlopen(url + "/api/runs", timeout=2).status == 200
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            return False

    _wait(up, 60, "sft dashboard to listen")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def pipeline(project, server):
    """Snakemake in the background: base (converted Harbor job) and demo-local, trained for real."""
    log = open(project / "snakemake.out", "w")  # noqa: SIM115 (closed at teardown)
    proc = subprocess.Popen(
        [
            str(BIN / "snakemake"),
            "--profile",
            "profiles/default",
            "--cores",
            "2",
            "--config",
            "variants=base,demo-local",
        ],
        cwd=project,
        env=env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=60)
    log.close()


def _finished(pipeline, project) -> None:
    rc = pipeline.wait(timeout=1500)
    assert rc == 0, (project / "snakemake.out").read_text()[-6000:]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=300) as resp:
        return json.loads(resp.read())


def _sft_json(project: Path, *argv: str):
    out = subprocess.run(
        [str(BIN / "sft"), *argv, "--root", str(project), "--json"],
        env=env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def _without_clock(report: dict) -> dict:
    """A status report minus the heartbeat's age, which grows between two reads."""
    report["evidence"].pop("heartbeat_age_s", None)
    return report


def _shot(driver, name: str) -> None:
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_live_run_page_advances_without_reload(browser, project, server, pipeline):
    index = project / "artifacts/index.yaml"
    entry = _wait(
        lambda: (
            next((e for e in run_index.read_entries(index) if e.get("status") == "running"), None)
            if index.is_file()
            else None
        ),
        900,
        "a training run to start",
    )
    browser.get(f"{server}/run/{entry['id']}")
    browser.execute_script("window.__sameDocument = true")
    seen: list[int] = []
    end = time.time() + 900
    while time.time() < end and pipeline.poll() is None:
        text = browser.find_element("id", "step").text
        m = re.fullmatch(r"(\d+) / (\d+)", text)
        if m and (not seen or int(m.group(1)) != seen[-1]):
            seen.append(int(m.group(1)))
            assert int(m.group(2)) == MAX_STEPS
            if len(seen) == 2:
                _shot(browser, "run-live")
        if len(seen) >= 3 or (seen and seen[-1] == MAX_STEPS):
            break
        time.sleep(0.25)
    assert len(seen) >= 2 and seen == sorted(seen), f"the step counter did not advance by itself: {seen}"
    assert browser.execute_script("return window.__sameDocument === true"), "the page reloaded"
    points = browser.execute_script("return document.getElementById('chart-loss').data[0].x.length")
    assert points >= 1  # the loss chart is drawn from the live series


def test_finished_run_page_shows_curves_checkpoints_and_records(browser, project, server, pipeline):
    _finished(pipeline, project)
    runs = _sft_json(project, "runs")
    base = next(r for r in runs if not r["variant"])
    assert _get(f"{server}/api/runs") == runs
    assert _without_clock(_get(f"{server}/api/runs/{base['id']}")) == _without_clock(
        _sft_json(project, "status", base["id"])
    )
    browser.get(f"{server}/run/{base['id']}")
    _wait(lambda: browser.find_element("id", "status").text == "completed", 30, "the completed status")
    _wait(lambda: browser.find_elements("css selector", "#checkpoints tbody tr"), 30, "the checkpoints table")
    assert browser.find_element("id", "step").text == f"{MAX_STEPS} / {MAX_STEPS}"
    rows = [r.text for r in browser.find_elements("css selector", "#checkpoints tbody tr")]
    assert [r.split()[0] for r in rows] == [str(MAX_STEPS // 2), str(MAX_STEPS)] and "latest" in rows[-1]
    assert sum("best (" in r for r in rows) == 1
    assert browser.execute_script("return document.getElementById('chart-loss').data[0].x") == list(
        range(1, MAX_STEPS + 1)
    )
    assert browser.execute_script("return document.getElementById('chart-loss').data[1].x") == [
        MAX_STEPS // 2,
        MAX_STEPS,
    ]
    assert "run started" in browser.find_element("id", "events").text
    assert browser.find_element("id", "log").get_attribute("textContent").strip()
    config = browser.find_element("css selector", "#rec-config pre").get_attribute("textContent")
    assert "data_name: demo_claude_code" in config
    _shot(browser, "run")


def test_runs_page_lists_and_filters(browser, project, server, pipeline):
    _finished(pipeline, project)
    browser.get(server + "/")
    _wait(lambda: len(browser.find_elements("css selector", "#runs tbody tr")) == 2, 30, "two runs listed")
    _shot(browser, "runs")
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "f-variant")).select_by_value("demo-local")
    _wait(lambda: len(browser.find_elements("css selector", "#runs tbody tr")) == 1, 30, "the variant filter")
    assert "demo-local" in browser.find_element("css selector", "#runs tbody tr").text


def test_compare_two_runs(browser, project, server, pipeline):
    _finished(pipeline, project)
    ids = [r["id"] for r in _sft_json(project, "runs")]
    browser.get(f"{server}/compare?runs={','.join(ids)}")
    _wait(lambda: browser.find_elements("css selector", "#diffs tbody tr"), 120, "the config differences")
    assert browser.execute_script("return document.getElementById('chart-train').data.length") == 2
    diffs = browser.find_element("id", "diffs").text
    assert "runtime_info.input.conversion.data_name" in diffs and "demo_local" in diffs
    _shot(browser, "compare")


def test_token_view_marks_trained_and_masked_tokens(browser, project, server, pipeline):
    _finished(pipeline, project)
    cfg = sc.load(root=project)
    rows = json.loads((project / "artifacts/data/lf_data" / f"{cfg.data_name}.json").read_text())
    expected = render_sample(cfg, rows[0])
    browser.get(f"{server}/data?name={cfg.data_name}#sample-0")
    _wait(lambda: browser.find_elements("css selector", "#tokens .tok"), 300, "the token view", every=1)
    trained = len(browser.find_elements("css selector", "#tokens .tok.trained"))
    masked = len(browser.find_elements("css selector", "#tokens .tok.masked"))
    assert trained == expected["n_trained"] == sum(t["trained"] for t in expected["tokens"]) > 0
    assert masked == expected["n_tokens"] - expected["n_trained"] > 0
    assert len(browser.find_elements("css selector", "#tokens .cutoff")) == (
        1 if expected["truncated"] else 0
    )
    first = browser.find_elements("css selector", "#tokens .tok")[0]
    assert (
        first.text == expected["tokens"][0]["text"].strip()
        or first.get_attribute("textContent") == expected["tokens"][0]["text"]
    )
    checks = inspect_dataset(cfg, rows)["checks"]
    _wait(
        lambda: len(browser.find_elements("css selector", "#checks tbody tr")) == len(checks),
        300,
        "the dataset checks",
        every=1,
    )
    shown = {
        tr.get_attribute("data-check"): tr.text
        for tr in browser.find_elements("css selector", "#checks tbody tr")
    }
    assert {c["name"]: ("ok" if c["ok"] else "FAIL") for c in checks} == {
        k: v.split()[1] for k, v in shown.items()
    }
    browser.execute_script("document.getElementById('token-title').scrollIntoView()")
    _shot(browser, "data-tokens")
    browser.execute_script("window.scrollTo(0, 0)")
    _shot(browser, "data")
