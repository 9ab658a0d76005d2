"""Tiny models for the agent tests, written once per session (nothing downloads).

Fixtures: ``tiny_gguf`` (a random llama GGUF for llama.cpp) and ``tiny_hf`` (a random
LlamaForCausalLM directory for transformers). Helpers for one-line CLI samples:
``tiny_gguf_at`` writes one into a folder, ``stored_model`` adds one to a home's store,
``save_tiny_agent`` saves a terse agent on a tiny model into a home.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sahara_cli.agent.runners.tiny_models import write_tiny_gguf, write_tiny_transformers
from sahara_cli.agent.spec import AgentSpec, AgentStore


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
    from sahara_cli.agent.runners.model_store import ModelStore

    ModelStore(tmp / "home").add(Path(tiny_gguf_at(tmp, f"{name}.gguf")), name=name)
    return name


def save_tiny_agent(home: Path, name: str, model: Path) -> AgentSpec:
    """An agent on the tiny model that answers in a few tokens, with no vault or memory."""
    spec = AgentSpec.model_validate(
        {
            "name": name,
            "description": f"The {name} agent of the tests.",
            "persona": f"You are {name}, a terse assistant.",
            "model": {"name": str(model), "n_ctx": 1024},
            "generation": {"max_tokens": 8, "temperature": 0.0, "seed": 7},
            "tools": {"builtin": ["calculator"]},
            "memory": {"long_term": False, "short_term_turns": 0},
            "vault": {"search": False},
            "loop": {"max_steps": 0},
        }
    )
    AgentStore(home).save(spec)
    return spec
