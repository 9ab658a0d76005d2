"""The demo's agent: a tiny random-weight model is named as such once, and its answer can
be capped with --max-tokens. Real llama.cpp on a tiny random GGUF written by the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from sahara_cli.agent.runners.base import RunnerOptions, open_runner
from sahara_cli.agent.runners.tiny_models import TINY_NAME
from sahara_cli.agent.spec import AgentSpec, AgentStore
from tests.conftest import PASSWORD, Invoke

pytest_plugins = ("tests.agent_models",)

NOTICE = "tiny random-weight test model: its answer is noise"


def renamed(tiny_gguf: Path, tmp_path: Path) -> Path:
    """The same weights under another general.name (same length, so the file stays valid)."""
    other = "x" * len(TINY_NAME)
    path = tmp_path / "other.gguf"
    path.write_bytes(tiny_gguf.read_bytes().replace(TINY_NAME.encode(), other.encode(), 1))
    return path


def save_agent(home: Path, model: Path) -> None:
    spec = {
        "name": "scout",
        "model": {"name": str(model), "n_ctx": 512},
        "generation": {"max_tokens": 48, "temperature": 0.8, "seed": 3},
        "memory": {"long_term": False},
        "vault": {"search": False},
        "loop": {"max_steps": 0},
    }
    AgentStore(home).save(AgentSpec.model_validate(spec), overwrite=True)


def test_a_runner_knows_a_test_model_by_its_name(tiny_gguf: Path, tmp_path: Path) -> None:
    options = RunnerOptions(n_ctx=256)
    with open_runner("llama", tiny_gguf, options) as runner:
        assert runner.title == TINY_NAME
        assert runner.is_test_model
    with open_runner("llama", renamed(tiny_gguf, tmp_path), options) as runner:
        assert not runner.is_test_model


def test_chat_says_once_that_the_model_is_a_test_model(
    cli: Invoke, initialised: Path, tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    save_agent(initialised, tiny_gguf)
    result = cli("--no-prompt", "agent", "chat", "scout", "-m", "Hello?", "--max-tokens", "4")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count(NOTICE) == 1
    assert NOTICE not in result.stdout
    save_agent(initialised, renamed(tiny_gguf, tmp_path))
    result = cli("--no-prompt", "agent", "chat", "scout", "-m", "Hello?", "--max-tokens", "4")
    assert result.exit_code == 0, result.stderr
    assert NOTICE not in result.stderr


def test_max_tokens_caps_the_answer(
    cli: Invoke, initialised: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    save_agent(initialised, tiny_gguf)
    args = ("--json", "--no-prompt", "agent", "chat", "scout", "-m", "Tell me everything.")
    capped = cli(*args, "--max-tokens", "3").json()
    assert 0 < capped["usage"]["completion_tokens"] <= 3
    assert capped["finish_reason"] == "length"
    whole = cli(*args).json()
    assert whole["usage"]["completion_tokens"] > 3
    assert NOTICE not in cli(*args, "--max-tokens", "3").stderr  # silent with --json
