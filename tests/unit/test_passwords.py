"""Where a password comes from, and why a prompt is refused without a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sahara_cli.errors import PasswordRequired, WrongPassword
from sahara_cli.identity.passwords import read_password, why_no_prompt
from sahara_cli.identity.store import KeyStore


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_prompt_needs_a_terminal_and_prompting_on() -> None:
    assert why_no_prompt(no_prompt=False, stdin=Terminal()) is None
    assert "not a terminal" in str(why_no_prompt(no_prompt=False, stdin=io.StringIO("pw\n")))
    assert "--no-prompt" in str(why_no_prompt(no_prompt=True, stdin=Terminal()))
    closed = io.StringIO()
    closed.close()
    assert why_no_prompt(no_prompt=False, stdin=closed) is not None


def test_sources_in_order(tmp_path: Path) -> None:
    asked: list[tuple[str, bool]] = []

    def ask(prompt: str, twice: bool) -> str:
        asked.append((prompt, twice))
        return "typed"

    file = tmp_path / "pw"
    file.write_text("from-file\nsecond line\n")
    env = {"SAHARA_PASSWORD": "from-env"}
    assert read_password(file, purpose="x", ask=ask, environ=env) == "from-file"
    assert read_password(None, purpose="x", ask=ask, environ=env) == "from-env"
    assert read_password(None, purpose="unlock 'a'", ask=ask, new=True, environ={}) == "typed"
    assert asked == [("Password to unlock 'a'", True)]


def test_nobody_to_ask_is_password_required_with_the_reason() -> None:
    reason = why_no_prompt(no_prompt=False, stdin=io.StringIO())
    with pytest.raises(PasswordRequired) as raised:
        read_password(None, purpose="unlock 'a'", ask=None, cannot_ask=str(reason), environ={})
    assert raised.value.code == "identity.password_required"
    assert "not a terminal" in raised.value.message
    assert raised.value.hint is not None
    assert "SAHARA_PASSWORD" in raised.value.hint and "--password-file" in raised.value.hint


def test_a_wrong_password_names_the_id(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", scrypt_n=1024)
    info, _ = store.create("alice", "pw")
    for attempt in (store.unlock, store.export):
        with pytest.raises(WrongPassword) as raised:
            attempt("alice", "nope")
        assert raised.value.message == f"wrong password for Sahara ID 'alice' ({info.address})"
        assert raised.value.details == {"name": "alice", "address": info.address}
