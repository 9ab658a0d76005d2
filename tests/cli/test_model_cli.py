"""sahara model: add, list, show, default, rm, pull (offline) and register on chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, Invoke

pytest_plugins = ("tests.agent_models",)  # the tiny_gguf and tiny_hf fixtures


def test_add_list_show_default_rm(
    cli: Invoke, initialised: Path, tiny_gguf: Path, tiny_hf: Path
) -> None:
    added = cli("--json", "model", "add", str(tiny_gguf), "--name", "tiny")
    assert added.exit_code == 0, added.stderr
    entry = added.json()
    assert entry["name"] == "tiny" and entry["runner"] == "llama" and entry["default"]
    assert entry["cid"].startswith("bafy") and len(entry["sha256"]) == 64
    linked = cli("--json", "model", "add", str(tiny_hf), "--link")
    assert linked.exit_code == 0, linked.stderr
    assert linked.json()["runner"] == "torch" and not linked.json()["default"]

    listed = cli("--json", "model", "list").json()
    assert listed["default"] == "tiny"
    assert [m["name"] for m in listed["models"]] == ["tiny", "tiny-hf"]
    shown = cli("--json", "model", "show", "default").json()
    assert shown["cid"] == entry["cid"] and shown["facts"]["architecture"] == "llama"
    assert "tiny" in cli("model", "list").stdout  # the table for people

    assert cli("--json", "model", "default", "tiny-hf").json()["default"] == "tiny-hf"
    assert cli("--json", "model", "default").json()["model"]["runner"] == "torch"

    refused = cli("--json", "--no-prompt", "model", "rm", "tiny")
    assert refused.exit_code == 2 and refused.error()["code"] == "confirmation_required"
    removed = cli("--json", "--no-prompt", "model", "rm", "tiny", "--yes")
    assert removed.exit_code == 0 and removed.json()["files_deleted"] is True
    assert not (initialised / "models" / "tiny").exists()
    assert [m["name"] for m in cli("--json", "model", "list").json()["models"]] == ["tiny-hf"]


def test_bad_input_gives_one_clear_error(cli: Invoke, initialised: Path, tmp_path: Path) -> None:
    missing = cli("--json", "model", "add", str(tmp_path / "nope.gguf"))
    assert missing.exit_code == 3 and missing.error()["code"] == "agent.model_not_found"
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\0" * 40)
    corrupt = cli("--json", "model", "add", str(junk))
    assert corrupt.exit_code == 8 and corrupt.error()["code"] == "agent.model_invalid"
    runner = cli("--json", "model", "add", str(junk), "--runner", "onnx")
    assert runner.exit_code == 2
    unknown = cli("--json", "model", "show", "nope")
    assert unknown.exit_code == 3 and unknown.stdout == ""


def test_names_of_the_stores_own_files_are_refused(
    cli: Invoke, initialised: Path, tiny_gguf: Path
) -> None:
    """A model named after the registry (or another file of the store) would clash
    with it: a usage error, and the store stays as it was."""
    for name in ("models.json", "path-ids.json", "default", ".hidden"):
        refused = cli("--json", "model", "add", str(tiny_gguf), "--name", name)
        assert refused.exit_code == 2, (name, refused.stderr)
        assert refused.error()["code"] == "usage" and name in refused.error()["message"]
    assert cli("--json", "model", "list").json()["models"] == []


def test_pull_offline_says_how_to_add_by_hand(
    cli: Invoke, initialised: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    result = cli("--json", "model", "pull", "owner/tiny-GGUF", "tiny.gguf")
    assert result.exit_code == 5 and result.stdout == ""
    error = result.error()
    assert error["code"] == "agent.model_download_failed"
    assert "https://huggingface.co/owner/tiny-GGUF" in error["hint"]
    assert "sahara model add PATH" in error["hint"]


@pytest.fixture
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from sahara_cli.node.rpc.testing import dev_node

    with dev_node(tmp_path_factory.mktemp("node")) as (_, server):
        yield server.url


def test_register_a_model_as_an_asset(
    cli: Invoke,
    initialised: Path,
    tiny_gguf: Path,
    node_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sahara_cli.node.client import NodeClient

    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    monkeypatch.setenv("SAHARA_NODE_RPC_URL", node_url)
    address = cli("--json", "id", "show", "--no-chain").json()["address"]
    NodeClient(node_url).call("sahara_dev_setBalance", address, hex(10**20))
    assert cli("--json", "model", "add", str(tiny_gguf), "--name", "tiny").exit_code == 0
    result = cli("--json", "--no-prompt", "model", "register", "tiny")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    asset_id = data["asset_id"]
    assert isinstance(asset_id, int)
    asset = cli("--json", "asset", "show", str(asset_id)).json()
    assert asset["kind"] == "model" and asset["name"] == "tiny"
    assert asset["cid"] == data["vault_cid"]
    assert cli("--json", "model", "show", "tiny").json()["asset_id"] == asset_id
    again = cli("--json", "--no-prompt", "model", "register", "tiny")
    assert again.exit_code == 2
