"""Token length of an LF row as LLaMA-Factory's supervised preprocessing will see it (CPU, no weights).

Uses LF's own `get_template_and_fix_tokenizer` and the template's `encode_multiturn` with the row's
system and tools, so the count includes the system prompt, the rendered tool list, role markers and
(for reasoning templates with `enable_thinking`) the empty think blocks LF inserts. The result is the
length before `cutoff_len` truncation, i.e. what decides whether LF would silently truncate the row.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# sharegpt tags -> LF roles (llamafactory.data.data_utils.Role values).
_ROLE = {"human": "user", "gpt": "assistant", "function_call": "function", "observation": "observation"}


class TokenCounter:
    """Token counts of LF rows, exactly as LF's chat template encodes them (loads the tokenizer)."""

    def __init__(self, tokenizer_path: str, template: str, enable_thinking: bool | None = True) -> None:
        # Imported lazily: LF pulls in torch, which conversion without a tokenizer does not need.
        from llamafactory.data import get_template_and_fix_tokenizer
        from llamafactory.hparams import DataArguments
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, trust_remote_code=True)
        data_args = DataArguments(template=template, enable_thinking=enable_thinking)
        self.template = get_template_and_fix_tokenizer(self.tokenizer, data_args)

    def count(self, row: dict[str, Any]) -> int:
        messages = [{"role": _ROLE[t["from"]], "content": t["value"]} for t in row["conversations"]]
        pairs = self.template.encode_multiturn(self.tokenizer, messages, row["system"], row["tools"] or None)
        return sum(len(src) + len(tgt) for src, tgt in pairs) + (1 if self.template.efficient_eos else 0)


@lru_cache(maxsize=2)
def token_counter(tokenizer_path: str, template: str, enable_thinking: bool | None = True) -> TokenCounter:
    """One counter per process (workers reuse it across trials)."""
    return TokenCounter(tokenizer_path, template, enable_thinking)
