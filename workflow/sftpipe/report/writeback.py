"""Write a run's results into ``runtime_info.output`` of config.yaml, touching nothing else.

Dumping the whole document with a round-trip loader reflows comments, quoting and indentation, so
instead the YAML parser only *locates* the block (line of the ``output`` key, line of whatever
follows it); fresh text for that block alone is rendered and spliced between the untouched bytes
before and after it. The result is re-parsed and must equal the original document with only
``runtime_info.output`` replaced, or nothing is written. The file is replaced atomically.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from sftpipe.util.fs import atomic_write_bytes, file_lock
from sftpipe.util.yamltext import Yaml11SafeRepresenter, YamlValueError, plain_yaml_value

SECTION = "runtime_info"
KEY = "output"


class WritebackError(RuntimeError):
    """The output block cannot be written without changing anything else; the file is untouched."""


def _rt_yaml() -> YAML:
    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


def _plain_load(text: str) -> Any:
    """The document as plain Python values (what any consumer of the config sees)."""
    return YAML(typ="safe", pure=True).load(text)


def _is_filler(line: str) -> bool:
    """Blank or comment-only line."""
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def render_block(output: dict[str, Any], col: int, step: int, newline: str) -> list[str]:
    """``output:`` and its mapping, indented for column ``col`` with ``step`` spaces per level."""
    if not output:
        return [" " * col + f"{KEY}: {{}}" + newline]
    y = YAML(typ="rt")
    y.Representer = Yaml11SafeRepresenter
    y.indent(mapping=step, sequence=step + 2, offset=step)
    y.width = 4096  # never fold long paths
    buf = io.StringIO()
    y.dump(output, buf)
    pad = " " * (col + step)
    body = [pad + line + newline if line else newline for line in buf.getvalue().split("\n")[:-1]]
    return [" " * col + f"{KEY}:" + newline, *body]


def _split_lines(text: str) -> list[str]:
    """Lines with their endings, split on \\n only (str.splitlines also splits on \\f, \\x1c...)."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def splice_output(text: str, output: dict[str, Any]) -> str:
    """The config text with ``runtime_info.output`` replaced by ``output``; raises WritebackError.

    The block spans from the ``output`` key to its last content line: comments between its lines
    are replaced with it, comments and blank lines after it are kept.
    """
    try:
        output = plain_yaml_value(output, KEY)
    except YamlValueError as exc:
        raise WritebackError(str(exc)) from exc
    try:
        doc = _rt_yaml().load(text)
    except YAMLError as exc:
        raise WritebackError(f"config is not valid YAML: {exc}") from exc
    if not isinstance(doc, CommentedMap) or not isinstance(doc.get(SECTION), CommentedMap):
        raise WritebackError(f"config has no '{SECTION}' mapping")
    section: CommentedMap = doc[SECTION]
    if section.fa.flow_style() or not section:
        raise WritebackError(
            f"'{SECTION}' is an empty or flow-style mapping ({{...}}): edit it into block style"
        )
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = _split_lines(text)
    keys = list(section.keys())
    col = section.lc.key(keys[0])[1]
    top_keys = list(doc.keys())
    step = col - doc.lc.key(SECTION)[1]
    if step <= 0:
        raise WritebackError(f"cannot infer the indentation of '{SECTION}'")

    # The first line after runtime_info's content: the next top-level key, or the end of the file.
    next_top = top_keys.index(SECTION) + 1
    section_end = doc.lc.key(top_keys[next_top])[0] if next_top < len(top_keys) else len(lines)

    if KEY in section:
        start, key_col = section.lc.key(KEY)
        if key_col != col:
            raise WritebackError(f"'{SECTION}.{KEY}' is not aligned with its sibling keys")
        idx = keys.index(KEY)
        end = section.lc.key(keys[idx + 1])[0] if idx + 1 < len(keys) else section_end
        # Comments and blank lines after the block's last content line belong to what follows.
        while end - 1 > start and _is_filler(lines[end - 1]):
            end -= 1
        key_line = lines[start]
        match = re.match(rf"\s*(?:{KEY}|\"{KEY}\"|'{KEY}')\s*:(.*?)(\r?\n)?$", key_line, re.DOTALL)
        if not match:
            raise WritebackError(f"line {start + 1}: cannot read the '{KEY}' key line")
        # Keep a comment annotating the key itself (`output:   # note`, `output: {}  # note`).
        empty_value = re.match(r"(?:\{\}|null|~)?(\s*)(#.*)?$", match.group(1).strip())
        comment = empty_value.group(2) if empty_value and empty_value.group(2) else ""
        block = render_block(output, col, step, newline)
        if comment and output and match.group(1).strip().startswith("#"):
            block[0] = key_line.rstrip("\r\n") + newline  # verbatim, spacing included
        elif comment:  # keep the comment's column when the value before it changes width
            head = block[0][: -len(newline)]
            gap = max(2, key_line.index(comment) - len(head))
            block[0] = f"{head}{' ' * gap}{comment}{newline}"
        if end == len(lines) and not lines[-1].endswith("\n"):
            block[-1] = block[-1].rstrip("\r\n")
    else:
        # Insert after runtime_info's last content line, before trailing comments/blank lines.
        start = section_end
        while start > 0 and _is_filler(lines[start - 1]):
            start -= 1
        end = start
        block = render_block(output, col, step, newline)
        if start > 0 and not lines[start - 1].endswith("\n"):
            block[0] = newline + block[0]
            block[-1] = block[-1].rstrip("\r\n")
    new_text = "".join(lines[:start]) + "".join(block) + "".join(lines[end:])
    _verify(text, new_text, output)
    return new_text


def _verify(old_text: str, new_text: str, output: dict[str, Any]) -> None:
    try:
        old, new = _plain_load(old_text), _plain_load(new_text)
    except YAMLError as exc:
        raise WritebackError(f"spliced config does not parse, not written: {exc}") from exc
    if new.get(SECTION, {}).get(KEY) != (output or {}):
        raise WritebackError(f"spliced '{SECTION}.{KEY}' does not read back as the given values, not written")
    old[SECTION].pop(KEY, None)
    new[SECTION].pop(KEY, None)
    if old != new:
        raise WritebackError(f"splicing '{SECTION}.{KEY}' would change other keys, not written")


def write_output_block(config_path: Path, output: dict[str, Any]) -> None:
    """Rewrite only ``runtime_info.output`` of ``config_path`` (a symlink is written through)."""
    path = Path(os.path.realpath(config_path))
    with file_lock(path, on_target=True):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WritebackError(f"{config_path}: not UTF-8 ({exc})") from exc
        try:
            new_text = splice_output(text, output)
        except WritebackError as exc:
            raise WritebackError(f"{config_path}: {exc}") from exc
        if new_text != text:
            atomic_write_bytes(path, new_text.encode("utf-8"))
