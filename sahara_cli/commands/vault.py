"""sahara vault: keep AI assets encrypted and content-addressed, share them under license."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import (
    IdOption,
    PasswordFileOption,
    contributor_weights,
    parse_bps,
    parse_contributors,
    protocol,
    resolve_asset,
)
from sahara_cli.commands._state import state
from sahara_cli.commands._vault import (
    Backend,
    Ref,
    kv,
    open_vault,
    reader,
    registration_of,
    render_added,
)
from sahara_cli.commands._vault_serve import daemon_app, gc, register_serve
from sahara_cli.errors import UsageError
from sahara_cli.units import human_size

app = typer.Typer(
    help="Encrypted, content-addressed storage for AI assets, on IPFS when you want it.",
    no_args_is_help=True,
)
app.add_typer(daemon_app, name="daemon")
register_serve(app)
app.command("gc")(gc)


@app.command("add")
@returns("sahara_cli.vault.results:AddResult")
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
    from sahara_cli.vault.publish import AddOptions, add, check_add, holder_for

    st = state()
    cfg = st.config().config.vault
    options = AddOptions(
        public=public,
        recursive=recursive,
        hidden=hidden,
        name=name,
        plain_commitment=plain_commitment,
        embedder=cfg.embedder if cfg.index and not no_index else None,
    )
    check_add(paths, options)
    if not register and (contributors or parents or upstream_share != "0"):
        raise UsageError("--contributor, --parent and --upstream-share need --register")
    contributor_weights(st, contributors or [])  # a bad address fails before anything else
    upstream = parse_bps(upstream_share, "--upstream-share")
    info = st.keystore().resolve(signer_name)
    who = proto = registration = None
    if register:
        proto = protocol(st)
        who, info, _ = st.unlock(signer_name, password_file)
        entries, _ = parse_contributors(st, contributors or [], who.address)
        parent_ids = [resolve_asset(proto, p) for p in parents or []]
        registration = registration_of(st, kind, entries, parent_ids, upstream)
    elif not info.public_key and not public:
        who, info, _ = st.unlock(signer_name, password_file)
    holder = holder_for(info.address, info.public_key, who, public=public)
    with open_vault(st, backend) as vault:
        result = add(
            vault,
            paths,
            holder,
            options,
            who=who,
            proto=proto,
            registration=registration,
            report=st.output,
        )
    st.output.result(result, render_added(result.items))


@app.command("ls")
@returns("sahara_cli.vault.results:ItemList")
def ls(backend: Backend = None) -> None:
    """List the items in the vault."""
    from sahara_cli.vault.items import list_items

    st = state()
    with open_vault(st, backend) as vault:
        result = list_items(vault)

    def render(console: Console) -> None:
        if not result.items:
            console.print("The vault is empty. Add files with 'sahara vault add PATH'.")
            return
        # Two lines an item: the CID whole on its own line, so it can be copied.
        for item in result.items:
            asset = f"#{item.asset_id}" if item.asset_id is not None else "-"
            lock = "encrypted" if item.encrypted else "public"
            console.print(
                f"[bold]{asset:>4}[/]  {item.name}  [dim]{item.kind}, {human_size(item.size)}, "
                f"{lock}, {item.origin}[/]",
                highlight=False,
            )
            console.print(f"      {item.cid}", style="cyan", highlight=False)

    st.output.result(result, render)


@app.command("status")
@returns("sahara_cli.vault.results:VaultStatus")
def status(backend: Backend = None) -> None:
    """Blocks, bytes and items in the vault, and the backend it uses."""
    from sahara_cli.vault.items import status as vault_status

    st = state()
    with open_vault(st, backend) as vault:
        result = vault_status(vault)
    rows = result.model_dump()
    st.output.result(result, kv({**rows, "bytes": human_size(result.bytes)}))


@app.command("get")
@returns("sahara_cli.vault.results:GetResult")
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
    from sahara_cli.vault.licensed import get as get_item

    st = state()
    cfg = st.config().config.vault
    unlock, proto = reader(st, signer_name, password_file)
    with open_vault(st, backend) as vault:
        result = get_item(
            vault,
            ref,
            output,
            unlock=unlock,
            protocol=proto,
            source=source,
            embedder=cfg.embedder if cfg.index and not no_index else None,
            report=st.output,
        )
    rows = {
        "wrote": result.path,
        "size": human_size(result.size),
        "commitment": result.commitment,
        "verified": "plaintext matches the commitment" if result.commitment else "blocks only",
        "asset": f"#{result.asset_id}" if result.asset_id is not None else "-",
    }
    st.output.result(result, kv(rows))


@app.command("cat")
@returns("sahara_cli.vault.results:CatResult")
def cat(
    ref: Ref,
    backend: Backend = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Print a file item's plaintext to stdout (bytes as they are; --json wraps them)."""
    from sahara_cli.vault.licensed import cat_content, cat_stream

    st = state()
    unlock, proto = reader(st, signer_name, password_file)
    with open_vault(st, backend) as vault:
        if st.output.json_mode:
            st.output.result(cat_content(vault, ref, unlock=unlock, protocol=proto))
            return
        out = sys.stdout.buffer
        cat_stream(vault, ref, out.write, unlock=unlock, protocol=proto)
        out.flush()


@app.command("rm")
@returns("sahara_cli.vault.results:RemoveResult")
def rm(
    ref: Ref,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    backend: Backend = None,
) -> None:
    """Remove an item: unpin it, collect its blocks and drop it from the index."""
    from sahara_cli.vault.items import remove_item

    st = state()
    with open_vault(st, backend) as vault:
        item = vault.find(ref)
        if item.asset_id is not None:
            st.output.warn(
                f"asset #{item.asset_id} stays registered; licensees can no longer fetch it here"
            )
        st.confirm(f"Remove {item.name} ({item.cid}) from the vault?", yes=yes)
        result = remove_item(vault, item, embedder=st.config().config.vault.embedder)
    rows = {
        "removed": f"{result.name} {result.cid}",
        "freed": f"{result.removed_blocks} blocks, {human_size(result.removed_bytes)}",
    }
    st.output.result(result, kv(rows))


@app.command("share")
@returns("sahara_cli.vault.results:ShareResult")
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
    from sahara_cli.vault.sharing import recipient
    from sahara_cli.vault.sharing import share as share_item

    st = state()
    whom = recipient(to, st.keystore())
    unlock, _ = reader(st, signer_name, password_file)
    with open_vault(st, backend) as vault:
        result = share_item(vault, ref, whom, unlock=unlock)
    if result.asset_id is None:
        st.output.note("The item is not registered; register it so 'vault get ASSET' can find it.")
    st.output.result(result, kv({"shared": f"{result.name} {result.cid}", "with": result.to}))


@app.command("export")
@returns("sahara_cli.vault.results:ExportResult")
def export(
    ref: Ref,
    car: Annotated[Path, typer.Option("--car", help="CAR v1 file to write.", dir_okay=False)],
    backend: Backend = None,
) -> None:
    """Export an item's blocks (ciphertext when encrypted) as a CAR file."""
    from sahara_cli.vault.items import export_item

    st = state()
    with open_vault(st, backend) as vault:
        result = export_item(vault, ref, car, report=st.output)
    rows = {"wrote": result.path, "bytes": human_size(result.bytes), "root": result.root}
    st.output.result(result, kv(rows))


@app.command("import")
@returns("sahara_cli.vault.results:ImportResult")
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
    from sahara_cli.vault.items import import_items

    st = state()
    info = st.keystore().resolve(signer_name)
    with open_vault(st, backend) as vault:
        result = import_items(vault, car, info.address, name, report=st.output)

    def render(console: Console) -> None:
        for item in result.items:
            note = " (encrypted: its key travels separately)" if item.encrypted else ""
            console.print(f"Imported [bold]{item.name}[/] {item.cid}{note}")

    st.output.result(result, render)


@app.command("search")
@returns("sahara_cli.vault.results:SearchResult")
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
    from sahara_cli.vault.backends import vault_root
    from sahara_cli.vault.search import search_vault

    st = state()
    unlock, _ = reader(st, signer_name, password_file)
    result = search_vault(
        vault_root(st.home.require().root),
        query,
        k,
        embedder=st.config().config.vault.embedder,
        unlock=unlock if show_text else None,
    )

    def render(console: Console) -> None:
        if not result.hits:
            console.print("No hits. Text is indexed when you add it ('sahara vault add FILE').")
            return
        for n, hit in enumerate(result.hits, 1):
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

    st.output.result(result, render)
