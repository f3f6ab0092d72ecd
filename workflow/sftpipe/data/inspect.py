"""The token view and the dataset checks: what each sample trains on, and the bugs that hide there.

* `render_sample(cfg, row)`: one sharegpt row rendered exactly as training sees it (LF's own template,
  tokenizer and supervised processor; see `sftpipe.data.token_view`).
* `inspect_dataset(cfg, rows=None)`: checks over every row, each
  `{"name", "ok", "count", "total", "detail", "examples"}` (examples: row indices), plus summary numbers.

Checks (names are what `conversion.allow_failed_checks` lists):
  lf_accepts_rows      LF can render every row (it silently drops or crashes on the others)
  end_token_trained    every trained assistant turn teaches its end token (qwen3: <|im_end|>)
  no_empty_samples     no sample has zero trained tokens
  tool_call_format     every function_call turn renders in the template's native tool-call format and
                       parses back to the same calls
  reasoning_policy     reasoning present exactly where conversion.reasoning / template / enable_thinking say
  tool_outputs_masked  no tool-output (observation) token is trained
  trained_share        statistic: tokens trained vs masked (never fails)
  truncation           samples cut by cutoff_len (fails unless conversion.over_cutoff is keep)
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from sftpipe.config import RunConfig
from sftpipe.data.token_view import RenderError, TokenViewer, viewer_for
from sftpipe.paths import LF_DATA_DIR

CHECK_NAMES = (
    "lf_accepts_rows",
    "end_token_trained",
    "no_empty_samples",
    "tool_call_format",
    "reasoning_policy",
    "tool_outputs_masked",
    "trained_share",
    "truncation",
)
MAX_EXAMPLES = 20


class InspectError(ValueError):
    """The dataset or config cannot be inspected at all (missing file, unsupported format)."""


def render_sample(cfg: RunConfig, row: dict[str, Any]) -> dict[str, Any]:
    """One LF sharegpt row as training sees it.

    Returns {"tokens": [{"id", "text", "trained"}], "n_tokens", "n_trained", "n_tokens_full", "cutoff_len",
    "truncated", "cutoff_index" (first token where training departs from the full rendering, or None),
    "turns": [{"turn", "role", "kind": prompt|target, "start", "end", "cut", "n_trained"}], "settings"}.
    Raises RenderError when LF would drop or crash on the row.
    """
    return viewer_for(cfg).render(row)


def data_file(cfg: RunConfig) -> Path:
    """The registered LF data file of the config (the converted file for harbor_job sources)."""
    from sftpipe.data.registration import dataset_entry

    entry = dataset_entry(cfg)
    if "file_name" not in entry:
        raise InspectError(f"{cfg.data_name!r} is a Hub dataset ({entry.get('hf_hub_url')}); pass its rows")
    path = (cfg.root / LF_DATA_DIR / entry["file_name"]).resolve()
    if not path.is_file():
        hint = (
            " (convert it first: `sft convert` or `make run`)" if cfg.source["type"] == "harbor_job" else ""
        )
        raise InspectError(f"data file {path} for {cfg.data_name!r} does not exist{hint}")
    return path


def load_rows(path: Path) -> list[Any]:
    """Rows of a JSON array or JSONL file; InspectError naming the file when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
        if text.lstrip().startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InspectError(f"cannot read {path}: {exc}") from exc
    if not isinstance(rows, list):
        raise InspectError(f"{path} holds a {type(rows).__name__}, not a list of rows")
    return rows


# -- per-row findings ----------------------------------------------------------------------------------
def _think(text: str, words: tuple[str, str]) -> str | None:
    """Content of the first think block (stripped), None when there is none."""
    m = re.search(f"{re.escape(words[0].strip())}(.*?){re.escape(words[1].strip())}", text, re.DOTALL)
    return m.group(1).strip() if m else None


def _calls(parsed: Any) -> list[tuple[str, Any]] | None:
    """[(name, arguments object)] from LF FunctionCall tuples or dicts; None when not calls."""
    if isinstance(parsed, str) or parsed is None:
        return None
    if isinstance(parsed, dict):
        parsed = [parsed]
    out = []
    for call in parsed:
        name, args = (
            (call["name"], call["arguments"]) if isinstance(call, dict) else (call.name, call.arguments)
        )
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                pass
        out.append((name, args))
    return out


def _row_calls(viewer: TokenViewer, value: str) -> list[tuple[str, Any]] | None:
    """The calls a function_call value holds, read as LF's FunctionFormatter reads them: the JSON inside the
    first tool-call block if there is one, else the value without its think block."""
    t = viewer.template
    open_, close = t.tool_call_words or ("", "")
    m = re.search(f"{re.escape(open_)}(.*?){re.escape(close)}", value, re.DOTALL) if open_ else None
    if m:
        body = m.group(1)
    else:
        words = t.thought_words
        body = re.sub(f"{re.escape(words[0])}(.*?){re.escape(words[1])}", "", value, count=1, flags=re.DOTALL)
    try:
        return _calls(json.loads(body))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def row_findings(viewer: TokenViewer, row: dict[str, Any]) -> dict[str, Any]:
    """Everything the checks need from one row: counts and, per check, the number of violations."""
    result, labels = viewer.render_with_labels(row)
    s = viewer.settings
    turns = result["turns"]
    messages = viewer.aligned(row)
    messages = messages["_prompt"] + messages["_response"]
    targets = [t for t in turns if t["kind"] == "target"]
    last_turn = max((t["turn"] for t in targets), default=-1)
    expected = [t for t in targets if not t["cut"] and (not s.mask_history or t["turn"] == last_turn)]
    f = {
        "n_tokens": result["n_tokens"],
        "n_trained": result["n_trained"],
        "n_full": result["n_tokens_full"],
        "truncated": result["truncated"],
        "spans": bool(turns),
        "end_missing": 0,
        "end_total": 0,
        "tool_bad": 0,
        "tool_total": 0,
        "reason_bad": 0,
        "reason_total": 0,
        "obs_trained": 0,
    }
    texts = [tok["text"] for tok in result["tokens"]]
    eos_text = viewer.tokenizer.eos_token or ""
    for t in expected:
        # the model must learn to emit the end token here: a label equal to eos inside the turn, or on the
        # next token (templates with efficient_eos label it there)
        f["end_total"] += 1
        if viewer.eos_id not in labels[t["start"] : t["end"] + 1]:
            f["end_missing"] += 1
        rendered = "".join(texts[t["start"] : t["end"]])
        source = messages[t["turn"]]["content"]
        words = viewer.template.thought_words
        in_row, in_render = _think(source, words), _think(rendered, words)
        f["reason_total"] += 1
        if s.reasoning_policy == "keep" and in_row and not in_render:
            f["reason_bad"] += 1  # stripped by a template setting (enable_thinking false, mask_history...)
        elif s.reasoning_policy == "drop" and in_render:
            f["reason_bad"] += 1  # trained although the policy drops reasoning
        if t["role"] == "function":
            f["tool_total"] += 1
            body = rendered.split(eos_text)[0] if eos_text else rendered
            body = re.sub(
                f"{re.escape(words[0].strip())}.*?{re.escape(words[1].strip())}", "", body, flags=re.DOTALL
            ).strip()
            want, got = _row_calls(viewer, source), _calls(viewer.native_tools.extract(body))
            if got is None or want != got:
                f["tool_bad"] += 1
    for t in turns:
        if t["kind"] == "prompt" and t["role"] == "observation":
            seg = labels[t["start"] : t["end"]]
            # efficient_eos templates label the previous turn's end token on a prompt's first token
            skip = 1 if viewer.template.efficient_eos and seg and seg[0] == viewer.eos_id else 0
            f["obs_trained"] += sum(1 for x in seg[skip:] if x >= 0)
    return f


# -- dataset ---------------------------------------------------------------------------------------------
def _check(
    name: str, bad: list[int], count: int, total: int, detail: str, ok: bool | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "ok": (count == 0) if ok is None else ok,
        "count": count,
        "total": total,
        "detail": detail,
        "examples": bad[:MAX_EXAMPLES],
    }


def inspect_rows(viewer: TokenViewer, rows: list[Any]) -> dict[str, Any]:
    """All checks over `rows` with one viewer (see the module docstring)."""
    from sftpipe.lf.checks import length_stats

    start = time.monotonic()
    s = viewer.settings
    found: list[tuple[int, dict[str, Any]]] = []
    rejected: list[int] = []
    reasons: dict[str, int] = {}
    for i, row in enumerate(rows):
        try:
            found.append((i, row_findings(viewer, row)))
        except RenderError as exc:
            rejected.append(i)
            key = str(exc).split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1

    def rows_where(pred) -> list[int]:
        return [i for i, f in found if pred(f)]

    def total(key: str) -> int:
        return sum(f[key] for _, f in found)

    tokens, trained = total("n_tokens"), total("n_trained")
    share = round(trained / tokens, 4) if tokens else 0.0
    truncated = rows_where(lambda f: f["truncated"])
    no_spans = rows_where(lambda f: not f["spans"])
    eos = viewer.tokenizer.eos_token
    checks = [
        _check(
            "lf_accepts_rows",
            rejected,
            len(rejected),
            len(rows),
            "rows LLaMA-Factory drops or fails on: " + (json.dumps(reasons) if reasons else "none"),
        ),
        _check(
            "end_token_trained",
            rows_where(lambda f: f["end_missing"]),
            total("end_missing"),
            total("end_total"),
            f"trained assistant turns whose end token {eos!r} is not a training target"
            + (f"; {len(no_spans)} row(s) could not be split into turns" if no_spans else ""),
        ),
        _check(
            "no_empty_samples",
            rows_where(lambda f: f["n_trained"] == 0),
            len(rows_where(lambda f: f["n_trained"] == 0)),
            len(found),
            "samples with zero trained tokens",
        ),
        _check(
            "tool_call_format",
            rows_where(lambda f: f["tool_bad"]),
            total("tool_bad"),
            total("tool_total"),
            f"function_call turns not rendered as the template's {s.native_tool_format!r} tool calls "
            f"(tool_format in use: {s.tool_format or s.native_tool_format})",
        ),
        _check(
            "reasoning_policy",
            rows_where(lambda f: f["reason_bad"]),
            total("reason_bad"),
            total("reason_total"),
            f"trained assistant turns whose reasoning departs from the policy {s.reasoning_policy!r} "
            f"(template {s.template}, enable_thinking {s.enable_thinking})",
        ),
        _check(
            "tool_outputs_masked",
            rows_where(lambda f: f["obs_trained"]),
            total("obs_trained"),
            sum(1 for _ in found),
            "tool-output (observation) tokens that are trained"
            + (" (train_on_prompt is true)" if s.train_on_prompt else ""),
        ),
        _check(
            "trained_share",
            [],
            trained,
            tokens,
            f"{trained} of {tokens} tokens trained ({share:.1%}), {tokens - trained} masked",
            ok=True,
        ),
        _check(
            "truncation",
            truncated,
            len(truncated),
            len(found),
            f"samples longer than cutoff_len {s.cutoff_len}; {sum(f['n_full'] - f['n_tokens'] for _, f in found)}"
            f" tokens cut (conversion.over_cutoff: {s.over_cutoff})",
            ok=not truncated or s.over_cutoff == "keep",
        ),
    ]
    return {
        "ok": all(c["ok"] for c in checks),
        "checks": checks,
        "summary": {
            "rows": len(rows),
            "rendered": len(found),
            "tokens": tokens,
            "trained_tokens": trained,
            "masked_tokens": tokens - trained,
            "trained_share": share,
            "truncated": len(truncated),
            "length": length_stats(f["n_full"] for _, f in found),
            "trained_length": length_stats(f["n_trained"] for _, f in found),
            "seconds": round(time.monotonic() - start, 2),
        },
        "settings": s.as_dict(),
    }


def inspect_dataset(cfg: RunConfig, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Checks over the whole dataset (default: the config's registered data file); see the module docstring.

    Returns {"ok", "data_name", "file", "checks": [...], "summary": {...}, "settings": {...}, "allowed": [...]};
    `ok` ignores checks listed in conversion.allow_failed_checks.
    """
    file = None
    if rows is None:
        file = data_file(cfg)
        rows = load_rows(file)
    report = inspect_rows(viewer_for(cfg), rows)
    allowed = list(cfg.conversion.get("allow_failed_checks") or [])
    for check in report["checks"]:
        check["allowed"] = check["name"] in allowed
    report["ok"] = all(c["ok"] or c["allowed"] for c in report["checks"])
    return {
        "ok": report["ok"],
        "data_name": cfg.data_name,
        "file": str(file) if file else None,
        **report,
        "allowed": allowed,
    }


def failed_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Checks that failed and are not allowed."""
    return [c for c in report["checks"] if not c["ok"] and not c.get("allowed")]


def format_report(report: dict[str, Any]) -> str:
    """The report as `sft inspect` prints it: summary, settings, one line per check."""
    s, st = report["summary"], report["settings"]
    lines = [
        f"{report['data_name']}: {report['file'] or 'rows given'}",
        (
            f"  rows {s['rows']}, rendered {s['rendered']}, tokens {s['tokens']}, trained {s['trained_tokens']} "
            f"({s['trained_share']:.1%}), truncated {s['truncated']}  [{s['seconds']}s]"
        ),
        (
            f"  template {st['template']}, cutoff_len {st['cutoff_len']}, enable_thinking {st['enable_thinking']}, "
            f"reasoning {st['reasoning_policy']}, train_on_prompt {st['train_on_prompt']}, "
            f"mask_history {st['mask_history']}"
        ),
    ]
    for c in report["checks"]:
        mark = "ok" if c["ok"] else ("allowed" if c.get("allowed") else "FAIL")
        rows = f"  rows {c['examples']}" if c["examples"] and not c["ok"] else ""
        lines.append(f"  {mark:7} {c['name']:20} {c['count']}/{c['total']}  {c['detail']}{rows}")
    lines.append("checks " + ("passed" if report["ok"] else "FAILED"))
    return "\n".join(lines)
