"""The scripted capture server (tools/capture/model_server.py) speaks both APIs and logs proxy records.

It runs as a real subprocess on 127.0.0.1; requests go over real HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SERVER = Path(__file__).resolve().parents[3] / "tools" / "capture" / "model_server.py"

SCRIPT = {
    "chains": {
        "main": {
            "turns": [
                {
                    "thinking": "look first",
                    "text": "Reading.",
                    "tool_calls": [
                        {"name": "Read", "arguments": {"file_path": "{workdir}/a.py"}},
                        {"name": "Bash", "arguments": {"command": "ls"}},
                    ],
                },
                {"text": "Done."},
            ]
        },
        "sub": {"match": "SUB-MARK", "turns": [{"text": "sub answer"}]},
    },
    "fail": [{"chain": "main", "turn": 1}],
    "side_text": "A title",
}
TOOLS = [{"name": "Read", "description": "read", "input_schema": {"type": "object", "properties": {}}}]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    log = tmp_path / "log.jsonl"
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--script", str(script), "--log", str(log)]
        + ["--workdir", "/ws", "--session-id", "sess-1", "--port-file", str(port_file)],
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text()}", log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_anthropic_stream_then_injected_failure_then_retry(server: tuple[str, Path]) -> None:
    base, log = server
    first = {
        "model": "claude-x",
        "max_tokens": 100,
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 50},
        "system": [{"type": "text", "text": "sys block"}],
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "fix it"}],
    }
    status, raw = _post(f"{base}/v1/messages", first)
    assert status == 200
    events = [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use", "tool_use"]
    tool_json = [
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    ]
    assert json.loads(tool_json[0]) == {"file_path": "/ws/a.py"}  # {workdir} substituted

    second = dict(first, stream=False)
    second["messages"] = first["messages"] + [
        {"role": "assistant", "content": [{"type": "text", "text": "Reading."}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
    ]
    assert _post(f"{base}/v1/messages", second)[0] == 500  # scripted failure, once
    status, raw = _post(f"{base}/v1/messages", second)
    assert status == 200 and json.loads(raw)["content"] == [{"type": "text", "text": "Done."}]

    ok, failed, retried = _records(log)
    assert {r["session_id"] for r in (ok, failed, retried)} == {"sess-1"}
    body = ok["request_body"]
    assert body["messages"][0] == {"role": "system", "content": [{"type": "text", "text": "sys block"}]}
    assert "system" not in body and body["max_tokens"] == 100
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Read",
                "description": "read",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    message = ok["response_body"]["choices"][0]["message"]
    assert ok["response_body"]["object"] == "chat.completion"
    assert message["reasoning_content"] == "look first" and message["thinking_blocks"][0]["signature"]
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["Read", "Bash"]
    assert ok["response_body"]["choices"][0]["finish_reason"] == "tool_calls"
    assert failed["success"] is False and failed["response_body"] is None and failed["failure"]
    assert retried["success"] is True and retried["request_body"] == failed["request_body"]
    assert retried["request_time"] >= failed["request_time"] >= ok["request_time"]


def test_openai_side_call_subagent_and_stream_usage(server: tuple[str, Path]) -> None:
    base, log = server
    title = {
        "model": "m",
        "messages": [{"role": "system", "content": "title"}, {"role": "user", "content": "q"}],
    }
    status, raw = _post(f"{base}/v1/chat/completions", title)
    assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == "A title"

    sub = {
        "model": "m",
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}],
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "SUB-MARK: go"}],
    }
    status, raw = _post(f"{base}/v1/chat/completions", sub)
    lines = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "sub answer"
    )
    assert chunks[-1]["usage"]["total_tokens"] > 0

    side, sub_record = _records(log)
    assert side["response_body"]["choices"][0]["message"]["content"] == "A title"
    assert sub_record["request_body"]["messages"] == sub["messages"]
    assert "thinking_blocks" not in sub_record["response_body"]["choices"][0]["message"]
