"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "config" / "demo"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Qwen3-architecture model + locally trained tokenizer, built once per session.

    Treat it as read-only (copy it before changing anything): every test in the session shares it.
    """
    from sftpipe.data.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model") / "qwen3-tiny", preset="tiny", seed=0)


@pytest.fixture(scope="session")
def demo_dataset_dir() -> Path:
    """The bundled demo dataset directory (lf_demo.json + dataset_info.json)."""
    return DEMO_DIR
