"""Build a random-initialised Qwen3-architecture model with a locally trained tokenizer.

(Long module: the presets, the deterministic corpus and the tokenizer training are one recipe for a model
that must rebuild byte-identically.)

No model can be downloaded here, so tests and CPU runs use a model built from scratch: the
architecture is transformers' `Qwen3ForCausalLM`, the tokenizer is a byte-level BPE trained with
the `tokenizers` library on a corpus generated deterministically below (English prose, Python code,
JSON tool calls), and the special tokens and chat format are those of Qwen3, so LLaMA-Factory's
`qwen3` / `qwen3_nothink` templates and the pipeline's tool-call data work unchanged.

Presets: `tiny` trains on CPU in seconds; `qwen3-0.6b` has Qwen3-0.6B's shapes (vocab 151936,
28 layers, hidden 1024) for GPU throughput benchmarks, and is only built, never trained here.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "sftpipe_model.json"
REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    MANIFEST_NAME,
)

# Qwen3's control tokens. The first three are "special" (skipped when decoding with
# skip_special_tokens); the tag tokens are ordinary added tokens, as in Qwen3's own tokenizer.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
TAG_TOKENS = ("<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
PAD_TOKEN, EOS_TOKEN = "<|endoftext|>", "<|im_end|>"

# Qwen-style ChatML rendering (our own Jinja). It matches LLaMA-Factory's qwen3 / qwen3_nothink
# templates: tools go into the system turn, assistant tool calls become <tool_call> JSON blocks,
# consecutive tool results share one user turn of <tool_response> blocks, assistant content
# (including any <think> block) is rendered verbatim (a call right after a "</think>\n\n" prefix
# gets no extra newline, as in LF and Qwen3), and `enable_thinking=false` on the
# generation prompt pre-fills an empty think block as Qwen3 does.
CHAT_TEMPLATE = r"""
{#- Every literal is emitted through an expression with whitespace control, so the line breaks of
    this source and transformers' trim_blocks/lstrip_blocks settings never leak into the text. -#}
{%- set sys = messages[0].content if messages and messages[0].role == 'system' else '' -%}
{%- if tools -%}
  {{- '<|im_start|>system\n' -}}
  {%- if sys -%}{{- sys + '\n\n' -}}{%- endif -%}
  {{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' -}}
  {{- 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' -}}
  {%- for t in tools -%}
    {{- '\n' + ((t if t.type == 'function' else {'type': 'function', 'function': t}) | tojson) -}}
  {%- endfor -%}
  {{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments ' -}}
  {{- 'within <tool_call></tool_call> XML tags:\n<tool_call>\n' -}}
  {{- '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' -}}
{%- elif sys -%}
  {{- '<|im_start|>system\n' + sys + '<|im_end|>\n' -}}
{%- endif -%}
{%- for m in messages -%}
  {%- if m.role == 'user' -%}
    {{- '<|im_start|>user\n' + m.content + '<|im_end|>\n' -}}
  {%- elif m.role == 'assistant' -%}
    {{- '<|im_start|>assistant\n' + (m.content or '') -}}
    {%- for c in (m.tool_calls or []) -%}
      {%- set f = c.function if c.function is defined else c -%}
      {%- if not loop.first or (m.content and not m.content.endswith('\n')) -%}{{- '\n' -}}{%- endif -%}
      {{- '<tool_call>\n{"name": ' + (f.name | tojson) + ', "arguments": ' -}}
      {{- (f.arguments if f.arguments is string else (f.arguments | tojson)) + '}\n</tool_call>' -}}
    {%- endfor -%}
    {{- '<|im_end|>\n' -}}
  {%- elif m.role == 'tool' -%}
    {%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}
    {{- '\n<tool_response>\n' + m.content + '\n</tool_response>' -}}
    {%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}{{- '<|im_end|>\n' -}}{%- endif -%}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{- '<|im_start|>assistant\n' -}}
  {%- if enable_thinking is defined and not enable_thinking -%}{{- '<think>\n\n</think>\n\n' -}}{%- endif -%}
{%- endif -%}
""".strip()


@dataclass(frozen=True)
class Preset:
    """The size of a tiny Qwen3 model and its tokenizer."""

    vocab_size: int  # embedding rows (>= tokenizer size, like Qwen's padded 151936)
    tokenizer_vocab: int  # BPE target size, including byte alphabet and special tokens
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    torch_dtype: str


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        vocab_size=6144,
        tokenizer_vocab=6144,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=8192,
        torch_dtype="float32",
    ),
    "qwen3-0.6b": Preset(
        vocab_size=151936,
        tokenizer_vocab=8192,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        torch_dtype="bfloat16",
    ),
    # Random-init architectures of the real targets, for GPU throughput/memory figures (bench/gpu_figures.py).
    "qwen3-1.7b": Preset(
        vocab_size=151936,
        tokenizer_vocab=8192,
        hidden_size=2048,
        intermediate_size=6144,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        torch_dtype="bfloat16",
    ),
    "qwen3-8b": Preset(
        vocab_size=151936,
        tokenizer_vocab=8192,
        hidden_size=4096,
        intermediate_size=12288,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        torch_dtype="bfloat16",
    ),
}

# ---------------------------------------------------------------------------------------------
# Deterministic training corpus
# ---------------------------------------------------------------------------------------------
_WORDS = (  # noqa: SIM905 (a word list reads better as prose)
    "the a an of to in and or for with on at by from as is are was were be been it this that these "
    "those you we they he she i my your our their its not no yes can could should would will may must "
    "do does did done make made run runs running test tests testing file files directory path code "
    "function class method module package import return value values error errors exception fix fixed "
    "bug bugs issue issues change changes patch diff commit branch merge repository repo build "
    "install dependency dependencies version release config configuration option options argument "
    "arguments parameter parameters string number list dict object array type types check checks "
    "validate validation parse parser output input read write open close create delete update add "
    "remove rename move copy search find replace line lines column row rows table data dataset model "
    "training train loss step steps epoch batch token tokens length size memory time first second "
    "third last next previous new old current default empty missing invalid valid because when where "
    "while if then else after before until since so but also only just still user users assistant "
    "system tool tools call calls result results response request server client please let me now "
    "here there what which who how why all any each every some many more most small large fast slow "
    "simple complex good bad correct wrong true false none null python shell command commands "
    "terminal script scripts log logs message messages warning info debug trace look looks see saw "
    "show shows use used using need needs want try tried work works worked expected actual behavior "
    "behaviour problem solution approach implement implementation refactor edge case cases handle "
    "handles handling return returns raise raises catch throw thread process queue cache buffer "
    "stream socket network request timeout retry limit offset page pages index header headers issue "
    "pass passes passed failed fails failing repository testbed inspect smallest summary changed "
    "replace replaced occurrence exact optionally range stdout stderr finish submit description "
    "properties required function functions signatures provided json arguments name assertion "
    "traceback regression guarded confirm reason described affected rerun edited edit helper keeps "
    "behaviour stable replacement datetime timezone naive aware slash slashes quote"
).split()
_IDENT = (  # noqa: SIM905 (a word list reads better as prose)
    "get set load save read write parse build run make init reset update apply compute count user "
    "item node tree graph path file name key value data config state cache result error list map "
    "index table row col size len total max min sum avg buffer stream token batch model"
).split()
_MODULES = ("os", "sys", "json", "re", "math", "time", "pathlib", "typing", "subprocess", "collections")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(5, 18))]
    words[0] = words[0].capitalize()
    text = " ".join(words)
    if rng.random() < 0.3:
        text += f" {rng.randint(0, 4096)}"
    return text + rng.choice((".", ".", ".", "?", "!", ":"))


def _ident(rng: random.Random) -> str:
    parts = [rng.choice(_IDENT) for _ in range(rng.randint(1, 3))]
    # camelCase names are single pre-tokens for the byte-level regex, so they feed many merges
    return "_".join(parts) if rng.random() < 0.4 else parts[0] + "".join(p.capitalize() for p in parts[1:])


def _python_snippet(rng: random.Random) -> str:
    fn, a, b, c = _ident(rng), _ident(rng), _ident(rng), _ident(rng)
    mod = rng.choice(_MODULES)
    lines = [
        f"import {mod}",
        "",
        f'def {fn}({a}: int, {b}: str = "{rng.choice(_WORDS)}") -> dict[str, int]:',
        f'    """{_sentence(rng)}"""',
        f"    {c} = {{}}",
        f"    for i in range({a}):",
        f"        if i % {rng.randint(2, 9)} == 0:",
        f"            {c}[{b} + str(i)] = i * {rng.randint(1, 99)}",
        "        else:",
        f'            raise ValueError(f"bad {{i}} in {fn}")',
        f"    return {c}",
    ]
    if rng.random() < 0.5:
        lines += [
            "",
            f"class {_ident(rng).title().replace('_', '')}:",
            f"    def __init__(self, {a}):",
            f"        self.{a} = {a}",
        ]
    return "\n".join(lines)


def _shell_snippet(rng: random.Random) -> str:
    cmds = (
        f"ls -la {rng.choice(_IDENT)}/",
        f"cat src/{_ident(rng)}.py",
        "git status",
        "git diff --stat",
        f"python -m pytest tests/test_{_ident(rng)}.py -x -q",
        f'grep -rn "{_ident(rng)}" src/',
        f"sed -n {rng.randint(1, 50)},{rng.randint(51, 200)}p {_ident(rng)}.py",
        "pip install -e .",
    )
    out = (
        f"{rng.randint(1, 40)} passed, {rng.randint(0, 3)} failed in {rng.random() * 9:.2f}s",
        (
            f'Traceback (most recent call last):\n  File "{_ident(rng)}.py", line {rng.randint(1, 300)}'
            f", in {_ident(rng)}\nKeyError: '{_ident(rng)}'"
        ),
        "On branch main\nnothing to commit",
    )
    sha = "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice((7, 12, 40))))
    return f"$ {rng.choice(cmds)}\n{rng.choice(out)}\ncommit {sha}"


def _tool_call_snippet(rng: random.Random) -> str:
    call = {
        "name": rng.choice(("bash", "read_file", "edit_file", "search")),
        "arguments": {"command": f"cat {_ident(rng)}.py", "path": f"src/{_ident(rng)}.py"},
    }
    return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"


def _tool_schema_snippet(rng: random.Random) -> str:
    props = {
        _ident(rng): {"type": rng.choice(("string", "integer", "boolean")), "description": _sentence(rng)}
        for _ in range(rng.randint(1, 3))
    }
    schema = {
        "type": "function",
        "function": {
            "name": _ident(rng),
            "description": _sentence(rng),
            "parameters": {"type": "object", "properties": props, "required": sorted(props)[:1]},
        },
    }
    return json.dumps(schema)


def corpus(n_docs: int = 6000, seed: int = 1234) -> list[str]:
    """Deterministic mixed corpus (prose, Python, shell sessions, tool-call and tool-schema JSON)."""
    rng = random.Random(seed)
    makers = (
        lambda: " ".join(_sentence(rng) for _ in range(rng.randint(2, 6))),
        lambda: _python_snippet(rng),
        lambda: _shell_snippet(rng),
        lambda: _tool_call_snippet(rng),
        lambda: _tool_schema_snippet(rng),
    )
    return [makers[i % len(makers)]() for i in range(n_docs)]


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------
def train_tokenizer(vocab_size: int) -> Any:
    """Train a byte-level BPE tokenizer (deterministic for a given corpus) wrapped as a fast tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS) - len(TAG_TOKENS),
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (EOS_TOKEN, PAD_TOKEN)],
        clean_up_tokenization_spaces=False,
        model_max_length=131072,
        split_special_tokens=False,
    )
    # Tags are whole tokens but not "special" (as in Qwen3): decoding keeps them.
    fast.add_tokens([AddedToken(t, normalized=False, special=False) for t in TAG_TOKENS])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _model_config(preset: Preset, tokenizer: Any) -> Any:
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=max(preset.vocab_size, len(tokenizer)),
        hidden_size=preset.hidden_size,
        intermediate_size=preset.intermediate_size,
        num_hidden_layers=preset.num_hidden_layers,
        num_attention_heads=preset.num_attention_heads,
        num_key_value_heads=preset.num_key_value_heads,
        head_dim=preset.head_dim,
        max_position_embeddings=preset.max_position_embeddings,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        hidden_act="silu",
        attention_bias=False,
        use_cache=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(EOS_TOKEN),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
        torch_dtype=preset.torch_dtype,
        architectures=["Qwen3ForCausalLM"],
    )


def is_complete(model_dir: Path) -> bool:
    """Whether every file of a built model is present in `model_dir`."""
    return all((model_dir / name).is_file() for name in REQUIRED_FILES)


def build_tiny_model(out_dir: Path, preset: str = "tiny", seed: int = 0) -> Path:
    """Build (or reuse) a model directory loadable by `from_pretrained` and LLaMA-Factory.

    Idempotent: a complete directory built with the same preset and seed is returned as-is; one
    built with other settings, or a non-empty incomplete directory, is an error (never overwritten).
    The build happens in a sibling temp directory that is renamed into place, so an interrupted
    build never leaves a half-written model behind.
    """
    import torch
    from transformers import GenerationConfig, Qwen3ForCausalLM

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    out_dir = Path(out_dir)
    wanted = {"preset": preset, "seed": seed, **asdict(PRESETS[preset])}
    if out_dir.exists():
        if is_complete(out_dir):
            have = json.loads((out_dir / MANIFEST_NAME).read_text())
            if have != wanted:
                raise ValueError(f"{out_dir} holds a model built with {have}, not {wanted}")
            return out_dir
        if any(out_dir.iterdir()):
            missing = [n for n in REQUIRED_FILES if not (out_dir / n).is_file()]
            raise FileExistsError(
                f"{out_dir} is not empty but incomplete (missing {missing}); remove it first"
            )

    spec = PRESETS[preset]
    tokenizer = train_tokenizer(spec.tokenizer_vocab)
    config = _model_config(spec, tokenizer)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config).to(getattr(torch, spec.torch_dtype))
    model.generation_config = GenerationConfig(
        bos_token_id=None,
        eos_token_id=[config.eos_token_id, config.pad_token_id],
        pad_token_id=config.pad_token_id,
        do_sample=True,
        temperature=0.6,
        top_p=0.95,
        top_k=20,
    )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _declare_tokenizer_class(tmp)
        (tmp / MANIFEST_NAME).write_text(json.dumps(wanted, indent=2) + "\n")
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        tmp.chmod(0o755)  # mkdtemp creates 0700
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def _declare_tokenizer_class(model_dir: Path) -> None:
    """Make tokenizer_config.json name `PreTrainedTokenizerFast` explicitly (LF loads via AutoTokenizer)."""
    path = model_dir / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
