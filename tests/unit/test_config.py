"""Config: precedence, validation, atomic writes, and broken files left alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sahara_cli.config import Config, iter_keys, load_config, set_value, unset_value
from sahara_cli.errors import ConfigInvalid, ConfigKeyUnknown, ConfigValueInvalid, ExitCode


@pytest.fixture
def file(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


def test_defaults_without_a_file(file: Path) -> None:
    loaded = load_config(file, environ={})
    assert loaded.config == Config()
    assert loaded.get("node.rpc_url") == "http://127.0.0.1:8545"
    assert all(source == "default" for _, _, source in loaded.items())


def test_precedence_flag_over_env_over_file_over_default(file: Path) -> None:
    file.write_text('[node]\nrpc_url = "http://file:1"\ntimeout = 3\n')
    env = {"SAHARA_NODE_RPC_URL": "http://env:2"}
    loaded = load_config(file, environ=env)
    assert loaded.get("node.rpc_url") == "http://env:2"
    assert loaded.sources["node.rpc_url"] == "env:SAHARA_NODE_RPC_URL"
    assert loaded.get("node.timeout") == 3.0
    assert loaded.sources["node.timeout"] == "file"
    flagged = load_config(file, environ=env, overrides={"node.rpc_url": "http://flag:3"})
    assert flagged.get("node.rpc_url") == "http://flag:3"
    assert flagged.sources["node.rpc_url"] == "flag"
    assert flagged.sources["log.level"] == "default"


def test_env_values_are_typed(file: Path) -> None:
    loaded = load_config(
        file, environ={"SAHARA_IDENTITY_SCRYPT_N": "2048", "SAHARA_LOG_BACKUPS": "7"}
    )
    assert loaded.config.identity.scrypt_n == 2048
    assert loaded.config.log.backups == 7


def test_bad_env_value_names_the_variable(file: Path) -> None:
    with pytest.raises(ConfigInvalid, match="SAHARA_IDENTITY_SCRYPT_N"):
        load_config(file, environ={"SAHARA_IDENTITY_SCRYPT_N": "1000"})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[node\nrpc_url = 1", "not valid TOML"),
        ('[node]\nrpc_url = "ftp://x"\n', "key 'node.rpc_url'"),
        ("[node]\ntimeout = -1\n", "key 'node.timeout'"),
        ("[node]\nport = 1\n", "key 'node.port': unknown key"),
        ("[nodes]\nrpc_url = 1\n", "key 'nodes': unknown key"),
        ('[log]\nlevel = "loud"\n', "key 'log.level'"),
    ],
)
def test_malformed_or_invalid_file_names_file_key_and_reason(
    file: Path, text: str, fragment: str
) -> None:
    file.write_text(text)
    with pytest.raises(ConfigInvalid) as info:
        load_config(file, environ={})
    assert str(file) in info.value.message
    assert fragment in info.value.message
    assert info.value.exit_code == ExitCode.INVALID_DATA


def test_set_writes_typed_values_atomically_and_privately(file: Path) -> None:
    assert set_value(file, "node.timeout", "2.5") == 2.5
    assert set_value(file, "identity.default", "alice") == "alice"
    text = file.read_text()
    assert "timeout = 2.5" in text
    assert 'default = "alice"' in text
    assert oct(file.stat().st_mode & 0o777) == "0o600"
    assert not [p for p in file.parent.iterdir() if p.name.endswith(".tmp")]
    assert load_config(file, environ={}).sources["node.timeout"] == "file"


def test_set_rejects_bad_values_and_unknown_keys_without_writing(file: Path) -> None:
    set_value(file, "node.timeout", "2")
    before = file.read_bytes()
    with pytest.raises(ConfigValueInvalid, match=r"node\.timeout"):
        set_value(file, "node.timeout", "soon")
    with pytest.raises(ConfigKeyUnknown):
        set_value(file, "node.nope", "1")
    assert file.read_bytes() == before


def test_a_broken_file_is_never_overwritten(file: Path) -> None:
    file.write_text("this is = = not toml")
    before = file.read_bytes()
    with pytest.raises(ConfigInvalid):
        set_value(file, "node.timeout", "2")
    with pytest.raises(ConfigInvalid):
        unset_value(file, "node.timeout")
    assert file.read_bytes() == before


def test_unset_restores_the_default(file: Path) -> None:
    set_value(file, "log.level", "debug")
    assert unset_value(file, "log.level") is True
    assert unset_value(file, "log.level") is False
    assert load_config(file, environ={}).get("log.level") == "info"


def test_every_key_has_a_description_and_env_name() -> None:
    keys = list(iter_keys())
    assert {k.key for k in keys} >= {
        "identity.default",
        "identity.scrypt_n",
        "node.rpc_url",
        "log.level",
    }
    for info in keys:
        assert info.description, info.key
        assert info.env == "SAHARA_" + info.key.replace(".", "_").upper()


def test_unreadable_file_is_reported(file: Path) -> None:
    if os.geteuid() == 0:
        file.mkdir()  # root reads any file; a directory is unreadable as text for everyone
    else:
        file.write_text("")
        file.chmod(0)
    with pytest.raises(ConfigInvalid, match="cannot read"):
        load_config(file, environ={})


def test_written_file_keeps_the_header(file: Path) -> None:
    set_value(file, "log.level", "debug")
    assert file.read_text().startswith("# sahara configuration.")
    assert load_config(file, environ={}).get("log.level") == "debug"


def test_config_workflows_return_typed_results(file: Path) -> None:
    from sahara_cli.config import (
        config_location,
        get_setting,
        set_setting,
        show_config,
        unset_setting,
    )

    assert config_location(file).model_dump(mode="json") == {"path": str(file), "exists": False}
    changed = set_setting(file, "node.timeout", "30")
    assert (changed.key, changed.value, changed.path) == ("node.timeout", 30.0, file)
    assert changed.model_dump(mode="json")["value"] == 30.0
    loaded = load_config(file, environ={"SAHARA_LOG_LEVEL": "debug"})
    report = show_config(loaded, file)
    assert report.exists and report.values.node.timeout == 30.0
    assert report.sources["node.timeout"] == "file"
    assert report.sources["log.level"] == "env:SAHARA_LOG_LEVEL"
    assert report.sources["node.rpc_url"] == "default"
    document = report.model_dump(mode="json")
    assert document["values"]["identity"]["scrypt_n"] == 262144
    assert set(document["sources"]) == {info.key for info in iter_keys()}
    got = get_setting(loaded, "identity.default")
    assert (got.value, got.source) == (None, "default")
    assert get_setting(loaded, "vault.index").value is True
    with pytest.raises(ConfigKeyUnknown):
        get_setting(loaded, "node.colour")
    assert unset_setting(file, "node.timeout").removed is True
    assert unset_setting(file, "node.timeout").removed is False
    assert load_config(file, environ={}).sources["node.timeout"] == "default"


def test_vault_embedder_defaults_to_the_float_onnx_graph(file: Path) -> None:
    from sahara_cli.vault.embed import DEFAULT_KIND, KINDS

    assert load_config(file, environ={}).get("vault.embedder") == "onnx" == DEFAULT_KIND
    for kind in KINDS:  # every embedder kind is a valid setting
        env = {"SAHARA_VAULT_EMBEDDER": kind}
        assert load_config(file, environ=env).get("vault.embedder") == kind
    with pytest.raises(ConfigInvalid, match="SAHARA_VAULT_EMBEDDER"):
        load_config(file, environ={"SAHARA_VAULT_EMBEDDER": "int4"})
