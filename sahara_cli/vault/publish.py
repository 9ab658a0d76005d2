"""The publish flow: add files to the vault, index their text, register them on chain.

``sahara vault add [--register]``, ``sahara asset register FILE`` and ``sahara model
register`` are all this flow::

    add (chunk, encrypt, store, pin, catalogue) -> index (embed text, seal private chunks)
        -> register (look the CID up first: only an asset of ours finishes an earlier
           registration; the item is 'registering' while the transaction is out, so a
           killed command is finished by :func:`sahara_cli.vault.registration.reconcile`)

Every step reports through a :class:`~sahara_cli.vault.reporting.Reporter` and returns a
typed result (:mod:`sahara_cli.vault.results`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sahara_cli.errors import ProtocolReverted, UsageError
from sahara_cli.vault.reporting import SILENT, Reporter

if TYPE_CHECKING:
    from sahara_cli.config import VaultSection
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Contribution, Protocol, TxResult
    from sahara_cli.vault.core import Holder, Vault
    from sahara_cli.vault.db import Item
    from sahara_cli.vault.results import AddResult, AssetRegistered

__all__ = [
    "AddOptions",
    "Registration",
    "add",
    "add_paths",
    "check_add",
    "holder_for",
    "index_added",
    "index_plaintext",
    "publish_path",
    "record_registration",
    "register_asset",
    "register_item",
    "served_uri",
]


@dataclass(frozen=True)
class AddOptions:
    """How ``vault add`` stores what it is given."""

    public: bool = False
    recursive: bool = False
    hidden: bool = False
    name: str | None = None
    #: Commit to the plaintext's bare SHA-256 instead of a salted one (private items).
    plain_commitment: bool = False
    #: The embedder that indexes text for search; None: do not index.
    embedder: str | None = "onnx"


@dataclass(frozen=True)
class Registration:
    """What registering an item on chain takes besides the item."""

    kind: str = "dataset"
    contributors: list[Contribution] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    upstream_bps: int = 0
    #: Where licensees ask for the key ('vault serve'); see :func:`served_uri`.
    server_url: str = ""


def holder_for(
    address: str, public_key: str | None, who: Signer | None = None, *, public: bool = False
) -> Holder:
    """Whom an add wraps data keys to: the unlocked ID, or the public key on record.

    ``public_key`` is the ID's recorded key (hex); a public add wraps nothing.
    """
    from sahara_cli.vault.core import Holder

    if who is not None:
        return Holder(who.address, who.public_key)
    if public and not public_key:
        return Holder(address, b"")
    if not public_key:
        raise UsageError(
            f"ID {address} has no public key on record",
            hint="Pass --password-file (or answer the prompt) so it can be derived.",
        )
    return Holder(address, bytes.fromhex(public_key.removeprefix("0x")))


def server_url(cfg: VaultSection) -> str:
    """Where this home's 'vault serve' is reached: its public URL, else its address."""
    return cfg.public_url or f"http://{cfg.serve_addr}"


def served_uri(item: Item, cfg: VaultSection) -> str:
    """The URI registered with an item: where 'vault serve' releases its key."""
    if not item.encrypted:
        return ""
    return server_url(cfg)


def index_plaintext(
    vault: Vault,
    item: Item,
    plaintext: Path,
    key: bytes | None,
    embedder: str,
    report: Reporter = SILENT,
) -> Item:
    """Embed the text of ``plaintext`` for ``item`` and record how many chunks it gave.

    Content with no text file in it (a model, an archive) opens neither the index nor
    the embedding model.
    """
    from sahara_cli.vault.search import index_item, open_index

    if not _has_text(plaintext):
        vault.db.update(item.id, chunks=0, indexed=1)
        return vault.db.by_id(item.id)
    index = open_index(vault.root, embedder)
    with report.status(f"Indexing {item.name}"):
        chunks = index_item(index, item, plaintext, key)
    vault.db.update(item.id, chunks=chunks, indexed=1)
    return vault.db.by_id(item.id)


def _has_text(path: Path) -> bool:
    """Whether a file, or any file of a tree, looks like text (by its name and head)."""
    from sahara_cli.vault.text import SNIFF_BYTES, is_text

    if path.is_file():
        files: Iterable[Path] = [path]
    else:
        files = (p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    for file in files:
        try:
            with file.open("rb") as handle:
                head = handle.read(SNIFF_BYTES)
        except OSError:
            return True  # let the indexer report it
        if is_text(file.name, head):
            return True
    return False


def index_added(
    vault: Vault,
    item: Item,
    new: bool,
    path: Path,
    who: Signer | None,
    embedder: str | None,
    report: Reporter = SILENT,
) -> Item:
    """Index an item just added (or added before but never indexed)."""
    if embedder is None or (item.indexed and not new):
        return item
    key = None
    if item.encrypted:
        # Sealing snippets needs the data key: the one this add just generated, or the
        # wrapped one opened with the unlocked ID.
        key = vault.last_key(item) if who is None else vault.data_key(item, who.private_key)
        if key is None:
            return item
    return index_plaintext(vault, item, path, key, embedder, report)


def check_add(paths: Sequence[Path], options: AddOptions) -> None:
    """Refuse an add that cannot work before anything is unlocked or written."""
    if options.name is not None and len(paths) > 1:
        raise UsageError("--name names one item; give one path with it")
    if options.plain_commitment and options.public:
        raise UsageError("--plain-commitment is for private items; a public one's is plain")
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path} does not exist")


def add_paths(
    vault: Vault,
    paths: Sequence[Path],
    holder: Holder,
    options: AddOptions,
    *,
    who: Signer | None = None,
    report: Reporter = SILENT,
) -> list[tuple[Path, Item, bool]]:
    """Add and index each path: (path, item, whether it was new) in order."""
    from sahara_cli.vault.core import tree_size

    check_add(paths, options)
    added = []
    total = sum(tree_size(p) for p in paths)
    with report.progress("Adding", total) as advance:
        for path in paths:
            item, new = vault.add(
                path,
                holder,
                public=options.public,
                recursive=options.recursive,
                name=options.name,
                hidden=options.hidden,
                progress=advance,
                salted=not options.plain_commitment,
            )
            added.append((path, item, new))
    return [
        (path, index_added(vault, item, new, path, who, options.embedder, report), new)
        for path, item, new in added
    ]


def record_registration(
    vault: Vault, item: Item, asset_id: int, tx_hash: str, embedder: str | None
) -> Item:
    """Record an item's on-chain registration and label its index entries."""
    vault.db.update(item.id, asset_id=asset_id, state="ready", register_tx=tx_hash)
    if item.chunks:
        from sahara_cli.vault.search import open_index

        open_index(vault.root, embedder or "onnx").set_asset(item.cid, asset_id)
    return vault.db.by_id(item.id)


def register_item(
    vault: Vault,
    proto: Protocol,
    who: Signer,
    item: Item,
    registration: Registration,
    *,
    embedder: str | None = None,
    report: Reporter = SILENT,
) -> Item:
    """Register a vault item on chain as an asset of ``who``.

    An asset of ours under the item's CID (an earlier registration a killed command did
    not record) is taken as it is; another owner's is refused (``vault.cid_taken``).
    While the transaction is out the item is 'registering', which
    :func:`~sahara_cli.vault.registration.reconcile` finishes after a crash.
    """
    from sahara_cli.vault.registration import own_asset_for

    _check_kind(registration.kind)
    item = vault.ensure_commitment(item)
    existing = own_asset_for(proto, item.cid, who.address)
    if existing is not None:
        vault.db.update(item.id, asset_id=existing, state="ready")
        return vault.db.by_id(item.id)
    item, _ = _register(vault, proto, who, item, registration, None, embedder, report)
    return item


def _check_kind(kind: str) -> None:
    from sahara_cli.protocol.client import ASSET_KINDS

    if kind not in ASSET_KINDS:
        raise UsageError(f"--kind {kind!r} is not one of: {', '.join(ASSET_KINDS)}")


def _register(
    vault: Vault,
    proto: Protocol,
    who: Signer,
    item: Item,
    registration: Registration,
    uri: str | None,
    embedder: str | None,
    report: Reporter,
) -> tuple[Item, TxResult]:
    """Send the registration of an item no asset holds yet; record it."""
    from sahara_cli.protocol.assets import check_parents
    from sahara_cli.vault.registration import own_asset_for

    check_parents(proto, registration.parents, registration.upstream_bps)
    if uri is None:
        uri = registration.server_url if item.encrypted else ""
    if item.encrypted and not uri:
        # Licensees find the key server through this URI; without it no buyer could read.
        raise UsageError(
            f"{item.name} is private: its registration needs the key server's URL",
            hint="Set Registration.server_url (the CLI uses vault.public_url, else "
            "http://vault.serve_addr), or add the item as public.",
        )
    vault.db.update(item.id, state="registering")
    try:
        with report.status(f"Registering {item.name}"):
            asset_id, tx = proto.register(
                who,
                kind=registration.kind,
                cid=item.cid,
                commitment=item.commitment,
                name=item.name,
                uri=uri,
                parents=registration.parents,
                contributors=registration.contributors,
                upstream_bps=registration.upstream_bps,
            )
    except ProtocolReverted:
        vault.db.update(item.id, state="ready")  # nothing was registered for us
        # Taken by someone else between the look-up and the transaction: say by whom.
        own_asset_for(proto, item.cid, who.address)
        raise
    return record_registration(vault, item, asset_id, tx.hash, embedder), tx


def add(
    vault: Vault,
    paths: Sequence[Path],
    holder: Holder,
    options: AddOptions,
    *,
    who: Signer | None = None,
    proto: Protocol | None = None,
    registration: Registration | None = None,
    report: Reporter = SILENT,
) -> AddResult:
    """``vault add``: add and index ``paths``; with a registration, register each item.

    Registering needs ``proto`` and the unlocked ``who``; items registered before are
    left as they are.
    """
    from sahara_cli.vault.results import AddedItem, AddResult

    if registration is not None and (proto is None or who is None):
        raise UsageError("registering needs the node and an unlocked ID")
    added = add_paths(vault, paths, holder, options, who=who, report=report)
    items = []
    for path, item, new in added:
        done = item
        if registration is not None and proto is not None and who is not None:
            done = (
                register_item(
                    vault, proto, who, item, registration, embedder=options.embedder, report=report
                )
                if item.asset_id is None
                else item
            )
        items.append(AddedItem.of(done, path=str(path), new=new))
    return AddResult(items=items, backend=vault.store.name)


def publish_path(
    vault: Vault,
    proto: Protocol,
    who: Signer,
    path: Path,
    registration: Registration,
    *,
    public: bool = False,
    name: str | None = None,
    embedder: str | None = "onnx",
    report: Reporter = SILENT,
) -> Item:
    """Add one file or tree for ``who`` (indexed), then register it: the vault item."""
    options = AddOptions(public=public, recursive=path.is_dir(), name=name, embedder=embedder)
    holder = holder_for(who.address, None, who)
    [(_, item, _)] = add_paths(vault, [path], holder, options, who=who, report=report)
    if item.asset_id is not None:
        return item
    return register_item(vault, proto, who, item, registration, embedder=embedder, report=report)


def register_asset(
    proto: Protocol,
    who: Signer,
    *,
    source: str,
    name: str | None,
    registration: Registration,
    commitment: bytes = b"",
    uri: str = "",
    vault: Vault | None = None,
    public: bool = False,
    embedder: str | None = "onnx",
    report: Reporter = SILENT,
) -> AssetRegistered:
    """``asset register``: a file goes into the vault first (encrypted unless ``public``)
    and is registered by its vault CID; anything else is registered as the content id
    ``source`` with ``commitment``.

    A file already registered (by us) is refused with the asset it is; a CID another
    address registered first is refused naming it (``vault.cid_taken``).
    """
    from sahara_cli.protocol.assets import register_cid
    from sahara_cli.vault.results import AssetRegistered, VaultItem

    path = Path(source)
    if vault is None and path.is_file():
        raise UsageError(f"{path} is a file: registering it needs the vault it goes into")
    if vault is None or not path.is_file():
        with report.status("Registering the asset"):
            done = register_cid(
                proto,
                who,
                kind=registration.kind,
                cid=source,
                commitment=commitment,
                name=name or source,
                uri=uri,
                parents=registration.parents,
                contributors=registration.contributors,
                upstream_bps=registration.upstream_bps,
            )
        return AssetRegistered(**dict(done), vault_item=None)
    from sahara_cli.protocol.assets import asset_view, check_parents
    from sahara_cli.vault.registration import own_asset_for

    _check_kind(registration.kind)
    check_parents(proto, registration.parents, registration.upstream_bps)
    options = AddOptions(public=public, name=name, embedder=embedder)
    holder = holder_for(who.address, None, who)
    [(_, item, _)] = add_paths(vault, [path], holder, options, who=who, report=report)
    item = vault.ensure_commitment(item)
    mine = item.asset_id
    if mine is None:
        mine = own_asset_for(proto, item.cid, who.address)
    if mine is not None:
        vault.db.update(item.id, asset_id=mine, state="ready")
        raise UsageError(
            f"{path} is already registered as asset #{mine}",
            hint=f"See it with 'sahara asset show {mine}'.",
        )
    # The metadata URI given, else where 'vault serve' releases the key (private items).
    item, tx = _register(vault, proto, who, item, registration, uri or None, embedder, report)
    assert item.asset_id is not None
    view = asset_view(proto, proto.asset(item.asset_id))
    return AssetRegistered(**dict(view), tx=tx.transaction(), vault_item=VaultItem.of(item))
