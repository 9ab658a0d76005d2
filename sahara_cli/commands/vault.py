"""sahara vault: keep AI assets encrypted and content-addressed, share them under license."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._protocol import (
    IdOption,
    PasswordFileOption,
    contributor_weights,
    parse_bps,
    protocol,
)
from sahara_cli.commands._state import AppState, state
from sahara_cli.errors import UsageError, VaultItemNotFound
from sahara_cli.units import human_size

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.identity.store import IdentityInfo
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.core import Holder, Vault
    from sahara_cli.vault.db import Item

app = typer.Typer(
    help="Encrypted, content-addressed storage for AI assets, on IPFS when you want it.",
    no_args_is_help=True,
)
daemon_app = typer.Typer(help="Run a Kubo (IPFS) daemon for this home.", no_args_is_help=True)
app.add_typer(daemon_app, name="daemon")

Backend = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Block storage: local (files in the home) or kubo (IPFS daemon).",
        show_default="config vault.backend",
    ),
]
Ref = Annotated[
    str,
    typer.Argument(help="Asset id (42), CID (bafy...) or item name.", show_default=False),
]


def _backend(name: str | None) -> str | None:
    from sahara_cli.vault.backends import BACKENDS

    if name is not None and name not in BACKENDS:
        raise UsageError(f"--backend {name!r} is not one of: {', '.join(BACKENDS)}")
    return name


def open_vault(st: AppState, backend: str | None = None) -> Vault:
    from sahara_cli.vault.backends import open_vault as _open

    home = st.home.require()
    return _open(home.root, st.config().config.vault, _backend(backend))


def _holder(info: IdentityInfo, signer: Signer | None = None, *, public: bool = False) -> Holder:
    """Whom an add wraps data keys to: the unlocked ID, or the public key on record."""
    from sahara_cli.vault.core import Holder

    if signer is not None:
        return _holder_of(signer)
    if public and not info.public_key:
        return Holder(info.address, b"")  # nothing is wrapped for public items
    if not info.public_key:
        raise UsageError(
            f"ID '{info.name}' has no public key on record",
            hint="Pass --password-file (or answer the prompt) so it can be derived.",
        )
    return Holder(info.address, bytes.fromhex(info.public_key.removeprefix("0x")))


def _item_rows(item: Item) -> dict[str, Any]:
    return {
        "cid": item.cid,
        "name": item.name,
        "kind": item.kind,
        "size": human_size(item.size),
        "encrypted": "yes" if item.encrypted else "no (public)",
        "commitment": item.commitment or "-",
        "asset": f"#{item.asset_id}" if item.asset_id is not None else "-",
        "origin": item.origin,
    }


def _kv(rows: dict[str, Any]) -> Any:
    def render(console: Console) -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        for key, value in rows.items():
            grid.add_row(key, str(value))
        console.print(grid)

    return render


def _index_enabled(st: AppState, no_index: bool) -> bool:
    return not no_index and st.config().config.vault.index


# -- add ---------------------------------------------------------------------------------------


@app.command("add")
def add(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories.", show_default=False)],
    public: Annotated[
        bool, typer.Option("--public", help="Store unencrypted, with the plain IPFS CID.")
    ] = False,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Add directories with their contents.")
    ] = False,
    hidden: Annotated[
        bool, typer.Option("--hidden", help="Include hidden files of public directories.")
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Item (and asset) name (default: the file name).", show_default=False
        ),
    ] = None,
    no_index: Annotated[
        bool, typer.Option("--no-index", help="Do not embed text into the search index.")
    ] = False,
    register: Annotated[
        bool, typer.Option("--register", help="Register each item as an asset on chain.")
    ] = False,
    kind: Annotated[
        str,
        typer.Option(
            "--kind", help="Asset kind with --register: dataset, model, agent or compute."
        ),
    ] = "dataset",
    contributors: Annotated[
        list[str] | None,
        typer.Option(
            "--contributor",
            help="With --register: ADDRESS:BPS revenue weight (repeatable).",
            show_default=False,
        ),
    ] = None,
    parents: Annotated[
        list[str] | None,
        typer.Option(
            "--parent", help="With --register: a parent asset (repeatable).", show_default=False
        ),
    ] = None,
    upstream_share: Annotated[
        str, typer.Option("--upstream-share", help="With --register: share paid on to parents.")
    ] = "0",
    plain_commitment: Annotated[
        bool,
        typer.Option(
            "--plain-commitment",
            help="Commit to the plaintext's bare SHA-256, which anyone holding a copy can "
            "check against the chain (default: salted, checkable only with the key).",
        ),
    ] = False,
    backend: Backend = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Add files, encrypted to your ID unless --public; --register puts them on chain."""
    st = state()
    if name is not None and len(paths) > 1:
        raise UsageError("--name names one item; give one path with it")
    if not register and (contributors or parents or upstream_share != "0"):
        raise UsageError("--contributor, --parent and --upstream-share need --register")
    if plain_commitment and public:
        raise UsageError("--plain-commitment is for private items; a public one's is plain")
    contributor_weights(st, contributors or [])  # a bad address fails before anything else
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path} does not exist")
    info = st.keystore().resolve(signer_name)
    who = None
    proto = None
    if register:
        proto = protocol(st)
        who, info, _ = st.unlock(signer_name, password_file)
    elif not info.public_key and not public:
        who, info, _ = st.unlock(signer_name, password_file)
    holder = _holder(info, who, public=public)
    results = []
    with open_vault(st, backend) as vault:
        from sahara_cli.vault.core import tree_size

        total = sum(tree_size(p) for p in paths)
        with st.output.progress("Adding", total) as advance:
            for path in paths:
                item, new = vault.add(
                    path,
                    holder,
                    public=public,
                    recursive=recursive,
                    name=name,
                    hidden=hidden,
                    progress=advance,
                    salted=not plain_commitment,
                )
                results.append((path, item, new))
        out = []
        for path, added, new in results:
            item = _index_added(st, vault, added, new, path, who, no_index=no_index)
            if register and proto is not None and who is not None and item.asset_id is None:
                item = register_item(
                    st,
                    vault,
                    proto,
                    who,
                    item,
                    kind=kind,
                    contributors=contributors or [],
                    parents=parents or [],
                    upstream=parse_bps(upstream_share, "--upstream-share"),
                )
            out.append({**item.to_dict(), "path": str(path), "new": new})
    data: dict[str, Any] = {"items": out, "backend": vault.store.name}
    st.output.result(data, _render_added(out))


def _index_added(
    st: AppState,
    vault: Vault,
    item: Item,
    new: bool,
    path: Path,
    who: Signer | None,
    *,
    no_index: bool = False,
) -> Item:
    """Index an item just added (or added before but never indexed)."""
    if not _index_enabled(st, no_index) or (item.indexed and not new):
        return item
    key = None
    if item.encrypted:
        # Sealing snippets needs the data key: the one this add just generated, or the
        # wrapped one opened with the unlocked ID.
        key = vault.last_key(item) if who is None else vault.data_key(item, who.private_key)
        if key is None:
            return item
    return _index(st, vault, item, path, key)


def _index(st: AppState, vault: Vault, item: Item, plaintext: Path, key: bytes | None) -> Item:
    """Embed the text of ``plaintext`` for ``item`` and record how many chunks it gave."""
    from sahara_cli.vault.search import index_item, open_index

    index = open_index(vault.root, st.config().config.vault.embedder)
    with st.output.status(f"Indexing {item.name}"):
        chunks = index_item(index, item, plaintext, key)
    vault.db.update(item.id, chunks=chunks, indexed=1)
    return vault.db.by_id(item.id)


def add_one(
    st: AppState, vault: Vault, path: Path, who: Signer, *, public: bool, name: str | None
) -> Item:
    """Add one file for ``who`` (with a progress bar) and index it."""
    from sahara_cli.vault.core import tree_size

    with st.output.progress("Adding", tree_size(path)) as advance:
        item, new = vault.add(path, _holder_of(who), public=public, name=name, progress=advance)
    return _index_added(st, vault, item, new, path, who)


def _holder_of(who: Signer) -> Holder:
    from sahara_cli.vault.core import Holder

    return Holder(who.address, who.public_key)


def served_uri(st: AppState, item: Item) -> str:
    """The URI registered with an item: where 'vault serve' releases its key."""
    if not item.encrypted:
        return ""
    cfg = st.config().config.vault
    return cfg.public_url or f"http://{cfg.serve_addr}"


def registered(st: AppState, vault: Vault, item: Item, asset_id: int, tx_hash: str) -> None:
    """Record an item's on-chain registration and label its index entries."""
    vault.db.update(item.id, asset_id=asset_id, state="ready", register_tx=tx_hash)
    if item.chunks:
        from sahara_cli.vault.search import open_index

        open_index(vault.root, st.config().config.vault.embedder).set_asset(item.cid, asset_id)


def register_item(
    st: AppState,
    vault: Vault,
    proto: Protocol,
    who: Signer,
    item: Item,
    *,
    kind: str,
    contributors: list[str],
    parents: list[str],
    upstream: int,
) -> Item:
    """Register a vault item on chain; a crash mid-way is reconciled by its CID."""
    from sahara_cli.commands._protocol import parse_contributors, resolve_asset
    from sahara_cli.protocol.client import ASSET_KINDS

    if kind not in ASSET_KINDS:
        raise UsageError(f"--kind {kind!r} is not one of: {', '.join(ASSET_KINDS)}")
    from sahara_cli.errors import ProtocolReverted
    from sahara_cli.vault.registration import own_asset_for

    item = vault.ensure_commitment(item)
    # Only an asset of ours finishes an earlier registration; another owner's is refused.
    existing = own_asset_for(proto, item.cid, who.address)
    if existing is not None:
        vault.db.update(item.id, asset_id=existing, state="ready")
        return vault.db.by_id(item.id)
    parent_ids = [resolve_asset(proto, p) for p in parents]
    for parent in parent_ids:
        proto.asset(parent)
    if upstream and not parent_ids:
        raise UsageError("--upstream-share needs at least one --parent")
    entries, _ = parse_contributors(st, contributors, who.address)
    uri = served_uri(st, item)
    vault.db.update(item.id, state="registering")
    try:
        with st.output.status(f"Registering {item.name}"):
            asset_id, tx = proto.register(
                who,
                kind=kind,
                cid=item.cid,
                commitment=item.commitment,
                name=item.name,
                uri=uri,
                parents=parent_ids,
                contributors=entries,
                upstream_bps=upstream,
            )
    except ProtocolReverted:
        vault.db.update(item.id, state="ready")  # nothing was registered for us
        # Taken by someone else between the look-up and the transaction: say by whom.
        own_asset_for(proto, item.cid, who.address)
        raise
    registered(st, vault, item, asset_id, tx.hash)
    return vault.db.by_id(item.id)


def reconcile(st: AppState, vault: Vault, proto: Protocol) -> None:
    """Finish registrations a killed command left half done (by looking up the CID);
    say which items were not tied to an asset because another address owns it."""
    from sahara_cli.vault.registration import reconcile as finish

    for refused in finish(vault, proto):
        st.output.warn(f"{refused.code}: {refused.message}")


def _render_added(items: list[dict[str, Any]]) -> Any:
    def render(console: Console) -> None:
        for entry in items:
            verb = "Added" if entry["new"] else "Already in the vault:"
            lock = "encrypted" if entry["encrypted"] else "public"
            size = human_size(entry["size"])
            console.print(f"{verb} [bold]{entry['name']}[/] ({size}, {lock}) {entry['cid']}")
            if entry["asset_id"] is not None:
                console.print(f"  registered as asset [bold]#{entry['asset_id']}[/]")
            if entry["chunks"]:
                console.print(f"  indexed {entry['chunks']} chunks for search")

    return render


# -- ls / status -------------------------------------------------------------------------------


@app.command("ls")
def ls(backend: Backend = None) -> None:
    """List the items in the vault."""
    st = state()
    with open_vault(st, backend) as vault:
        items = vault.items()
    data = {"items": [item.to_dict() for item in items]}

    def render(console: Console) -> None:
        if not items:
            console.print("The vault is empty. Add files with 'sahara vault add PATH'.")
            return
        # Two lines an item: the CID whole on its own line, so it can be copied.
        for item in items:
            asset = f"#{item.asset_id}" if item.asset_id is not None else "-"
            lock = "encrypted" if item.encrypted else "public"
            console.print(
                f"[bold]{asset:>4}[/]  {item.name}  [dim]{item.kind}, {human_size(item.size)}, "
                f"{lock}, {item.origin}[/]",
                highlight=False,
            )
            console.print(f"      {item.cid}", style="cyan", highlight=False)

    st.output.result(data, render)


@app.command("status")
def status(backend: Backend = None) -> None:
    """Blocks, bytes and items in the vault, and the backend it uses."""
    st = state()
    with open_vault(st, backend) as vault:
        stat = vault.store.stat()
        items = vault.items()
        pins = vault.store.pins()
    data = {
        "backend": vault.store.name,
        "location": stat.location,
        "blocks": stat.blocks,
        "bytes": stat.bytes,
        "items": len(items),
        "encrypted_items": sum(1 for i in items if i.encrypted),
        "registered_items": sum(1 for i in items if i.asset_id is not None),
        "pins": len(pins),
        "indexed_chunks": sum(i.chunks for i in items),
    }
    st.output.result(data, _kv({**data, "bytes": human_size(stat.bytes)}))


# -- reading -----------------------------------------------------------------------------------


def _open_key(
    st: AppState, vault: Vault, item: Item, signer_name: str | None, password_file: Path | None
) -> bytes | None:
    if not item.encrypted:
        return None
    who, _, _ = st.unlock(signer_name, password_file)
    if item.holder.lower() != who.address.lower():
        from sahara_cli.errors import VaultWrongKey

        raise VaultWrongKey(
            f"{item.cid} is encrypted to {item.holder}, not to {who.address}",
            hint="Use the ID that added or fetched it (--id NAME).",
        )
    return vault.data_key(item, who.private_key)


@app.command("get")
def get(
    ref: Ref,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the plaintext.")],
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Owner's vault server URL (default: the asset's URI).",
            show_default=False,
        ),
    ] = None,
    backend: Backend = None,
    no_index: Annotated[
        bool, typer.Option("--no-index", help="Do not index fetched text for search.")
    ] = False,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Write an item's plaintext to a path; fetches a licensed asset from its owner first."""
    st = state()
    with open_vault(st, backend) as vault:
        try:
            item = vault.find(ref)
            fetched = False
        except VaultItemNotFound:
            number = ref.removeprefix("asset:").removeprefix("#")
            if not number.isdigit():
                raise
            item = _fetch_licensed(st, vault, int(number), source, signer_name, password_file)
            fetched = True
        if item.origin == "licensed" and not fetched:
            _check_still_licensed(st, item)
        key = _open_key(st, vault, item, signer_name, password_file)
        with st.output.progress(f"Writing {item.name}", item.size) as advance:
            dest = vault.write_out(item, key, output, progress=advance)
        if fetched and _index_enabled(st, no_index):
            item = _index(st, vault, item, dest, key)
    data = {**item.to_dict(), "path": str(dest), "fetched": fetched, "verified": True}
    st.output.result(
        data,
        _kv(
            {
                "wrote": str(dest),
                "size": human_size(item.size),
                "commitment": item.commitment,
                "verified": "plaintext matches the commitment"
                if item.commitment
                else "blocks only",
                "asset": f"#{item.asset_id}" if item.asset_id is not None else "-",
            }
        ),
    )


def _check_still_licensed(st: AppState, item: Item) -> None:
    from sahara_cli.vault.access import check_access

    if item.asset_id is None:
        return
    proto = protocol(st)
    asset = proto.asset(item.asset_id)
    check_access(proto, item.asset_id, item.holder, asset.owner)


def _fetch_licensed(
    st: AppState,
    vault: Vault,
    asset_id: int,
    source: str | None,
    signer_name: str | None,
    password_file: Path | None,
) -> Item:
    """Ask the owner's vault server for the key (license-gated), then the blocks."""
    from sahara_cli.vault import crypto
    from sahara_cli.vault.access import KeyClient
    from sahara_cli.vault.cid import CID

    proto = protocol(st)
    asset = proto.asset(asset_id)
    url = source or asset.uri
    if not url.startswith(("http://", "https://")):
        raise UsageError(
            f"asset {asset_id} names no vault server (uri {asset.uri!r})",
            hint="Pass the owner's server with --from http://HOST:PORT.",
        )
    who, _, _ = st.unlock(signer_name, password_file)
    # The server decides (the owner may have shared the asset without a license).
    client = KeyClient(url)
    try:
        with st.output.status(f"Asking {url} for the key of asset #{asset_id}"):
            answer = client.ask_key(who, asset_id, asset.cid, proto.node.chain_id())
        wrapped = bytes.fromhex(answer["wrapped_key"])
        crypto.unwrap_key(wrapped, who.private_key)  # a key not for us: fail now
        if answer["cid"] != asset.cid:
            from sahara_cli.errors import VaultRequestInvalid

            raise VaultRequestInvalid(f"server offered {answer['cid']}, chain says {asset.cid}")
        root = CID.decode(asset.cid)
        if not _have_dag(vault, root):
            with st.output.status(f"Fetching the blocks of {asset.cid}"):
                vault.store.put_many(client.blocks(asset.cid))
        vault.store.pin(root)
    finally:
        client.close()
    from sahara_cli.vault import unixfs

    stored = unixfs.stat(root, vault.store.get).size
    return vault.db.insert(
        cid=asset.cid,
        name=str(answer.get("name") or asset.name),
        kind=str(answer.get("kind") or "file"),
        size=int(answer.get("size") or 0),
        stored=stored,
        encrypted=1,
        commitment=asset.commitment,
        holder=who.address,
        owner=asset.owner,
        # A key released through 'vault share' has no expiry; a licensed one is checked
        # against the chain again on every later read.
        origin="licensed" if int(answer.get("access_until") or 0) else "shared",
        wrapped_key=wrapped,
        asset_id=asset_id,
        source=url,
    )


def _have_dag(vault: Vault, root: Any) -> bool:
    from sahara_cli.errors import VaultBlockNotFound
    from sahara_cli.vault import unixfs

    try:
        for _ in unixfs.walk(root, vault.store.get):
            pass
    except VaultBlockNotFound:
        return False
    return True


@app.command("cat")
def cat(
    ref: Ref,
    backend: Backend = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Print a file item's plaintext to stdout (bytes as they are; --json wraps them)."""
    st = state()
    with open_vault(st, backend) as vault:
        item = vault.find(ref)
        if item.kind != "file":
            raise UsageError(f"{item.name} is a directory", hint="Use 'sahara vault get -o DIR'.")
        if item.origin == "licensed":
            _check_still_licensed(st, item)
        key = _open_key(st, vault, item, signer_name, password_file)
        if st.output.json_mode:
            if item.size > CAT_JSON_LIMIT:
                raise UsageError(
                    f"{item.name} is {human_size(item.size)}; --json prints at most "
                    f"{human_size(CAT_JSON_LIMIT)}",
                    hint="Write it to a file with 'sahara vault get REF -o PATH'.",
                )
            parts: list[bytes] = []
            vault.stream(item, key, parts.append)
            st.output.result({**item.to_dict(), **_content_json(b"".join(parts))})
            return
        out = sys.stdout.buffer
        vault.stream(item, key, out.write)
        out.flush()


CAT_JSON_LIMIT = 16 << 20


def _content_json(data: bytes) -> dict[str, str]:
    import base64

    try:
        return {"encoding": "utf-8", "content": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"encoding": "base64", "content": base64.b64encode(data).decode("ascii")}


# -- rm / share / export / import --------------------------------------------------------------


@app.command("rm")
def rm(
    ref: Ref,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    backend: Backend = None,
) -> None:
    """Remove an item: unpin it, collect its blocks and drop it from the index."""
    st = state()
    with open_vault(st, backend) as vault:
        item = vault.find(ref)
        if item.asset_id is not None:
            st.output.warn(
                f"asset #{item.asset_id} stays registered; licensees can no longer fetch it here"
            )
        st.confirm(f"Remove {item.name} ({item.cid}) from the vault?", yes=yes)
        if item.chunks:
            from sahara_cli.vault.search import open_index

            open_index(vault.root, st.config().config.vault.embedder).remove(item.cid)
        freed = vault.remove(item)
    data = {"removed": item.cid, "name": item.name, **freed}
    st.output.result(
        data,
        _kv(
            {
                "removed": f"{item.name} {item.cid}",
                "freed": f"{freed['removed_blocks']} blocks, {human_size(freed['removed_bytes'])}",
            }
        ),
    )


@app.command("share")
def share(
    ref: Ref,
    to: Annotated[
        str,
        typer.Option(
            "--to", help="Address, ID name or public key (hex) to share with.", show_default=False
        ),
    ],
    backend: Backend = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Let another ID fetch an item's key without a license (your vault server releases it)."""
    from sahara_cli.identity.keys import address_of_public_key, looks_like_address, parse_address
    from sahara_cli.vault import crypto

    st = state()
    public_key: bytes | None = None
    text = to.strip()
    if looks_like_address(text) and len(text.removeprefix("0x")) not in (66, 130):
        address = parse_address(text, "--to")
        known = st.keystore().find_address(address)
        if known is not None and known.public_key:
            public_key = bytes.fromhex(known.public_key.removeprefix("0x"))
    elif len(text.removeprefix("0x")) in (66, 130):
        public_key = bytes.fromhex(text.removeprefix("0x"))
        address = address_of_public_key(public_key)
    else:
        info = st.keystore().get(text)
        address = info.address
        if info.public_key:
            public_key = bytes.fromhex(info.public_key.removeprefix("0x"))
    with open_vault(st, backend) as vault:
        item = vault.find(ref)
        if item.origin != "added":
            raise UsageError(f"{item.name} is not yours to share (it is {item.origin})")
        wrapped = None
        if item.encrypted and public_key is not None:
            key = _open_key(st, vault, item, signer_name, password_file)
            assert key is not None
            wrapped = crypto.wrap_key(key, public_key).hex()
        vault.db.grant(item.id, address)
    data = {"cid": item.cid, "asset_id": item.asset_id, "to": address, "wrapped_key": wrapped}
    rows = {"shared": f"{item.name} {item.cid}", "with": address}
    if item.asset_id is None:
        st.output.note("The item is not registered; register it so 'vault get ASSET' can find it.")
    st.output.result(data, _kv(rows))


@app.command("export")
def export(
    ref: Ref,
    car: Annotated[Path, typer.Option("--car", help="CAR v1 file to write.", dir_okay=False)],
    backend: Backend = None,
) -> None:
    """Export an item's blocks (ciphertext when encrypted) as a CAR file."""
    st = state()
    with open_vault(st, backend) as vault:
        item = vault.find(ref)
        data = vault.export_car(item, car)
    st.output.result(
        data, _kv({"wrote": data["path"], "bytes": human_size(data["bytes"]), "root": data["root"]})
    )


@app.command("import")
def import_(
    car: Annotated[
        Path, typer.Argument(help="A CAR file (v1 or v2).", dir_okay=False, show_default=False)
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Item name.", show_default=False)
    ] = None,
    backend: Backend = None,
    signer_name: IdOption = None,
) -> None:
    """Import the blocks of a CAR file; each root becomes an item."""
    st = state()
    info = st.keystore().resolve(signer_name)
    from sahara_cli.vault.core import Holder

    with open_vault(st, backend) as vault, st.output.status(f"Importing {car}"):
        items = vault.import_car(car, Holder(info.address, b""), name)
    data = {"items": [item.to_dict() for item in items]}

    def render(console: Console) -> None:
        for item in items:
            note = " (encrypted: its key travels separately)" if item.encrypted else ""
            console.print(f"Imported [bold]{item.name}[/] {item.cid}{note}")

    st.output.result(data, render)


# -- search ------------------------------------------------------------------------------------


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What to look for.", show_default=False)],
    k: Annotated[int, typer.Option("-k", "--top", help="How many hits.", min=1, max=100)] = 5,
    show_text: Annotated[
        bool,
        typer.Option("--show-text", help="Unlock the ID to show the text of private hits."),
    ] = False,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Semantic search over the text you hold; every hit names its asset and CID."""
    from collections.abc import Callable

    from sahara_cli.vault import crypto
    from sahara_cli.vault.backends import vault_root
    from sahara_cli.vault.db import VaultDB
    from sahara_cli.vault.search import open_index
    from sahara_cli.vault.search import search as run_search

    st = state()
    root = vault_root(st.home.require().root)
    keys: Callable[[str], bytes | None] | None = None
    if show_text:
        who, _, _ = st.unlock(signer_name, password_file)
        db = VaultDB(root / "vault.db")
        cache: dict[str, bytes | None] = {}

        def open_key(cid: str) -> bytes | None:
            """The data key of an item this ID holds (None: not ours to open)."""
            if cid not in cache:
                item = db.by_cid(cid)
                key = None
                if (
                    item is not None
                    and item.wrapped_key is not None
                    and item.holder.lower() == who.address.lower()
                ):
                    key = crypto.unwrap_key(item.wrapped_key, who.private_key)
                cache[cid] = key
            return cache[cid]

        keys = open_key

    started = time.perf_counter()
    index = open_index(root, st.config().config.vault.embedder)
    hits = run_search(index, query, k, keys=keys)
    elapsed = time.perf_counter() - started
    data = {"query": query, "hits": [hit.to_dict() for hit in hits], "seconds": round(elapsed, 4)}

    def render(console: Console) -> None:
        if not hits:
            console.print("No hits. Text is indexed when you add it ('sahara vault add FILE').")
            return
        for n, hit in enumerate(hits, 1):
            asset = f"asset #{hit.asset_id}" if hit.asset_id is not None else "unregistered"
            console.print(
                f"[bold]{n}.[/] {hit.score:.3f}  {hit.name} ({asset}) chunk {hit.chunk}  "
                f"[dim]{hit.cid}[/]"
            )
            if hit.text:
                snippet = " ".join(hit.text.split())  # one line, whatever the source layout
                console.print(f"   {snippet[:240]}", markup=False, highlight=False)
            elif hit.sealed:
                console.print("   [dim](private: --show-text unlocks your ID to read it)[/]")

    st.output.result(data, render)


# -- serve -------------------------------------------------------------------------------------


@app.command("serve")
def serve(
    addr: Annotated[
        str | None,
        typer.Option(
            "--addr", help="HOST:PORT to listen on.", show_default="config vault.serve_addr"
        ),
    ] = None,
    backend: Backend = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Release data keys to licensees (checked on chain) and serve your items' blocks."""
    import asyncio
    import signal

    from aiohttp import web

    from sahara_cli.vault.access import KeyServer, ServeLimits, server_audiences

    st = state()
    cfg = st.config().config
    listen = addr or cfg.vault.serve_addr
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise UsageError(f"--addr {listen!r} is not HOST:PORT")
    proto = protocol(st)
    chain_id = proto.node.chain_id()
    who, info, _ = st.unlock(signer_name, password_file)
    vault = open_vault(st, backend)
    reconcile(st, vault, proto)

    def log(message: str) -> None:
        st.output.note(f"{time.strftime('%H:%M:%S')} {message}")

    server = KeyServer(
        vault,
        who,
        lambda: proto,
        chain_id=chain_id,
        log=log,
        audiences=server_audiences(listen, cfg.vault.public_url),
        limits=ServeLimits(
            per_ip=cfg.vault.serve_rate_per_ip, per_address=cfg.vault.serve_rate_per_address
        ),
    )

    async def main() -> None:
        runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, int(port_text)).start()
        except OSError as exc:
            from sahara_cli.errors import VaultPortInUse

            raise VaultPortInUse(
                f"cannot listen on {listen}: {exc.strerror}",
                code="vault.port_in_use",
                hint="Pass another --addr HOST:PORT.",
            ) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        served = sum(1 for item in vault.items() if item.asset_id is not None and item.encrypted)
        st.output.note(
            f"Serving {served} registered private items of {info.name} ({who.address}) "
            f"at http://{listen}  (Ctrl-C stops)"
        )
        if st.output.json_mode:
            sys.stderr.write(f'{{"listening": "http://{listen}"}}\n')
            sys.stderr.flush()
        await stop.wait()
        await runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        server.close()
        vault.close()
    st.output.result({"stopped": True, "addr": listen}, lambda c: c.print("Stopped."))


# -- daemon ------------------------------------------------------------------------------------


@daemon_app.command("start")
def daemon_start(
    local: Annotated[
        bool,
        typer.Option(
            "--local/--network",
            help="Loopback only, no bootstrap peers (--local), or join the IPFS network.",
        ),
    ] = True,
    ipfs_bin: Annotated[
        str | None,
        typer.Option(
            "--ipfs-bin", help="Kubo's ipfs binary to run.", show_default="config vault.ipfs_bin"
        ),
    ] = None,
) -> None:
    """Start Kubo for this home (created on first use under <home>/vault/ipfs)."""
    from sahara_cli.vault.backends import kubo_daemon

    st = state()
    home = st.home.require()
    cfg = st.config().config.vault
    if ipfs_bin is not None:
        cfg = cfg.model_copy(update={"ipfs_bin": ipfs_bin})
    daemon = kubo_daemon(home.root, cfg)
    if not (daemon.repo / "config").exists():
        daemon.init(local_only=local)
    with st.output.status("Starting the IPFS daemon"):
        daemon.start()
    data = daemon.status()
    st.output.result(data, _kv(data))


@daemon_app.command("stop")
def daemon_stop() -> None:
    """Stop this home's Kubo daemon."""
    from sahara_cli.vault.backends import kubo_daemon

    st = state()
    home = st.home.require()
    daemon = kubo_daemon(home.root, st.config().config.vault, need_binary=False)
    stopped = daemon.stop()
    data = {"stopped": bool(stopped)}
    st.output.result(data, lambda c: c.print("Stopped." if stopped else "It was not running."))


@daemon_app.command("status")
def daemon_status() -> None:
    """Whether this home's Kubo daemon runs, and where its API is."""
    from sahara_cli.vault.backends import kubo_daemon

    st = state()
    home = st.home.require()
    data = kubo_daemon(home.root, st.config().config.vault, need_binary=False).status()
    st.output.result(data, _kv(data))
