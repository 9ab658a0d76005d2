"""sahara model: add, list, show, default, rm, pull (offline) and register on chain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class _HubDouble:
    """A stand-in for the Hugging Face hub's resolve endpoint (the real hub is not
    reachable here): ``/{repo}/resolve/{revision}/{file}`` answers HEAD with the hub's
    headers (commit, linked ETag = the LFS SHA-256, size) and GET with the bytes.
    ``served`` replaces the bytes sent, to play a tampered mirror."""

    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, repo: str, filename: str, data: bytes) -> None:
        import hashlib
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.data = data
        self.served = data
        self.requested: list[str] = []
        sha = hashlib.sha256(data).hexdigest()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _route(self) -> bool:
                prefix = f"/{repo}/resolve/"
                if not self.path.startswith(prefix) or not self.path.endswith(f"/{filename}"):
                    self.send_error(404)
                    return False
                revision = self.path[len(prefix) : -len(filename) - 1]
                hub.requested.append(f"{self.command} {revision}")
                if revision not in ("main", hub.COMMIT):
                    self.send_error(404)
                    return False
                self.send_response(200)
                self.send_header("X-Repo-Commit", hub.COMMIT)
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("ETag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(hub.data)))
                self.send_header("Content-Length", str(len(hub.served)))
                self.end_headers()
                return True

            def do_HEAD(self) -> None:
                self._route()

            def do_GET(self) -> None:
                if self._route():
                    self.wfile.write(hub.served)

            def log_message(self, *_: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(tiny_gguf: Path) -> Iterator[_HubDouble]:
    double = _HubDouble("owner/tiny-GGUF", "tiny.gguf", tiny_gguf.read_bytes())
    yield double
    double.close()


def _pull(sahara: Any, hub: _HubDouble, *args: str) -> Any:
    # HF_HUB_OFFLINE may be set in this process by the embedder; the pull runs online.
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1"}
    return sahara(["--json", "model", "pull", "owner/tiny-GGUF", "tiny.gguf", *args], env=env)


def test_pull_pins_the_revision_to_its_commit(
    sahara: Any, initialised: Path, hub: _HubDouble
) -> None:
    import hashlib

    result = _pull(sahara, hub)
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout)
    assert entry["source"] == f"hf:owner/tiny-GGUF/tiny.gguf@{hub.COMMIT}"
    assert entry["sha256"] == hashlib.sha256(hub.data).hexdigest()
    # The bytes were fetched at the commit that 'main' named, not at the moving branch.
    assert any(r.startswith("GET") for r in hub.requested), hub.requested
    assert all(r == f"GET {hub.COMMIT}" for r in hub.requested if r.startswith("GET"))


def test_pull_refuses_a_file_whose_hash_differs(
    sahara: Any, initialised: Path, hub: _HubDouble
) -> None:
    """A mirror that serves other bytes than the hub's SHA-256 names: nothing is added."""
    tampered = bytearray(hub.data)
    tampered[-1] ^= 0xFF
    hub.served = bytes(tampered)
    result = _pull(sahara, hub)
    assert result.returncode == 8, result.stderr
    assert json.loads(result.stderr)["error"]["code"] == "agent.model_hash_mismatch"
    assert not list((initialised / "models").glob("*/tiny.gguf"))
    listed = sahara(["--json", "model", "list"])
    assert json.loads(listed.stdout)["models"] == []


def test_pull_checks_the_sha256_the_user_gives(
    sahara: Any, initialised: Path, hub: _HubDouble
) -> None:
    result = _pull(sahara, hub, "--sha256", "ab" * 32)
    assert result.returncode == 8, result.stderr
    assert json.loads(result.stderr)["error"]["code"] == "agent.model_hash_mismatch"
    assert not any(r.startswith("GET") for r in hub.requested)  # refused before download
    bad = _pull(sahara, hub, "--sha256", "xyz")
    assert bad.returncode == 2
