#!/usr/bin/env python3
"""Capture one Harbor-shaped trial: run a real agent client against the scripted model server.

Creates a fresh workspace from `task/`, starts `model_server.py` with the scenario,
runs the client headless (Claude Code, OpenCode or the OpenHands SDK), kills it on
timeout the way Harbor does (AgentTimeoutError), runs the verifier (the task's own
test) and writes the trial directory:

    <job_dir>/<trial_name>/{config.json, result.json, exception.txt?,
                            agent/litellm-trajectory.jsonl, agent/<client>.txt,
                            verifier/{reward.txt, test-stdout.txt}}

Stdlib only. Clients are looked up under $CAPTURE_TOOLS (default /work/capture-tools):
node_modules/.bin/{claude,opencode} and venv/bin/python with openhands-sdk/-tools.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = Path(os.environ.get("CAPTURE_TOOLS", "/work/capture-tools"))
CAPTURE_ROOT = Path(os.environ.get("CAPTURE_ROOT", "/tmp/sftpipe-capture"))
DATASET = "sftpipe-capture"


@dataclass(frozen=True)
class ClientSpec:
    agent_name: str  # Harbor agent name
    model_name: str  # Harbor config agent.model_name (provider/model)
    raw_output: str  # file name under agent/ for the client's stdout


CLIENTS = {
    "claude-code": ClientSpec("claude-code", "anthropic/claude-sonnet-4-5-20250929", "claude-code.txt"),
    "opencode": ClientSpec("opencode", "scripted/scripted-model", "opencode.txt"),
    "openhands-sdk": ClientSpec("openhands-sdk", "openai/scripted-model", "openhands-sdk.txt"),
}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def client_version(client: str) -> str:
    if client == "claude-code":
        out = subprocess.run(
            [str(TOOLS / "node_modules/.bin/claude"), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return out.split()[0]
    if client == "opencode":
        out = subprocess.run(
            [str(TOOLS / "node_modules/.bin/opencode"), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return out.strip().splitlines()[-1]
    out = subprocess.run(
        [
            str(TOOLS / "venv/bin/python"),
            "-c",
            "import importlib.metadata as m; print(m.version('openhands-sdk'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return out.strip()


def client_command(
    client: str, port: int, workdir: Path, home: Path, instruction: str
) -> tuple[list[str], dict[str, str]]:
    """Command line and environment for one headless client run."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "CLAUDE", "OPENCODE"))
    }
    # PWD must match cwd: OpenCode takes its project directory from it. TMPDIR and
    # TMUX_TMPDIR keep client scratch files (Claude Code task outputs, the OpenHands
    # terminal's tmux socket) inside this trial's scratch dir.
    tmp = home.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    env.update({"TMPDIR": str(tmp), "CLAUDE_CODE_TMPDIR": str(tmp), "TMUX_TMPDIR": str(tmp)})
    env.update(
        {
            "PWD": str(workdir),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_STATE_HOME": str(home / ".local/state"),
        }
    )
    base = f"http://127.0.0.1:{port}"
    if client == "claude-code":
        env.update(
            {
                "ANTHROPIC_BASE_URL": base,
                "ANTHROPIC_API_KEY": "sk-ant-dummy",
                # root may only bypass permissions inside a declared sandbox
                "IS_SANDBOX": "1",
                "DISABLE_TELEMETRY": "1",
                "DISABLE_AUTOUPDATER": "1",
                "DISABLE_ERROR_REPORTING": "1",
            }
        )
        cmd = [
            str(TOOLS / "node_modules/.bin/claude"),
            "-p",
            instruction,
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
            "--model",
            CLIENTS[client].model_name.split("/", 1)[1],
            # A reduced built-in tool set and no skills keep each logged request
            # (system prompt + tool schemas) at ~50 KB instead of ~90 KB.
            "--tools",
            "Bash,Read,Edit,Write,Agent",
            "--disable-slash-commands",
        ]
        return cmd, env
    if client == "opencode":
        config = {
            "$schema": "https://opencode.ai/config.json",
            "autoupdate": False,
            "share": "disabled",
            "model": "scripted/scripted-model",
            "small_model": "scripted/scripted-model",
            "permission": {
                "edit": "allow",
                "bash": "allow",
                "webfetch": "allow",
                "external_directory": "allow",
            },
            "provider": {
                "scripted": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Scripted",
                    "options": {"baseURL": f"{base}/v1", "apiKey": "sk-dummy"},
                    "models": {
                        "scripted-model": {
                            "name": "Scripted Model",
                            "tool_call": True,
                            "reasoning": True,
                            "limit": {"context": 200000, "output": 8192},
                        }
                    },
                }
            },
        }
        config_path = home / "opencode-config.json"
        config_path.write_text(json.dumps(config, indent=2))
        env.update(
            {
                "OPENCODE_CONFIG": str(config_path),
                "OPENCODE_DISABLE_AUTOUPDATE": "1",
                "OPENCODE_DISABLE_MODELS_FETCH": "1",
            }
        )
        cmd = [
            str(TOOLS / "node_modules/.bin/opencode"),
            "run",
            "--format",
            "json",
            "--model",
            "scripted/scripted-model",
            instruction,
        ]
        return cmd, env
    instruction_file = home / "instruction.md"
    instruction_file.write_text(instruction)
    env.update({"OPENHANDS_SUPPRESS_BANNER": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    cmd = [
        str(TOOLS / "venv/bin/python"),
        str(HERE / "run_openhands.py"),
        "--base-url",
        f"{base}/v1",
        "--workdir",
        str(workdir),
        "--instruction-file",
        str(instruction_file),
        "--model",
        CLIENTS[client].model_name,
    ]
    return cmd, env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a process group we started (client or server), then make sure."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for_client(
    client: subprocess.Popen[bytes], timeout: float, stall_file: Path, stall_grace: float = 3.0
) -> int | None:
    """Exit code of the client, or None when it had to be killed as timed out.

    A scripted stall means the model will never answer, which is what an agent
    timeout looks like from the outside; waiting out the full timeout would only
    make captures slow and load-dependent, so the client is killed `stall_grace`
    seconds after the stall began.
    """
    deadline = time.time() + timeout
    while time.time() < deadline:
        rc = client.poll()
        if rc is not None:
            return rc
        if stall_file.exists() and time.time() - stall_file.stat().st_mtime > stall_grace:
            return None
        time.sleep(0.2)
    return client.poll()


def kill_tmux_servers(tmp: Path) -> None:
    """Stop tmux servers whose sockets live in this trial's TMUX_TMPDIR.

    tmux daemonizes out of the client's process group, so killing the client (for
    example on an agent timeout) leaves the OpenHands terminal session running.
    """
    for socket in tmp.glob("tmux-*/*"):
        if socket.is_socket():
            # A server that already exited is fine: check=False.
            subprocess.run(
                ["tmux", "-S", str(socket), "kill-server"], capture_output=True, timeout=30, check=False
            )


def run_verifier(workdir: Path, verifier_dir: Path) -> float:
    result = subprocess.run(
        [sys.executable, "test_calc.py"], cwd=workdir, capture_output=True, text=True, timeout=60, check=False
    )
    (verifier_dir / "test-stdout.txt").write_text(result.stdout + result.stderr)
    reward = 1.0 if result.returncode == 0 else 0.0
    (verifier_dir / "reward.txt").write_text(f"{reward}\n")
    return reward


def token_totals(log_path: Path) -> tuple[int, int]:
    n_in = n_out = 0
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            record = json.loads(line)
            usage = record.get("usage") or {}
            n_in += int(usage.get("prompt_tokens", 0))
            n_out += int(usage.get("completion_tokens", 0))
    return n_in, n_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", required=True, choices=sorted(CLIENTS))
    parser.add_argument("--scenario", required=True, type=Path)
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--trial-name", required=True)
    parser.add_argument("--job-dir", required=True, type=Path)
    parser.add_argument("--job-id", required=True)
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="agent timeout in seconds (AgentTimeoutError past it)"
    )
    args = parser.parse_args(argv)

    spec = CLIENTS[args.client]
    trial_dir = args.job_dir / args.trial_name
    if trial_dir.exists():
        shutil.rmtree(trial_dir)
    agent_dir, verifier_dir = trial_dir / "agent", trial_dir / "verifier"
    agent_dir.mkdir(parents=True)
    verifier_dir.mkdir()
    scratch = CAPTURE_ROOT / args.trial_name
    if scratch.exists():
        shutil.rmtree(scratch)
    workdir, home = scratch / "repo", scratch / "home"
    shutil.copytree(HERE / "task", workdir, ignore=shutil.ignore_patterns("instruction.md"))
    home.mkdir(parents=True)
    instruction = (HERE / "task" / "instruction.md").read_text().strip()
    log_path = agent_dir / "litellm-trajectory.jsonl"
    log_path.touch()

    started = time.time()
    port_file = scratch / "port"
    stall_file = scratch / "stalled"
    server_log = open(scratch / "model_server.log", "w")  # noqa: SIM115 -- closed in finally below
    server = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "model_server.py"),
            "--script",
            str(args.scenario),
            "--log",
            str(log_path),
            "--workdir",
            str(workdir),
            "--session-id",
            str(uuid.uuid4()),
            "--port-file",
            str(port_file),
            "--stall-file",
            str(stall_file),
        ],
        stderr=server_log,
        start_new_session=True,
    )
    try:
        for _ in range(100):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.1)
        port = int(port_file.read_text())
        cmd, env = client_command(args.client, port, workdir, home, instruction)
        agent_started = time.time()
        with open(agent_dir / spec.raw_output, "wb") as out, open(scratch / "client.stderr", "wb") as err:
            client = subprocess.Popen(
                cmd,
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            exception: dict[str, str] | None = None
            try:
                rc = wait_for_client(client, args.timeout, stall_file)
                if rc is None:
                    exception = {
                        "exception_type": "AgentTimeoutError",
                        "exception_message": f"Agent execution timed out after {args.timeout} seconds",
                    }
                elif rc != 0:
                    exception = {
                        "exception_type": "NonZeroAgentExitCodeError",
                        "exception_message": f"Agent exited with code {rc}",
                    }
            finally:
                _stop(client)
        agent_finished = time.time()
    finally:
        _stop(server)
        server_log.close()
        kill_tmux_servers(scratch / "tmp")

    reward = run_verifier(workdir, verifier_dir)
    finished = time.time()
    exception_info = None
    if exception is not None:
        occurred = _iso(agent_finished)
        traceback = (
            "Traceback (most recent call last):\n  ...\n"
            f"harbor.trial.errors.{exception['exception_type']}: "
            f"{exception['exception_message']}\n"
        )
        exception_info = {**exception, "exception_traceback": traceback, "occurred_at": occurred}
        (trial_dir / "exception.txt").write_text(traceback)

    task_path = f"/data/tasks/{DATASET}/{args.instance_id}"
    trial_config = {
        "task": {
            "path": task_path,
            "git_url": None,
            "git_commit_id": None,
            "name": None,
            "ref": None,
            "overwrite": False,
            "download_dir": None,
            "source": DATASET,
        },
        "trial_name": args.trial_name,
        "trials_dir": f"jobs/{args.job_dir.name}",
        "timeout_multiplier": 1.0,
        "agent": {
            "name": spec.agent_name,
            "import_path": None,
            "model_name": spec.model_name,
            "override_timeout_sec": args.timeout,
            "kwargs": {},
            "env": {},
        },
        "environment": {"type": "docker", "force_build": False, "delete": True, "env": {}, "kwargs": {}},
        "verifier": {"override_timeout_sec": None, "env": {}, "disable": False},
        "artifacts": [],
        "job_id": args.job_id,
    }
    provider, model = spec.model_name.split("/", 1)
    n_in, n_out = token_totals(log_path)
    result = {
        "id": str(uuid.uuid4()),
        "task_name": args.instance_id,
        "trial_name": args.trial_name,
        "trial_uri": f"file:///jobs/{args.job_dir.name}/{args.trial_name}",
        "task_id": {"path": task_path},
        "source": DATASET,
        "task_checksum": None,
        "config": trial_config,
        "agent_info": {
            "name": spec.agent_name,
            "version": client_version(args.client),
            "model_info": {"name": model, "provider": provider},
        },
        "agent_result": {
            "n_input_tokens": n_in,
            "n_cache_tokens": 0,
            "n_output_tokens": n_out,
            "cost_usd": 0.0,
            "rollout_details": None,
            "metadata": None,
        },
        "verifier_result": {"rewards": {"reward": reward}},
        "exception_info": exception_info,
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "environment_setup": {"started_at": _iso(started), "finished_at": _iso(started)},
        "agent_setup": {"started_at": _iso(started), "finished_at": _iso(agent_started)},
        "agent_execution": {"started_at": _iso(agent_started), "finished_at": _iso(agent_finished)},
        "verifier": {"started_at": _iso(agent_finished), "finished_at": _iso(finished)},
        "step_results": None,
    }
    (trial_dir / "config.json").write_text(json.dumps(trial_config, indent=4) + "\n")
    # result.json last: Harbor writes it when the trial is complete.
    (trial_dir / "result.json").write_text(json.dumps(result, indent=4) + "\n")
    print(
        f"{args.trial_name}: reward={reward} exception="
        f"{exception_info['exception_type'] if exception_info else None} "
        f"calls={len(log_path.read_text().splitlines())}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
