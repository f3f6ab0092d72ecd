"""Credential redaction (sftpipe.util.redact)."""

from __future__ import annotations

from sftpipe.util import redact as records

SECRET = "sk-UNIQUE-4f1c9e2b7a-SECRET"


def test_redact_values_and_secret_assignments(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    text = records.redact(
        f"key={SECRET}\n+  hf_token: hf_abcdefgh12345\n  pad_token: <|endoftext|>\n"
        "TOKENIZERS_PARALLELISM=false\nmax_new_tokens: 12\n  wandb_api_key: ''"
    )
    assert SECRET not in text and "hf_abcdefgh12345" not in text
    assert "pad_token: <|endoftext|>" in text and "TOKENIZERS_PARALLELISM=false" in text
    assert "max_new_tokens: 12" in text and "wandb_api_key: ''" in text
