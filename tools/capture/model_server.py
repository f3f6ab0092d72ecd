#!/usr/bin/env python3
"""Scripted model server for capturing real coding-agent traffic offline.

Serves the Anthropic Messages API (`/v1/messages`, count_tokens) and the OpenAI
Chat Completions API (`/v1/chat/completions`, `/v1/models`), streaming and not,
on 127.0.0.1 only. Answers come from a per-scenario SCRIPT, and every call is
appended to a JSONL log in the LiteLLM proxy record format (specs/inputs.md §2),
so the log looks like what the trajectory-generation proxy writes.

Stdlib only on purpose: it runs in whatever interpreter the capture scripts use.

Script (JSON) shape::

    {"chains": {"main": {"turns": [TURN, ...]},
                "sub":  {"match": "marker text", "turns": [TURN, ...]}},
     "fail":  [{"chain": "main", "turn": 1}],      # HTTP 500 once for that turn
     "stall": {"chain": "main", "turn": 3},        # never answer that turn
     "side_text": "Fix failing add test"}          # answer for tool-less side calls
    TURN = {"thinking"?: str, "text"?: str,
            "tool_calls"?: [{"name": str, "arguments": {...}}]}

A request belongs to the first chain whose `match` occurs in its first user
message (chains without `match` are the fallback); its turn index is the number
of assistant messages already in the history, so a retried request gets the
same answer. Requests without tools are side calls (titles, probes).
The placeholder `{workdir}` in the script is replaced by --workdir.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNATURE_PREFIX = "c2NyaXB0ZWQtc2lnbmF0dXJl"  # base64("scripted-signature")


def _estimate_tokens(obj: Any) -> int:
    """Rough token count (4 chars per token) so usage fields are plausible."""
    return max(1, len(json.dumps(obj, ensure_ascii=False)) // 4)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return "\n".join(parts)
    return ""


class Script:
    """Holds the scenario and the per-run state (which failures were injected)."""

    def __init__(self, data: dict[str, Any], workdir: str) -> None:
        raw = json.dumps(data).replace("{workdir}", workdir)
        self.data = json.loads(raw)
        self.chains: dict[str, dict[str, Any]] = self.data["chains"]
        self.pending_failures = [(f["chain"], int(f["turn"])) for f in self.data.get("fail", [])]
        stall = self.data.get("stall")
        self.stall = (stall["chain"], int(stall["turn"])) if stall else None
        self.side_text: str = self.data.get("side_text", "Scripted task")
        self.lock = threading.Lock()

    def classify(self, messages: list[dict[str, Any]], has_tools: bool) -> tuple[str, int]:
        """Return (chain name or 'side', turn index) for a request."""
        if not has_tools:
            return "side", 0
        first_user = next((m for m in messages if m.get("role") == "user"), {})
        first_text = _text_of(first_user.get("content"))
        chosen = None
        for name, chain in self.chains.items():
            marker = chain.get("match")
            if marker and marker in first_text:
                chosen = name
                break
        if chosen is None:
            chosen = next(n for n, c in self.chains.items() if not c.get("match"))
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        return chosen, turn

    def take_failure(self, chain: str, turn: int) -> bool:
        with self.lock:
            if (chain, turn) in self.pending_failures:
                self.pending_failures.remove((chain, turn))
                return True
        return False

    def turn(self, chain: str, turn: int) -> dict[str, Any]:
        turns = self.chains[chain]["turns"]
        if turn < len(turns):
            return turns[turn]
        # Past the script: end the conversation politely instead of looping.
        return {"text": "Done."}


def _call_id(prefix: str, chain: str, turn: int, index: int, salt: str) -> str:
    digest = hashlib.sha256(f"{salt}/{chain}/{turn}/{index}".encode()).hexdigest()[:24]
    return f"{prefix}{digest}"


class ProxyLog:
    """Appends LiteLLM-proxy-shaped records, one JSON line per model call."""

    def __init__(self, path: str, session_id: str) -> None:
        self.path = path
        self.session_id = session_id
        self.lock = threading.Lock()

    def write(
        self,
        request_body: dict[str, Any],
        response_body: dict[str, Any] | None,
        started: float,
        failure: dict[str, Any] | None = None,
    ) -> None:
        finished = time.time()
        usage = response_body["usage"] if response_body else {}
        record: dict[str, Any] = {
            "session_id": self.session_id,
            "success": failure is None,
            "request_time": int(finished * 1000),
            "timestamp": datetime.fromtimestamp(finished, UTC).isoformat(),
            "duration_ms": int((finished - started) * 1000),
            "request_body": request_body,
            "response_body": response_body,
            "usage": usage,
        }
        if failure is not None:
            record["failure"] = failure
        with self.lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def _openai_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic tool definitions → OpenAI function form, as the proxy logs them."""
    out = []
    for tool in tools:
        if tool.get("type") == "function":
            out.append(tool)
            continue
        function: dict[str, Any] = {"name": tool.get("name")}
        if "description" in tool:
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema", {"type": "object", "properties": {}})
        out.append({"type": "function", "function": function})
    return out


def anthropic_request_for_log(body: dict[str, Any]) -> dict[str, Any]:
    """Proxy view of an Anthropic request: system prepended, tools in OpenAI form."""
    logged = {k: v for k, v in body.items() if k not in ("system", "messages", "tools")}
    messages = list(body.get("messages", []))
    system = body.get("system")
    if system:
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
        messages.insert(0, {"role": "system", "content": blocks})
    logged["messages"] = messages
    if "tools" in body:
        logged["tools"] = _openai_tools(body["tools"])
    return logged


def completion_record(
    model: str,
    turn: dict[str, Any],
    tool_ids: list[str],
    with_thinking: bool,
    prompt_tokens: int,
    msg_id: str,
    thinking_blocks: bool,
) -> dict[str, Any]:
    """The OpenAI chat.completion the proxy logs for a scripted turn.

    `thinking_blocks` (with signatures) exist only when the upstream is Anthropic;
    an OpenAI-compatible upstream returns `reasoning_content` alone.
    """
    message: dict[str, Any] = {"role": "assistant", "content": turn.get("text")}
    thinking = turn.get("thinking") if with_thinking else None
    if thinking:
        message["reasoning_content"] = thinking
    if thinking and thinking_blocks:
        message["thinking_blocks"] = [
            {"type": "thinking", "thinking": thinking, "signature": SIGNATURE_PREFIX + msg_id[-8:]}
        ]
    calls = turn.get("tool_calls") or []
    if calls:
        message["tool_calls"] = [
            {
                "id": tid,
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for tid, c in zip(tool_ids, calls)
        ]
    completion_tokens = _estimate_tokens(turn)
    return {
        "id": msg_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "tool_calls" if calls else "stop", "message": message}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "cost": 0.0,
        },
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ModelServer

    def log_message(self, fmt: str, *args: Any) -> None:  # quieter stderr
        sys.stderr.write("[model_server] " + (fmt % args) + "\n")

    # -- plumbing -----------------------------------------------------------
    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        return json.loads(raw or b"{}")

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_sse(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- routes -------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path.endswith("/models"):
            model = self.server.model_name
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": model,
                            "object": "model",
                            "type": "model",
                            "created": 0,
                            "owned_by": "scripted",
                            "display_name": model,
                        }
                    ],
                    "has_more": False,
                    "first_id": model,
                    "last_id": model,
                },
            )
        else:
            self._send_json(200, {"status": "ok"})

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        body = self._read_json()
        if path.endswith("/messages/count_tokens"):
            self._send_json(200, {"input_tokens": _estimate_tokens(body)})
        elif path.endswith("/messages"):
            self._anthropic(body)
        elif path.endswith("/chat/completions"):
            self._openai(body)
        else:
            self._send_json(404, {"error": {"message": f"unknown path {self.path}"}})

    # -- shared decision ----------------------------------------------------
    def _decide(self, messages: list[dict[str, Any]], has_tools: bool) -> tuple[str, int, str]:
        """Return (chain, turn, action) with action in answer|fail|stall|side."""
        script = self.server.script
        chain, turn = script.classify(messages, has_tools)
        if chain == "side":
            return chain, turn, "side"
        if script.stall == (chain, turn):
            return chain, turn, "stall"
        if script.take_failure(chain, turn):
            return chain, turn, "fail"
        return chain, turn, "answer"

    def _stall(self) -> None:
        # Never answer: the capture harness kills the client (agent timeout).
        if self.server.stall_file:
            with open(self.server.stall_file, "w", encoding="utf-8") as fh:
                fh.write(f"{time.time()}\n")
        while not self.server.stopping.wait(1.0):
            pass

    # -- Anthropic ----------------------------------------------------------
    def _anthropic(self, body: dict[str, Any]) -> None:
        started = time.time()
        log_body = anthropic_request_for_log(body)
        messages = body.get("messages", [])
        chain, turn_no, action = self._decide(messages, bool(body.get("tools")))
        sys.stderr.write(f"[model_server] anthropic chain={chain} turn={turn_no} action={action}\n")
        if action == "stall":
            self._stall()
            return
        if action == "fail":
            self._fail(log_body, started, anthropic=True)
            return
        model = body.get("model", self.server.model_name)
        if action == "side":
            turn = {"text": self._side_text(body)}
        else:
            turn = self.server.script.turn(chain, turn_no)
        thinking_cfg = body.get("thinking") or {}
        with_thinking = thinking_cfg.get("type") in ("enabled", "adaptive")
        msg_id = "msg_" + uuid.uuid4().hex[:24]
        calls = turn.get("tool_calls") or []
        tool_ids = [_call_id("toolu_", chain, turn_no, i, self.server.salt) for i in range(len(calls))]
        blocks: list[dict[str, Any]] = []
        if with_thinking and turn.get("thinking"):
            blocks.append(
                {
                    "type": "thinking",
                    "thinking": turn["thinking"],
                    "signature": SIGNATURE_PREFIX + msg_id[-8:],
                }
            )
        if turn.get("text"):
            blocks.append({"type": "text", "text": turn["text"]})
        for tid, call in zip(tool_ids, calls):
            blocks.append({"type": "tool_use", "id": tid, "name": call["name"], "input": call["arguments"]})
        prompt_tokens = _estimate_tokens(body)
        record = completion_record(
            model, turn, tool_ids, with_thinking, prompt_tokens, msg_id, thinking_blocks=True
        )
        out_tokens = record["usage"]["completion_tokens"]
        stop_reason = "tool_use" if calls else "end_turn"
        usage = {
            "input_tokens": prompt_tokens,
            "output_tokens": out_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        if not body.get("stream"):
            # Log before the last bytes go out: once the client has the whole answer
            # it may exit and the harness stops this server.
            self.server.log.write(log_body, record, started)
            self._send_json(
                200,
                {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": blocks,
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": usage,
                },
            )
        else:
            self._start_sse()

            def event(name: str, data: dict[str, Any]) -> None:
                self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n")

            event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": msg_id,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {**usage, "output_tokens": 1},
                    },
                },
            )
            for index, block in enumerate(blocks):
                if block["type"] == "thinking":
                    event(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                        },
                    )
                    event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "thinking_delta", "thinking": block["thinking"]},
                        },
                    )
                    event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "signature_delta", "signature": block["signature"]},
                        },
                    )
                elif block["type"] == "text":
                    event(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {"type": "text", "text": ""},
                        },
                    )
                    event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": block["text"]},
                        },
                    )
                else:
                    event(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {
                                "type": "tool_use",
                                "id": block["id"],
                                "name": block["name"],
                                "input": {},
                            },
                        },
                    )
                    event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])},
                        },
                    )
                event("content_block_stop", {"type": "content_block_stop", "index": index})
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": out_tokens},
                },
            )
            self.server.log.write(log_body, record, started)
            event("message_stop", {"type": "message_stop"})
            self._end_sse()

    def _side_text(self, body: dict[str, Any]) -> str:
        # Claude Code's title generator asks for JSON via output_format; others want text.
        fmt = body.get("output_format") or body.get("response_format") or {}
        schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {}
        props = list((schema.get("properties") or {}).keys())
        if props:
            return json.dumps({p: self.server.script.side_text for p in props})
        return self.server.script.side_text

    def _fail(self, log_body: dict[str, Any], started: float, anthropic: bool) -> None:
        message = "Injected upstream failure (scripted model server)"
        failure = {"error_type": "InternalServerError", "status_code": 500, "message": message}
        self.server.log.write(log_body, None, started, failure=failure)
        if anthropic:
            payload = {"type": "error", "error": {"type": "api_error", "message": message}}
        else:
            payload = {"error": {"message": message, "type": "server_error", "code": 500}}
        self._send_json(500, payload)

    # -- OpenAI -------------------------------------------------------------
    def _openai(self, body: dict[str, Any]) -> None:
        started = time.time()
        messages = body.get("messages", [])
        chain, turn_no, action = self._decide(messages, bool(body.get("tools")))
        sys.stderr.write(f"[model_server] openai chain={chain} turn={turn_no} action={action}\n")
        log_body = dict(body)
        if action == "stall":
            self._stall()
            return
        if action == "fail":
            self._fail(log_body, started, anthropic=False)
            return
        model = body.get("model", self.server.model_name)
        turn = (
            {"text": self._side_text(body)} if action == "side" else self.server.script.turn(chain, turn_no)
        )
        calls = turn.get("tool_calls") or []
        tool_ids = [_call_id("call_", chain, turn_no, i, self.server.salt) for i in range(len(calls))]
        msg_id = "chatcmpl-" + uuid.uuid4().hex[:24]
        record = completion_record(
            model,
            turn,
            tool_ids,
            self.server.openai_reasoning,
            _estimate_tokens(body),
            msg_id,
            thinking_blocks=False,
        )
        if not body.get("stream"):
            self.server.log.write(log_body, record, started)
            self._send_json(200, record)
        else:
            self._start_sse()
            base = {
                "id": msg_id,
                "object": "chat.completion.chunk",
                "created": record["created"],
                "model": model,
            }

            def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
                payload = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                self._chunk(f"data: {json.dumps(payload)}\n\n")

            message = record["choices"][0]["message"]
            chunk({"role": "assistant", "content": ""})
            if message.get("reasoning_content"):
                chunk({"reasoning_content": message["reasoning_content"]})
            if message.get("content"):
                chunk({"content": message["content"]})
            for index, call in enumerate(message.get("tool_calls") or []):
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        ]
                    }
                )
                chunk(
                    {
                        "tool_calls": [
                            {"index": index, "function": {"arguments": call["function"]["arguments"]}}
                        ]
                    }
                )
            chunk({}, record["choices"][0]["finish_reason"])
            if (body.get("stream_options") or {}).get("include_usage"):
                payload = {**base, "choices": [], "usage": record["usage"]}
                self._chunk(f"data: {json.dumps(payload)}\n\n")
            self.server.log.write(log_body, record, started)
            self._chunk("data: [DONE]\n\n")
            self._end_sse()


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        port: int,
        script: Script,
        log: ProxyLog,
        model_name: str,
        salt: str,
        openai_reasoning: bool,
        stall_file: str | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.script = script
        self.log = log
        self.model_name = model_name
        self.salt = salt
        self.openai_reasoning = openai_reasoning
        self.stall_file = stall_file
        self.stopping = threading.Event()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", required=True, help="scenario JSON file")
    parser.add_argument("--log", required=True, help="JSONL file to append proxy records to")
    parser.add_argument("--workdir", required=True, help="value for {workdir} in the script")
    parser.add_argument("--session-id", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--stall-file", help="touched when a scripted stall begins")
    parser.add_argument("--model-name", default="scripted-model")
    parser.add_argument(
        "--no-openai-reasoning",
        action="store_true",
        help="do not emit reasoning_content on the OpenAI endpoint",
    )
    args = parser.parse_args(argv)
    with open(args.script, encoding="utf-8") as fh:
        script = Script(json.load(fh), args.workdir)
    server = ModelServer(
        args.port,
        script,
        ProxyLog(args.log, args.session_id),
        args.model_name,
        salt=args.session_id,
        openai_reasoning=not args.no_openai_reasoning,
        stall_file=args.stall_file,
    )
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file, "w", encoding="utf-8") as fh:
            fh.write(str(port))
    sys.stderr.write(f"[model_server] listening on 127.0.0.1:{port}\n")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
