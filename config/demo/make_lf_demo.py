"""Generate the bundled demo dataset `lf_demo.json` (LLaMA-Factory sharegpt-with-tools form).

Deterministic: the same seed gives byte-identical output. Each row is a small coding-agent
trajectory: a system prompt, a human task, then alternating gpt / function_call turns and
observation turns, ending on the assistant side. Some rows carry `<think>` reasoning prefixes,
some make parallel calls (a JSON list in one function_call, results joined in one observation),
a few have no tools at all (tools = "").

Run:  python config/demo/make_lf_demo.py [--out config/demo] [--rows 40] [--seed 7] [--check]
`--check` verifies the committed files match what the generator produces.
Writes lf_demo.json and dataset_info.json (entry `lf_demo`).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

DATASET_NAME = "lf_demo"
DATASET_INFO = {
    DATASET_NAME: {
        "file_name": f"{DATASET_NAME}.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
    }
}

SYSTEM_AGENT = (
    "You are an autonomous coding agent working in the repository at /testbed. "
    "Inspect the code with the tools, make the smallest correct change, run the tests, "
    "and finish with a short summary of what you changed."
)
SYSTEM_CHAT = "You are a concise assistant for software engineering questions."

TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "bash",
        "description": "Run a shell command in the repository and return stdout and stderr.",
        "parameters": {"type": "object", "properties": {
            "command": {"type": "string", "description": "The command to run."}},
            "required": ["command"]}}},
    {"type": "function", "function": {
        "name": "read_file",
        "description": "Read a file, optionally a range of lines.",
        "parameters": {"type": "object", "properties": {
            "path": {"type": "string"},
            "start_line": {"type": "integer"},
            "end_line": {"type": "integer"}},
            "required": ["path"]}}},
    {"type": "function", "function": {
        "name": "edit_file",
        "description": "Replace one exact occurrence of old_str with new_str in a file.",
        "parameters": {"type": "object", "properties": {
            "path": {"type": "string"},
            "old_str": {"type": "string"},
            "new_str": {"type": "string"}},
            "required": ["path", "old_str", "new_str"]}}},
    {"type": "function", "function": {
        "name": "submit",
        "description": "Finish the task.",
        "parameters": {"type": "object", "properties": {}, "required": []}}},
]

PROJECTS = ["tinyhttp", "csvkit-lite", "dateparse", "pathtools", "retrylib", "confmerge", "logfmt", "semverx"]
BUGS = [
    ("parse_header", "raises KeyError when the header has no value", "value = parts[1]",
     "value = parts[1] if len(parts) > 1 else \"\""),
    ("split_rows", "drops the last row when the file has no trailing newline", "rows = text.split(\"\\n\")[:-1]",
     "rows = text.splitlines()"),
    ("to_utc", "returns naive datetimes for aware input", "return dt.replace(tzinfo=None)",
     "return dt.astimezone(timezone.utc)"),
    ("normalize", "does not collapse repeated slashes", "return path.rstrip(\"/\")",
     "return re.sub(r\"/+\", \"/\", path).rstrip(\"/\") or \"/\""),
    ("backoff", "sleeps forever when max_delay is zero", "delay = min(delay * 2, max_delay or delay * 2)",
     "delay = min(delay * 2, max_delay) if max_delay else delay * 2"),
    ("merge", "mutates the caller's default dict", "result = defaults", "result = dict(defaults)"),
    ("format_pair", "does not quote values containing spaces", "return f\"{k}={v}\"",
     "return f'{k}=\"{v}\"' if \" \" in v else f\"{k}={v}\""),
    ("compare", "orders 1.10.0 before 1.9.0", "return a < b",
     "return tuple(map(int, a.split(\".\"))) < tuple(map(int, b.split(\".\")))"),
]
THOUGHTS = [
    "The traceback points at {fn}; I should read that function before changing anything.",
    "I need to see how {fn} is tested so the fix matches the expected behaviour.",
    "The failing line is the one that {bug}; a guarded version should fix it.",
    "Before editing I want to confirm the test fails for the reason described in the issue.",
    "The change is small; after editing I will rerun only the affected test module.",
]
QUESTIONS = [
    ("What does `git rebase -i HEAD~3` do?",
     ("It opens an editor listing the last three commits so you can reorder, squash, edit or drop them; "
      "git then replays them in the order you leave in the list.")),
    ("How do I run a single pytest test?",
     "Pass its node id: `pytest tests/test_io.py::test_read_empty -q`. Use `-k expr` to select by name."),
    ("Why does `python -m pip` differ from `pip`?",
     ("`python -m pip` runs pip for exactly that interpreter, while a bare `pip` may belong to another "
      "environment on PATH.")),
    ("What is a context manager in Python?",
     ("An object with `__enter__` and `__exit__`, used with `with`, so setup and cleanup run around a block "
      "even when it raises.")),
]


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def _think(rng: random.Random, fn: str, bug: str) -> str:
    return "<think>\n" + rng.choice(THOUGHTS).format(fn=fn, bug=bug) + "\n</think>\n\n"


def _source_file(rng: random.Random, fn: str, buggy: str, n_lines: int) -> str:
    lines = [f"{i + 1:4d}  # helper {i} for {fn}: keeps behaviour stable" for i in range(n_lines)]
    lines.insert(rng.randint(0, len(lines)), f"      def {fn}(*args):\n          {buggy}")
    return "\n".join(lines)


def agent_row(rng: random.Random, idx: int) -> dict[str, Any]:
    project = PROJECTS[idx % len(PROJECTS)]
    fn, bug, buggy, fixed = BUGS[(idx * 3) % len(BUGS)]
    module = f"src/{project.replace('-', '_')}/{fn}.py"
    test = f"tests/test_{fn}.py"
    thinks = idx % 3 == 0  # every third trajectory carries reasoning
    turns: list[dict[str, str]] = [{"from": "human", "value": (
        f"Issue in {project}: `{fn}` {bug}.\nPlease fix it so that `pytest {test}` passes.")}]

    def call(*calls: dict[str, Any], reason: bool) -> None:
        payload = json.dumps(calls[0] if len(calls) == 1 else list(calls), ensure_ascii=False)
        prefix = _think(rng, fn, bug) if (thinks and reason) else ""
        turns.append({"from": "function_call", "value": prefix + payload})

    def observe(*results: str) -> None:
        turns.append({"from": "observation", "value": "\n</tool_response>\n<tool_response>\n".join(results)})

    call(_call("bash", command=f"python -m pytest {test} -x -q"), reason=True)
    observe(f"F\n___ test_{fn} ___\n    {buggy}\nE   AssertionError\n1 failed in 0.{rng.randint(10, 99)}s")
    if idx % 4 == 1:  # parallel reads
        call(_call("read_file", path=module), _call("read_file", path=test, start_line=1, end_line=20),
             reason=False)
        observe(_source_file(rng, fn, buggy, rng.randint(8, 30)),
                f"def test_{fn}():\n    assert {fn}(...) is not None")
    else:
        call(_call("read_file", path=module), reason=True)
        # a few long observations so some rows exceed small cutoff_len values in tests
        observe(_source_file(rng, fn, buggy, rng.choice((10, 20, 40, 80))))
    call(_call("edit_file", path=module, old_str=buggy, new_str=fixed), reason=True)
    observe(f"Edited {module}: 1 replacement.")
    call(_call("bash", command=f"python -m pytest {test} -q"), reason=False)
    observe(f"{rng.randint(2, 12)} passed in 0.{rng.randint(10, 99)}s")
    if idx % 5 == 2:  # a plain-text assistant turn in the middle, then the user replies
        turns.append({"from": "gpt", "value": f"The fix is in place and `{test}` passes. Should I also add a "
                                              "regression test?"})
        turns.append({"from": "human", "value": "Yes, add one and then submit."})
        call(_call("edit_file", path=test, old_str="", new_str=f"def test_{fn}_regression():\n    pass\n"),
             reason=True)
        observe(f"Edited {test}: 1 replacement.")
    call(_call("submit"), reason=False)
    observe("Submitted.")
    summary = f"Fixed `{fn}` in `{module}`: it {bug}. Replaced `{buggy}` with `{fixed}`; the tests pass."
    turns.append({"from": "gpt", "value": (_think(rng, fn, bug) if thinks else "") + summary})
    return {"conversations": turns, "system": SYSTEM_AGENT, "tools": json.dumps(TOOLS, ensure_ascii=False)}


def chat_row(rng: random.Random, idx: int) -> dict[str, Any]:
    q, a = QUESTIONS[idx % len(QUESTIONS)]
    turns = [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    if idx % 2:
        turns += [{"from": "human", "value": "Thanks. Any pitfall?"},
                  {"from": "gpt", "value": "Check which environment and working directory you are in first."}]
    return {"conversations": turns, "system": SYSTEM_CHAT, "tools": ""}


def check_row(row: dict[str, Any]) -> list[str]:
    """LF's sharegpt rules (see docs/llamafactory-on-cpu.md); returns the violations."""
    errs: list[str] = []
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        return ["conversations must be a non-empty list"]
    if len(turns) % 2:
        errs.append(f"odd number of turns ({len(turns)})")
    for i, t in enumerate(turns):
        allowed = ("human", "observation") if i % 2 == 0 else ("gpt", "function_call")
        if t.get("from") not in allowed:
            errs.append(f"turn {i}: role {t.get('from')!r} not in {allowed}")
        if not isinstance(t.get("value"), str):
            errs.append(f"turn {i}: value is not a string")
        elif t["from"] == "function_call":
            text = t["value"]
            if text.startswith("<think>\n"):
                _, sep, text = text.partition("\n</think>\n\n")
                if not sep:
                    errs.append(f"turn {i}: reasoning prefix not closed by '\\n</think>\\n\\n'")
            try:
                calls = json.loads(text)
            except json.JSONDecodeError as exc:
                errs.append(f"turn {i}: function_call is not JSON ({exc})")
                continue
            for c in calls if isinstance(calls, list) else [calls]:
                if not (isinstance(c, dict) and isinstance(c.get("name"), str)
                        and isinstance(c.get("arguments"), dict)):
                    errs.append(f"turn {i}: call needs a string name and object arguments")
    for key in ("system", "tools"):
        if not isinstance(row.get(key), str):
            errs.append(f"{key} must be a string")
    if row.get("tools"):
        tools = json.loads(row["tools"])
        if not isinstance(tools, list):
            errs.append("tools must be a JSON string of a list")
        if not row.get("system"):
            errs.append("rows with tools need a non-empty system prompt")
    return errs


def generate(rows: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = [chat_row(rng, i) if i % 8 == 7 else agent_row(rng, i) for i in range(rows)]
    for i, row in enumerate(out):
        if errs := check_row(row):
            raise ValueError(f"generated row {i} breaks LF rules: {errs}")
    return out


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = ap.parse_args(argv)
    files = {f"{DATASET_NAME}.json": _dump(generate(args.rows, args.seed)), "dataset_info.json": _dump(DATASET_INFO)}
    if args.check:
        stale = [n for n, text in files.items() if not (args.out / n).is_file()
                 or (args.out / n).read_text() != text]
        if stale:
            print(f"out of date: {stale}", file=sys.stderr)
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text)
    print(f"wrote {args.rows} rows to {args.out / (DATASET_NAME + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
