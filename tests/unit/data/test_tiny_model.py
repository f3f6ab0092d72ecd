"""The tiny Qwen3-architecture model: loadable, Qwen3 special tokens, chat template == LF's qwen3 render."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sftpipe.data.tiny_model import (
    EOS_TOKEN,
    MANIFEST_NAME,
    PAD_TOKEN,
    PRESETS,
    REQUIRED_FILES,
    SPECIAL_TOKENS,
    TAG_TOKENS,
    build_tiny_model,
)

DEMO = Path(__file__).resolve().parents[3] / "config" / "demo" / "lf_demo.json"
PARALLEL_SEP = "\n</tool_response>\n<tool_response>\n"


def test_directory_is_complete_and_declares_fast_tokenizer(tiny_model_dir: Path) -> None:
    assert all((tiny_model_dir / name).is_file() for name in REQUIRED_FILES)
    tok_cfg = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    assert tok_cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    assert cfg["model_type"] == "qwen3" and cfg["architectures"] == ["Qwen3ForCausalLM"]
    assert cfg["hidden_size"] == PRESETS["tiny"].hidden_size and cfg["num_hidden_layers"] == 2


def test_tokenizer_has_qwen3_special_tokens(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert 4000 <= len(tok) <= 8192
    assert tok.eos_token == EOS_TOKEN and tok.pad_token == PAD_TOKEN and tok.bos_token is None
    for t in SPECIAL_TOKENS + TAG_TOKENS:  # each is one whole token, never split
        ids = tok.encode(f"x{t}y", add_special_tokens=False)
        assert tok.convert_tokens_to_ids(t) in ids, t
    # Qwen3 semantics: tags survive skip_special_tokens, control tokens do not
    ids = tok.encode("<|im_start|>a<think>b</think><|im_end|>", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "a<think>b</think>"


def test_model_loads_and_runs(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = tok("def f(x): return x", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model(ids, labels=ids)
    assert out.logits.shape == (1, ids.shape[1], model.config.vocab_size)
    assert torch.isfinite(out.loss)
    assert model.config.eos_token_id == tok.eos_token_id and model.config.pad_token_id == tok.pad_token_id


def test_build_is_idempotent_and_refuses_mismatch(tiny_model_dir: Path, tmp_path: Path) -> None:
    before = (tiny_model_dir / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model(tiny_model_dir) == tiny_model_dir  # complete: reused, not rebuilt
    assert (tiny_model_dir / "model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="built with"):
        build_tiny_model(tiny_model_dir, seed=1)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="incomplete"):
        build_tiny_model(partial)
    with pytest.raises(ValueError, match="unknown preset"):
        build_tiny_model(tmp_path / "x", preset="qwen3-70b")
    assert json.loads((tiny_model_dir / MANIFEST_NAME).read_text())["preset"] == "tiny"


def test_same_seed_gives_identical_files(tiny_model_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again")
    for name in REQUIRED_FILES:
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name


def _openai_messages(row: dict, empty_think: bool = False) -> tuple[list[dict], list[dict] | None]:
    """sharegpt-with-tools row -> OpenAI chat messages (the form the Jinja template consumes).

    `empty_think`: give assistant turns without reasoning an empty think block, which is what LF's
    `qwen3` (ReasoningTemplate, enable_thinking unset) inserts (untrained) before such turns.
    """
    think = "<think>\n\n</think>\n\n" if empty_think else ""
    msgs = [{"role": "system", "content": row["system"]}] if row["system"] else []
    for turn in row["conversations"]:
        role, value = turn["from"], turn["value"]
        if role == "human":
            msgs.append({"role": "user", "content": value})
        elif role == "gpt":
            msgs.append({"role": "assistant", "content": value if "<think>" in value else think + value})
        elif role == "function_call":
            prefix, sep, payload = value.rpartition("</think>\n\n")
            content = prefix + sep if sep else think
            calls = json.loads(payload)
            calls = calls if isinstance(calls, list) else [calls]
            msgs.append(
                {
                    "role": "assistant",
                    "content": content,
                    "tool_calls": [{"type": "function", "function": c} for c in calls],
                }
            )
        else:  # observation: parallel results joined in one value
            msgs += [{"role": "tool", "content": part} for part in value.split(PARALLEL_SEP)]
    return msgs, (json.loads(row["tools"]) if row["tools"] else None)


@pytest.mark.parametrize("template", ["qwen3_nothink", "qwen3"])
def test_chat_template_renders_like_llamafactory(tiny_model_dir: Path, template: str) -> None:
    """Every demo row: tokenizer.apply_chat_template text == LF's template encoding, decoded."""
    from llamafactory.data.template import TEMPLATES
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    lf_template = TEMPLATES[template]
    rows = json.loads(DEMO.read_text())
    lf_template.enable_thinking = None  # qwen3 only: the unset default (reasoning kept where written)
    roles = {"human": "user", "gpt": "assistant", "function_call": "function", "observation": "observation"}
    for i, row in enumerate(rows):
        lf_msgs = [{"role": roles[t["from"]], "content": t["value"]} for t in row["conversations"]]
        pairs = lf_template.encode_multiturn(tok, lf_msgs, row["system"], row["tools"])
        lf_text = tok.decode([t for src, tgt in pairs for t in src + tgt], skip_special_tokens=False)
        msgs, tools = _openai_messages(row, empty_think=template == "qwen3")
        ours = tok.apply_chat_template(msgs, tools=tools, tokenize=False)
        assert ours == lf_text, f"row {i} renders differently"


def test_generation_prompt_and_no_thinking(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    msgs = [{"role": "user", "content": "hi"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tok.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False
    ).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_cli_builds_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sftpipe.cli import main

    out = tmp_path / "m"
    assert main(["build-tiny-model", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"model_dir": str(out), "preset": "tiny", "seed": 0}
    assert all((out / n).is_file() for n in REQUIRED_FILES)


def test_qwen3_06b_preset_has_qwen3_06b_shapes(tiny_model_dir: Path) -> None:
    """The benchmark preset's config, instantiated on the meta device (no memory, no weights)."""
    import torch
    from sftpipe.data.tiny_model import _model_config
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    cfg = _model_config(PRESETS["qwen3-0.6b"], AutoTokenizer.from_pretrained(tiny_model_dir))
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size) == (
        151936,
        1024,
        28,
        3072,
    )
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (16, 8, 128)
    with torch.device("meta"):
        model = Qwen3ForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    assert 590e6 < n_params < 600e6  # Qwen3-0.6B: 596M with tied embeddings
