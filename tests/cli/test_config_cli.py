"""sahara config show|get|set|unset|path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Invoke


def test_show_lists_values_and_sources(cli: Invoke, initialised: Path) -> None:
    doc = cli("--json", "config", "show").json()
    assert doc["path"] == str(initialised / "config.toml")
    assert doc["values"]["identity"]["default"] == "main"
    assert doc["sources"]["identity.default"] == "file"
    assert doc["sources"]["node.rpc_url"] == "env:SAHARA_NODE_RPC_URL"
    assert doc["sources"]["log.level"] == "default"
    human = cli("config", "show")
    assert "identity.default" in human.stdout and "main" in human.stdout


def test_set_get_unset_round_trip(
    cli: Invoke, initialised: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAHARA_NODE_RPC_URL")
    assert cli("--json", "config", "set", "node.rpc_url", "http://127.0.0.1:9999").exit_code == 0
    got = cli("--json", "config", "get", "node.rpc_url").json()
    assert got == {"key": "node.rpc_url", "value": "http://127.0.0.1:9999", "source": "file"}
    assert cli("config", "get", "node.rpc_url").stdout.strip() == "http://127.0.0.1:9999"
    monkeypatch.setenv("SAHARA_NODE_RPC_URL", "http://127.0.0.1:1")
    assert (
        cli("--json", "config", "get", "node.rpc_url").json()["source"] == "env:SAHARA_NODE_RPC_URL"
    )
    assert cli("--json", "config", "unset", "node.rpc_url").json()["removed"] is True
    monkeypatch.delenv("SAHARA_NODE_RPC_URL")
    assert cli("--json", "config", "get", "node.rpc_url").json()["source"] == "default"


def test_bad_key_and_bad_value(cli: Invoke, initialised: Path) -> None:
    before = (initialised / "config.toml").read_bytes()
    unknown = cli("--json", "config", "set", "node.colour", "blue")
    assert unknown.exit_code == 3
    assert unknown.error()["code"] == "config.unknown_key"
    bad = cli("--json", "config", "set", "identity.scrypt_n", "1000")
    assert bad.exit_code == 2
    assert "power of two" in bad.error()["message"]
    assert (initialised / "config.toml").read_bytes() == before


def test_malformed_config_error_names_file_and_is_not_overwritten(
    cli: Invoke, initialised: Path
) -> None:
    config = initialised / "config.toml"
    config.write_text('[node]\nrpc_url = "gopher://x"\n')
    result = cli("--json", "config", "set", "log.level", "debug")
    assert result.exit_code == 8
    error = result.error()
    assert error["code"] == "config.invalid"
    assert str(config) in error["message"] and "node.rpc_url" in error["message"]
    assert error["hint"]
    assert config.read_text() == '[node]\nrpc_url = "gopher://x"\n'
    human = cli("id", "list")
    assert human.exit_code == 8
    assert "Traceback" not in human.stderr
    assert human.stderr.count("error:") == 1


def test_home_flag_overrides_env(cli: Invoke, initialised: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert cli("--json", "--home", str(other), "config", "path").json()["path"] == str(
        other / "config.toml"
    )
    missing = cli("--json", "--home", str(other), "config", "set", "log.level", "debug")
    assert missing.exit_code == 3
    assert missing.error()["code"] == "home.not_found"
