"""One sharegpt row rendered exactly as LLaMA-Factory training sees it: token ids, text, and which are trained.

The row goes through LF's own machinery, nothing re-implemented: the training config is rendered
(`sftpipe.lf.render`) and parsed by LF's parser (`sftpipe.lf.checks.parse_train_args`), so
template, cutoff_len, enable_thinking, train_on_prompt, mask_history, tool_format and
default_system are the ones training uses; the tokenizer is loaded by LF's `load_tokenizer`
(no weights) and fixed by `get_template_and_fix_tokenizer`; the row is aligned by LF's sharegpt
converter and encoded by LF's `SupervisedDatasetProcessor`. A token is *trained* when its label is
not IGNORE_INDEX in that processor's output.

Per-turn spans are a presentation aid: they replay LF's truncation loop over the template's
encoded pairs and are only returned when that replay reproduces LF's token ids exactly.
"""

from __future__ import annotations

import codecs
import copy
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sftpipe.config import RunConfig, stable_hash
from sftpipe.lf.checks import TOKENIZE_DROPPED_KEYS, parse_train_args

# LF's sharegpt roles (llamafactory.data.data_utils.Role values) for the span labels.
PROMPT_ROLES = ("user", "observation")
TARGET_ROLES = ("assistant", "function")
# Evaluation keys do not change a render; LF cross-checks them (val_size vs eval_strategy...), so leave them out.
_EVAL_KEYS = (
    "val_size",
    "eval_strategy",
    "eval_steps",
    "eval_dataset",
    "load_best_model_at_end",
    "metric_for_best_model",
    "greater_is_better",
    "per_device_eval_batch_size",
)


class RenderError(ValueError):
    """The row cannot be rendered by LF (LF would drop it or crash on it); the message says why."""


def _byte_decoder() -> dict[str, int]:
    # GPT-2 byte-level BPE alphabet (bytes_to_unicode), inverted: token characters -> raw bytes.
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTES = _byte_decoder()


@dataclass
class Settings:
    """The LF data settings that decide a render, as training uses them."""

    template: str
    cutoff_len: int
    enable_thinking: bool | None
    train_on_prompt: bool
    mask_history: bool
    tool_format: str | None  # None: the template's own
    native_tool_format: str
    reasoning_policy: str  # keep | drop (conversion.reasoning resolved against the template)
    over_cutoff: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class TokenViewer:
    """LF tokenizer + template + converter + processors for one training config (built once, reused)."""

    def __init__(
        self, lf_cfg: dict[str, Any], entry: dict[str, Any], reasoning_policy: str, over_cutoff: str
    ):
        from llamafactory.data import get_template_and_fix_tokenizer
        from llamafactory.data.converter import get_dataset_converter
        from llamafactory.data.parser import DatasetAttr
        from llamafactory.data.processor import SupervisedDatasetProcessor
        from llamafactory.data.template import TEMPLATES
        from llamafactory.model import load_tokenizer

        with tempfile.TemporaryDirectory(prefix="sft-inspect-") as scratch:
            cpu_cfg = {k: v for k, v in lf_cfg.items() if k not in TOKENIZE_DROPPED_KEYS + _EVAL_KEYS}
            cpu_cfg.update(output_dir=scratch, report_to="none", do_train=True)
            args = parse_train_args(cpu_cfg)
        dargs = args.data_args
        if args.finetuning_args.stage != "sft":
            raise RenderError(f"the token view covers stage sft only, not {args.finetuning_args.stage!r}")
        tok_module = load_tokenizer(args.model_args)
        self.tokenizer = tok_module["tokenizer"]
        # LF edits the registry's template object in place (tool_format, default_system...): fix a private,
        # as-registered copy, so neither earlier calls in this process nor this one leak into another render.
        pristine = _pristine_templates().get(dargs.template)
        saved = TEMPLATES[dargs.template]
        own = copy.deepcopy(saved)
        if pristine is not None:
            for name in ("format_function", "format_tools", "default_system"):
                setattr(own, name, copy.deepcopy(getattr(pristine, name)))
        TEMPLATES[dargs.template] = own
        try:
            self.template = get_template_and_fix_tokenizer(self.tokenizer, dargs)
        finally:
            TEMPLATES[dargs.template] = saved
        native = (pristine or own).format_tools.tool_format
        self.data_args = dargs
        self.processor = SupervisedDatasetProcessor(
            template=self.template,
            tokenizer=self.tokenizer,
            processor=tok_module["processor"],
            data_args=dargs,
        )
        full_args = copy.copy(dargs)
        full_args.cutoff_len = 2**31 - 1
        self.full_processor = SupervisedDatasetProcessor(
            template=self.template,
            tokenizer=self.tokenizer,
            processor=tok_module["processor"],
            data_args=full_args,
        )
        attr = DatasetAttr("file", dataset_name="inspect")
        attr.join(entry)
        if attr.formatting != "sharegpt":
            raise RenderError(f"the token view covers sharegpt rows only, not {attr.formatting!r}")
        self.attr = attr
        self.converter = get_dataset_converter("sharegpt", attr, dargs)
        self.settings = Settings(
            template=dargs.template,
            cutoff_len=dargs.cutoff_len,
            enable_thinking=dargs.enable_thinking,
            train_on_prompt=bool(dargs.train_on_prompt),
            mask_history=bool(dargs.mask_history),
            tool_format=dargs.tool_format,
            native_tool_format=native,
            reasoning_policy=reasoning_policy,
            over_cutoff=over_cutoff,
        )
        from llamafactory.data.formatter import ToolFormatter

        # the model's own tool-call format, even when data_args.tool_format overrides the rendering
        self.native_tools = ToolFormatter(tool_format=self.settings.native_tool_format)
        self.eos_id = self.tokenizer.eos_token_id
        self._special = {i: t.content for i, t in self.tokenizer.added_tokens_decoder.items()}

    # -- rendering ---------------------------------------------------------------------------------
    def aligned(self, row: dict[str, Any]) -> dict[str, Any]:
        """LF's sharegpt alignment of the row (_prompt, _response, _system, _tools, ...)."""
        if not isinstance(row, dict):
            raise RenderError(f"row is a {type(row).__name__}, not an object")
        try:
            aligned = self.converter(row)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise RenderError(f"LF cannot read the row: {type(exc).__name__}: {exc}") from exc
        if len(aligned["_prompt"]) % 2 != 1 or len(aligned["_response"]) != 1:
            raise RenderError(
                "LF drops this row: turns do not alternate human/observation and "
                "gpt/function_call, or it does not end on the assistant side"
            )
        return aligned

    def _encode(self, processor: Any, aligned: dict[str, Any]) -> tuple[list[int], list[int]]:
        batch = {
            k: [aligned.get(k)]
            for k in ("_prompt", "_response", "_system", "_tools", "_images", "_videos", "_audios")
        }
        try:
            out = processor.preprocess_dataset(batch)
        except Exception as exc:  # LF raises many types on bad values; all mean "LF would crash here"
            raise RenderError(f"LLaMA-Factory fails on this row: {type(exc).__name__}: {exc}") from exc
        return out["input_ids"][0], out["labels"][0]

    def token_texts(self, ids: list[int]) -> list[str]:
        """Text per token, concatenating to the full decode (UTF-8 split over tokens goes to the last one)."""
        vocab = self.tokenizer.convert_ids_to_tokens(ids)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        texts = []
        for tid, piece in zip(ids, vocab):
            if tid in self._special:
                texts.append(decoder.decode(b"", final=True) + self._special[tid])
            elif piece is not None and all(ch in _BYTES for ch in piece):
                texts.append(decoder.decode(bytes(_BYTES[ch] for ch in piece)))
            else:  # not byte-level BPE (e.g. sentencepiece): the tokenizer's own per-token decode
                texts.append(decoder.decode(b"", final=True) + self.tokenizer.decode([tid]))
        return texts

    def _turn_spans(self, aligned: dict[str, Any], ids: list[int], labels: list[int]) -> list[dict[str, Any]]:
        """Replay LF's truncation loop over the encoded pairs; [] unless it reproduces `ids` exactly."""
        from llamafactory.data.processor.processor_utils import infer_seqlen
        from llamafactory.extras.constants import IGNORE_INDEX

        t, dargs = self.template, self.data_args
        messages = aligned["_prompt"] + aligned["_response"]
        history_cot = dargs.mask_history and not t.preserve_thinking
        try:
            pairs = t.encode_multiturn(
                self.tokenizer, messages, aligned["_system"], aligned["_tools"], history_cot
            )
        except Exception:  # noqa: BLE001 - the processor already succeeded; spans are only an aid
            return []
        order = list(range(len(pairs)))[::-1] if dargs.mask_history else list(range(len(pairs)))
        total = 1 if t.efficient_eos else 0
        pieces: list[tuple[int, str, int, int]] = []  # (pair, kind, kept, full)
        for idx in order:
            if total >= dargs.cutoff_len:
                break
            src, tgt = pairs[idx]
            sl, tl = infer_seqlen(len(src), len(tgt), dargs.cutoff_len - total)
            total += sl + tl
            pieces.append((idx, "prompt", sl, len(src)))
            pieces.append((idx, "target", tl, len(tgt)))
        if dargs.mask_history:  # LF prepends each earlier pair
            pieces = [p for i in range(0, len(pieces), 2)[::-1] for p in pieces[i : i + 2]]
        rebuilt: list[int] = []
        spans = []
        for idx, kind, kept, full in pieces:
            seg = (pairs[idx][0] if kind == "prompt" else pairs[idx][1])[:kept]
            start = len(rebuilt)
            rebuilt += seg
            msg = messages[2 * idx + (0 if kind == "prompt" else 1)]
            spans.append(
                {
                    "turn": 2 * idx + (0 if kind == "prompt" else 1),
                    "role": msg["role"],
                    "kind": kind,
                    "start": start,
                    "end": start + kept,
                    "cut": kept < full,
                    "n_trained": sum(1 for x in labels[start : start + kept] if x != IGNORE_INDEX),
                }
            )
        if t.efficient_eos:
            rebuilt.append(self.eos_id)
        return spans if rebuilt == list(ids) else []

    def render(self, row: dict[str, Any]) -> dict[str, Any]:
        """See `sftpipe.data.inspect.render_sample`."""
        return self.render_with_labels(row)[0]

    def render_with_labels(self, row: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        """The render plus LF's label ids (the checks need the label values, not just trained/masked)."""
        from llamafactory.extras.constants import IGNORE_INDEX

        aligned = self.aligned(row)
        ids, labels = self._encode(self.processor, aligned)
        full_ids, _ = self._encode(self.full_processor, aligned)
        texts = self.token_texts(ids)
        tokens = [
            {"id": i, "text": s, "trained": lab != IGNORE_INDEX} for i, s, lab in zip(ids, texts, labels)
        ]
        truncated = len(full_ids) > len(ids)
        cutoff_index = None
        if truncated:  # first position where training's tokens stop following the full rendering
            cutoff_index = next((k for k, (a, b) in enumerate(zip(ids, full_ids)) if a != b), len(ids))
        return {
            "tokens": tokens,
            "n_tokens": len(ids),
            "n_trained": sum(1 for tok in tokens if tok["trained"]),
            "n_tokens_full": len(full_ids),
            "cutoff_len": self.data_args.cutoff_len,
            "truncated": truncated,
            "cutoff_index": cutoff_index,
            "turns": self._turn_spans(aligned, ids, labels),
            "settings": self.settings.as_dict(),
        }, labels


@lru_cache(maxsize=1)
def _pristine_templates() -> dict[str, Any]:
    """LF's templates as registered, from a private execution of its template module (the shared registry
    may already carry another config's overrides). Only formatter objects and strings are read from it."""
    import importlib.util

    spec = importlib.util.find_spec("llamafactory.data.template")
    module = importlib.util.module_from_spec(
        spec
    )  # not put in sys.modules: the real module stays the one in use
    spec.loader.exec_module(module)
    return dict(module.TEMPLATES)


def reasoning_policy(cfg: RunConfig) -> str:
    """conversion.reasoning resolved as conversion resolves it (auto: by the template)."""
    policy = cfg.conversion["reasoning"]
    if policy == "auto":
        policy = "drop" if cfg.training["template"].endswith("_nothink") else "keep"
    return policy


@lru_cache(maxsize=4)
def _viewer(key: str, lf_cfg_json: str, entry_json: str, policy: str, over_cutoff: str) -> TokenViewer:
    import json

    return TokenViewer(json.loads(lf_cfg_json), json.loads(entry_json), policy, over_cutoff)


def viewer_for(cfg: RunConfig) -> TokenViewer:
    """The (cached) viewer for a config: one LF parse and tokenizer load per distinct training setup."""
    import json
    import os

    from sftpipe.data.registration import dataset_entry
    from sftpipe.lf import render as lf_render

    lf_cfg = lf_render.render(cfg)
    model = cfg.root / cfg.model_path
    if model.exists():
        lf_cfg["model_name_or_path"] = str(model)
    elif not os.path.isabs(cfg.model_path) and cfg.model_path.startswith("artifacts/"):
        raise RenderError(
            f"model {cfg.model_path} does not exist yet: build it first (`make run` or the "
            "build_demo_model rule); the token view needs its tokenizer"
        )
    entry = dataset_entry(cfg)
    lf_json, entry_json = json.dumps(lf_cfg, sort_keys=True, default=str), json.dumps(entry, sort_keys=True)
    policy = reasoning_policy(cfg)
    key = stable_hash([lf_json, entry_json, policy, cfg.conversion["over_cutoff"]])
    return _viewer(key, lf_json, entry_json, policy, cfg.conversion["over_cutoff"])
