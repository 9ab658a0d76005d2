"""sahara vault on the local backend, in process: add, ls, get, cat, rm, export, import,
search, status; encryption at rest, tampering, bad input."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD, Invoke

MARKER = "PANGOLIN-MARKER-5521"


@pytest.fixture
def vault_home(initialised: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text(
        f"The {MARKER} study tracked pangolins across three forests.\n"
        "Night cameras recorded feeding on ants and termites.\n"
    )
    (data / "blob.bin").write_bytes(os.urandom(600_000))
    tree = data / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.md").write_text("# alpha\nfirst file\n")
    (tree / "sub" / "b.csv").write_text("k,v\n1,2\n")
    (tree / "empty").mkdir()
    return data


def _grep(root: Path, needle: bytes) -> list[Path]:
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]


def test_private_add_keeps_nothing_readable_and_gets_back(
    cli: Invoke, initialised: Path, vault_home: Path, tmp_path: Path
) -> None:
    src = vault_home / "notes.txt"
    added = cli("--json", "vault", "add", str(src)).json()["items"][0]
    assert added["encrypted"] and added["new"] and added["kind"] == "file"
    # Salted: the chain's commitment does not confirm a guess of the plaintext.
    assert added["commitment"] != "0x" + hashlib.sha256(src.read_bytes()).hexdigest()
    assert added["chunks"] >= 1
    assert _grep(initialised, MARKER.encode()) == []

    out = tmp_path / "back.txt"
    got = cli("--json", "--no-prompt", "vault", "get", added["cid"], "-o", str(out)).json()
    assert got["verified"] and out.read_bytes() == src.read_bytes()
    cat = cli("--json", "--no-prompt", "vault", "cat", added["cid"]).json()
    assert cat["encoding"] == "utf-8" and MARKER in cat["content"]

    again = cli("--json", "vault", "add", str(src)).json()["items"][0]
    assert not again["new"] and again["cid"] == added["cid"]
    assert [i["cid"] for i in cli("--json", "vault", "ls").json()["items"]] == [added["cid"]]


def test_public_add_is_plain_and_searchable(cli: Invoke, vault_home: Path, tmp_path: Path) -> None:
    src = vault_home / "notes.txt"
    added = cli("--json", "vault", "add", str(src), "--public").json()["items"][0]
    assert not added["encrypted"]
    assert added["cid"].startswith("bafkrei")  # one raw block: its CID is the file's sha256
    hits = cli("--json", "vault", "search", "animals eating termites at night").json()["hits"]
    assert hits[0]["cid"] == added["cid"] and MARKER in hits[0]["text"]
    assert hits[0]["asset_id"] is None and hits[0]["chunk"] == 0


def test_private_search_hides_text_until_unlocked(cli: Invoke, vault_home: Path) -> None:
    cli("--json", "vault", "add", str(vault_home / "notes.txt"))
    hit = cli("--json", "vault", "search", "pangolin study").json()["hits"][0]
    assert hit["sealed"] and hit["text"] is None
    shown = cli("--json", "--no-prompt", "vault", "search", "pangolin study", "--show-text")
    assert MARKER in shown.json()["hits"][0]["text"]


@pytest.mark.parametrize("public", [True, False])
def test_directories_round_trip(
    cli: Invoke, vault_home: Path, tmp_path: Path, public: bool
) -> None:
    flags = ["--public"] if public else []
    tree = vault_home / "tree"
    added = cli("--json", "vault", "add", str(tree), "-r", *flags).json()["items"][0]
    assert added["kind"] == "directory"
    out = tmp_path / "tree-back"
    cli("--json", "--no-prompt", "vault", "get", added["cid"], "-o", str(out))
    assert (out / "a.md").read_text() == "# alpha\nfirst file\n"
    assert (out / "sub" / "b.csv").read_text() == "k,v\n1,2\n"
    assert (out / "empty").is_dir()


def test_search_hits_in_a_tree_name_their_file(cli: Invoke, vault_home: Path) -> None:
    cli("--json", "vault", "add", str(vault_home / "tree"), "-r", "--public", "--name", "tree")
    hit = cli("--json", "vault", "search", "alpha first file", "-k", "1").json()["hits"][0]
    assert hit["name"] == "tree/a.md" and "first file" in hit["text"]


def test_directory_needs_recursive(cli: Invoke, vault_home: Path) -> None:
    result = cli("--json", "vault", "add", str(vault_home / "tree"))
    assert result.exit_code == 2 and "--recursive" in result.error()["hint"]


def test_tampered_block_fails_get_and_leaves_no_output(
    cli: Invoke, initialised: Path, vault_home: Path, tmp_path: Path
) -> None:
    added = cli("--json", "vault", "add", str(vault_home / "blob.bin")).json()["items"][0]
    from sahara_cli.vault import packs

    [pack] = (initialised / "vault" / "packs").glob("*.pack")
    records = list(packs.scan(pack))
    assert len(records) == 4  # three 256 KiB leaves and a root
    victim = max(records, key=lambda r: r.length)
    raw = bytearray(pack.read_bytes())
    raw[victim.offset + 100] ^= 0xFF
    pack.write_bytes(bytes(raw))
    out = tmp_path / "blob.out"
    result = cli("--json", "--no-prompt", "vault", "get", added["cid"], "-o", str(out))
    assert result.exit_code == 8 and result.error()["code"] == "vault.block_corrupt"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".blob.out")] == []


def test_wrong_password_and_unknown_item(cli: Invoke, vault_home: Path, tmp_path: Path) -> None:
    added = cli("--json", "vault", "add", str(vault_home / "notes.txt")).json()["items"][0]
    result = cli(
        "--json",
        "--no-prompt",
        "vault",
        "get",
        added["cid"],
        "-o",
        str(tmp_path / "x"),
        env={"SAHARA_PASSWORD": "wrong"},
    )
    assert result.exit_code == 4 and result.error()["code"] == "identity.wrong_password"
    assert not (tmp_path / "x").exists()
    result = cli(
        "--json",
        "vault",
        "get",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        "-o",
        str(tmp_path / "y"),
    )
    assert result.exit_code == 3 and result.error()["code"] == "vault.not_found"
    result = cli("--json", "vault", "get", "not-a-thing", "-o", str(tmp_path / "y"))
    assert result.exit_code == 3


def test_get_onto_an_existing_path_is_refused_and_keeps_it(
    cli: Invoke, vault_home: Path, tmp_path: Path
) -> None:
    added = cli("--json", "vault", "add", str(vault_home / "notes.txt")).json()["items"][0]
    for existing in (tmp_path / "kept.txt", tmp_path / "kept-dir"):
        if existing.suffix:
            existing.write_text("mine, not the vault's\n")
        else:
            existing.mkdir()
        result = cli("--json", "--no-prompt", "vault", "get", added["cid"], "-o", str(existing))
        assert result.exit_code == 7, result.stderr
        error = result.error()
        assert error["code"] == "vault.exists" and str(existing) in error["message"]
        assert result.stdout == ""
    assert (tmp_path / "kept.txt").read_text() == "mine, not the vault's\n"
    assert list((tmp_path / "kept-dir").iterdir()) == []


def test_export_import_car_and_rm(
    cli: Invoke, vault_home: Path, tmp_path: Path, initialised: Path
) -> None:
    added = cli("--json", "vault", "add", str(vault_home / "blob.bin"), "--public").json()
    cid = added["items"][0]["cid"]
    car = tmp_path / "blob.car"
    exported = cli("--json", "vault", "export", cid, "--car", str(car)).json()
    assert exported["root"] == cid and car.stat().st_size == exported["bytes"]
    removed = cli("--json", "vault", "rm", cid, "--yes").json()
    assert removed["removed_blocks"] == 4
    assert cli("--json", "vault", "status").json()["blocks"] == 0
    imported = cli("--json", "vault", "import", str(car)).json()["items"][0]
    assert imported["cid"] == cid and imported["origin"] == "imported"
    out = tmp_path / "blob.back"
    cli("--json", "vault", "get", cid, "-o", str(out))
    assert out.read_bytes() == (vault_home / "blob.bin").read_bytes()

    bad = tmp_path / "bad.car"
    bad.write_bytes(car.read_bytes()[:-10])
    result = cli("--json", "vault", "import", str(bad))
    assert result.exit_code == 8 and result.error()["code"] == "vault.car_invalid"


def test_status_counts(cli: Invoke, vault_home: Path) -> None:
    cli("--json", "vault", "add", str(vault_home / "notes.txt"), "--no-index")
    cli("--json", "vault", "add", str(vault_home / "blob.bin"), "--public")
    status = cli("--json", "vault", "status").json()
    assert status["items"] == 2 and status["encrypted_items"] == 1 and status["pins"] == 2
    assert status["backend"] == "local" and status["indexed_chunks"] == 0


def test_kubo_backend_without_daemon_is_a_clear_error(cli: Invoke, vault_home: Path) -> None:
    result = cli("--json", "vault", "add", str(vault_home / "notes.txt"), "--backend", "kubo")
    assert result.exit_code == 5 and result.error()["code"] == "vault.backend_unreachable"
    result = cli("--json", "vault", "ls", "--backend", "ftp")
    assert result.exit_code == 2


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from sahara_cli.node.rpc.testing import dev_node

    with dev_node(tmp_path_factory.mktemp("vault-node")) as (_, server):
        yield server.url


def test_a_registration_cut_short_is_finished_by_cid_not_repeated(
    cli: Invoke, vault_home: Path, initialised: Path, node_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction went through, then the command died before recording the asset id:
    the next `add --register` finds the asset by its CID instead of registering twice."""
    from sahara_cli.identity.store import KeyStore
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.db import VaultDB

    monkeypatch.setenv("SAHARA_NODE_RPC_URL", node_url)
    client = NodeClient(node_url)
    signer = KeyStore(initialised / "keystore").unlock("main", PASSWORD)
    client.call("sahara_dev_setBalance", signer.address, hex(10**20))
    src = vault_home / "notes.txt"
    item = cli("--json", "vault", "add", str(src), "--no-index").json()["items"][0]
    proto = Protocol(client)
    asset_id, _ = proto.register(
        signer, kind="dataset", cid=item["cid"], commitment=item["commitment"], name="notes.txt"
    )
    db = VaultDB(initialised / "vault" / "vault.db")
    row = db.by_cid(item["cid"])
    assert row is not None
    db.update(row.id, state="registering")
    db.close()

    again = cli("--json", "--no-prompt", "vault", "add", str(src), "--register", "--no-index")
    assert again.exit_code == 0, again.stderr
    done = again.json()["items"][0]
    assert done["asset_id"] == asset_id and done["state"] == "ready"
    assert proto.asset_by_cid(item["cid"]) == asset_id
    from sahara_cli.errors import AssetNotFound

    with pytest.raises(AssetNotFound):  # nothing was registered a second time
        proto.asset(asset_id + 1)


def _stranger(node_url: str) -> Any:
    """A funded second ID: someone who registers another person's content id."""
    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.client import NodeClient
    from sahara_cli.node.genesis import dev_keys

    stranger = Signer(dev_keys(2)[1])
    NodeClient(node_url).call("sahara_dev_setBalance", stranger.address, hex(10**20))
    return stranger


@pytest.mark.parametrize(
    "command",
    [
        ["vault", "add", "{src}", "--public", "--register"],
        ["asset", "register", "{src}", "--kind", "dataset", "--public"],
    ],
    ids=["vault add --register", "asset register"],
)
def test_register_refuses_a_cid_someone_else_registered_first(
    cli: Invoke,
    vault_home: Path,
    initialised: Path,
    node_url: str,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    """A public file's CID is anyone's to compute: a stranger registers it first. The
    owner's registration (`vault add --register`, `asset register FILE`) must not record
    the stranger's asset as its own, must name the stranger, and must leave the item
    unregistered (not stuck half-registered for the next `vault serve`)."""
    from sahara_cli.identity.store import KeyStore
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Protocol

    monkeypatch.setenv("SAHARA_NODE_RPC_URL", node_url)
    client = NodeClient(node_url)
    owner = KeyStore(initialised / "keystore").unlock("main", PASSWORD)
    client.call("sahara_dev_setBalance", owner.address, hex(10**20))
    stranger = _stranger(node_url)
    src = vault_home / "blob.bin"
    cid = cli("--json", "vault", "add", str(src), "--public", "--no-index").json()["items"][0]
    taken, _ = Protocol(client).register(
        stranger, kind="dataset", cid=cid["cid"], commitment=b"\1" * 32, name="mine now"
    )

    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    result = cli("--json", "--no-prompt", *[arg.format(src=src) for arg in command])
    assert result.exit_code == 7, (result.stdout, result.stderr)
    error = result.error()
    assert error["code"] == "vault.cid_taken"
    assert stranger.address.lower() in error["message"].lower()
    assert f"#{taken}" in error["message"]
    listed = cli("--json", "vault", "ls").json()["items"]
    assert [(i["cid"], i["asset_id"], i["state"]) for i in listed] == [(cid["cid"], None, "ready")]


def test_reconcile_does_not_adopt_an_asset_someone_else_registered(
    cli: Invoke, vault_home: Path, initialised: Path, node_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owner's registration was cut short (or front-run and reverted); a stranger
    holds an asset with the item's CID. Reconciling leaves the item unregistered and
    names the stranger."""
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.backends import vault_root
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.local import LocalBlockstore
    from sahara_cli.vault.registration import reconcile as finish

    monkeypatch.setenv("SAHARA_NODE_RPC_URL", node_url)
    stranger = _stranger(node_url)
    proto = Protocol(NodeClient(node_url))
    added = cli("--json", "vault", "add", str(vault_home / "notes.txt"), "--no-index").json()
    item = added["items"][0]
    taken, _ = proto.register(
        stranger, kind="dataset", cid=item["cid"], commitment=b"\2" * 32, name="notes"
    )
    root = vault_root(initialised)
    with Vault(root, LocalBlockstore(root)) as vault:
        row = vault.db.by_cid(item["cid"])
        assert row is not None
        vault.db.update(row.id, state="registering")
        refused = finish(vault, proto)
        after = vault.db.by_id(row.id)
        assert (after.asset_id, after.state) == (None, "ready")
        assert [r.code for r in refused] == ["vault.cid_taken"]
        assert stranger.address in refused[0].message and f"#{taken}" in refused[0].message
        assert refused[0].details["owner"] == stranger.address


def test_gc_reclaims_what_an_unfinished_add_wrote_and_waits_for_a_running_one(
    cli: Invoke, initialised: Path, vault_home: Path
) -> None:
    from sahara_cli.vault.cid import CID, RAW
    from sahara_cli.vault.local import LocalBlockstore

    kept = cli("--json", "vault", "add", str(vault_home / "blob.bin"), "--public").json()
    before = cli("--json", "vault", "status").json()
    # An add that wrote blocks and never recorded its item (its process went away).
    unfinished = LocalBlockstore(initialised / "vault")
    leaves = [os.urandom(1000 * (i + 1)) for i in range(3)]
    unfinished.put_many([(CID.of(RAW, data), data) for data in leaves])
    refused = cli("--json", "vault", "gc")  # the add still runs: gc refuses, removes nothing
    assert refused.exit_code != 0 and refused.error()["code"] == "vault.busy"
    unfinished.close()
    assert cli("--json", "vault", "status").json()["blocks"] == before["blocks"]
    counted = cli("--json", "vault", "gc", "--dry-run").json()
    assert counted["dry_run"] and (counted["removed_blocks"], counted["removed_bytes"]) == (3, 6000)
    done = cli("--json", "vault", "gc").json()
    assert (done["removed_blocks"], done["removed_bytes"]) == (3, 6000)
    assert (done["blocks"], done["bytes"]) == (before["blocks"], before["bytes"])
    assert cli("--json", "vault", "gc").json()["removed_blocks"] == 0
    assert len(list((initialised / "vault" / "packs").glob("*.pack"))) == 1
    back = initialised / "blob.back"
    cli("--json", "vault", "get", kept["items"][0]["cid"], "-o", str(back))
    assert back.read_bytes() == (vault_home / "blob.bin").read_bytes()


HEAVY = ("chromadb", "sentence_transformers", "torch", "onnxruntime", "sahara_cli.vault.embed")


@pytest.mark.parametrize("flags", [["--public"], []], ids=["public", "private"])
def test_adding_a_binary_loads_no_index_or_model(
    initialised: Path, vault_home: Path, flags: list[str]
) -> None:
    """Content with nothing to index (here a binary blob, indexing left on) opens neither
    the search index nor the embedding model: the add is hashing and writing only."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-X", "importtime", "-m", "sahara_cli", "--json", "--no-prompt"]
    done = subprocess.run(
        [*command, "vault", "add", str(vault_home / "blob.bin"), *flags],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [item] = json.loads(done.stdout)["items"]
    assert item["chunks"] == 0
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert not {m for m in loaded if m.startswith(HEAVY)}
