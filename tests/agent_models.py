"""Tiny models for the agent tests, written once per session (nothing downloads).

Fixtures: ``tiny_gguf`` (a random llama GGUF for llama.cpp) and ``tiny_hf`` (a random
LlamaForCausalLM directory for transformers). Helpers for one-line CLI samples:
``tiny_gguf_at`` writes one into a folder, ``stored_model`` adds one to a home's store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sahara_cli.agent.tinymodel import write_tiny_gguf, write_tiny_transformers


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_transformers(tmp_path_factory.mktemp("hf") / "tiny-hf")


def tiny_gguf_at(folder: Path, name: str = "tiny.gguf") -> str:
    """Write a tiny GGUF into ``folder``; its path as text (for CLI arguments)."""
    return str(write_tiny_gguf(Path(folder) / name))


def stored_model(tmp: Path, name: str = "tiny") -> str:
    """Add a tiny GGUF to the store of the test home ``tmp/home``; returns its name."""
    from sahara_cli.agent.models import ModelStore

    ModelStore(tmp / "home").add(Path(tiny_gguf_at(tmp, f"{name}.gguf")), name=name)
    return name
