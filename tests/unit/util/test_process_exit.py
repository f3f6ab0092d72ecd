"""exit_now: the exit code, and everything an ordinary interpreter exit does that can be observed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

CHILD = textwrap.dedent(
    """
    import atexit, concurrent.futures, sys, threading, time
    from pathlib import Path
    from sftpipe.util.process_exit import exit_now

    out = Path(sys.argv[1])

    def late_write(name, delay):
        time.sleep(delay)
        (out / name).write_text("done")

    threading.Thread(target=late_write, args=("thread.txt", 0.3)).start()  # non-daemon: must be joined
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    pool.submit(late_write, "pool-1.txt", 0.2)
    pool.submit(late_write, "pool-2.txt", 0.0)  # still queued when exit_now is called
    atexit.register(lambda: (out / "atexit.txt").write_text("ran"))
    sys.stdout.write("unflushed stdout")  # no newline: sits in the buffer
    exit_now(3)
    (out / "after.txt").write_text("exit_now returned")
    """
)


def run_child(tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO / "workflow"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_exit_now_keeps_the_exit_code_and_does_what_interpreter_exit_does(tmp_path):
    proc = run_child(tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "unflushed stdout"
    assert (tmp_path / "thread.txt").read_text() == "done"
    assert (tmp_path / "pool-1.txt").exists() and (tmp_path / "pool-2.txt").exists()
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert not (tmp_path / "after.txt").exists()


def test_sft_console_script_exit_codes(tmp_path):
    """The installed `sft` goes through exit_now: 0 on success, 2 on a config error, 2 on a usage error."""
    sft = Path(sys.executable).parent / "sft"
    ok = subprocess.run(
        [str(sft), "record", "--help"], check=False, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0 and "usage" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("runtime_info: [not, a, mapping]\n")
    invalid = subprocess.run(
        [str(sft), "validate", "--config", str(bad)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert invalid.returncode == 2, invalid.stderr
    usage = subprocess.run(
        [str(sft), "no-such-command"], check=False, capture_output=True, text=True, timeout=120
    )
    assert usage.returncode == 2
