"""sahara id: create, import, export and use Sahara IDs (encrypted keystores)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._output import Render, returns
from sahara_cli.commands._state import state
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from sahara_cli.identity.results import Identity

app = typer.Typer(help="Manage Sahara IDs: keys, keystores and signatures.", no_args_is_help=True)

PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help="Read the password from this file (else SAHARA_PASSWORD, else a prompt).",
        dir_okay=False,
        show_default=False,
    ),
]
IdName = Annotated[str, typer.Argument(help="Name of the ID.", show_default=False)]
OptionalId = Annotated[
    str | None, typer.Argument(help="Name of the ID (default: the default ID).", show_default=False)
]
SignerOption = Annotated[
    str | None,
    typer.Option("--id", help="ID to sign with (default: the default ID).", show_default=False),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


MNEMONIC_NOTE = "[bold yellow]Mnemonic (shown once; write it down and keep it offline):[/]"


def _render_info(info: Identity, title: str) -> Render:
    def render(console: Console) -> None:
        table = Table(show_header=False, title=title, title_justify="left", box=None)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("name", info.name + ("  [green](default)[/]" if info.is_default else ""))
        table.add_row("address", info.address)
        table.add_row(
            "public key", info.public_key or "[dim]unknown (imported without metadata)[/]"
        )
        table.add_row("origin", info.origin + (f" ({info.hd_path})" if info.hd_path else ""))
        created = info.created_at.isoformat(timespec="seconds") if info.created_at else "-"
        table.add_row("created", created)
        table.add_row("keystore", str(info.path))
        console.print(table)

    return render


@app.command("create")
@returns("sahara_cli.identity.results:CreatedIdentity")
def create(
    name: IdName,
    mnemonic: Annotated[
        bool,
        typer.Option("--mnemonic", help="Derive the key from a new BIP-39 mnemonic, shown once."),
    ] = False,
    words: Annotated[
        int, typer.Option("--words", help="Mnemonic length: 12, 15, 18, 21 or 24.")
    ] = 12,
    password_file: PasswordFile = None,
) -> None:
    """Create a new Sahara ID with a random key (or a new mnemonic)."""
    from sahara_cli.identity.manage import create_identity

    st = state()
    store = st.keystore()
    password = st.password(password_file, purpose=f"encrypt the new ID '{name}'", new=True)
    with st.output.status("Encrypting keystore") as progress:
        created = create_identity(
            store, name, password, with_mnemonic=mnemonic, words=words, progress=progress
        )

    def render(console: Console) -> None:
        _render_info(created, f"Created Sahara ID '{created.name}'")(console)
        if created.mnemonic is not None:
            console.print()
            console.print(MNEMONIC_NOTE)
            console.print(f"  {created.mnemonic}", markup=False)

    st.output.result(created, render)


@app.command("import")
@returns("sahara_cli.identity.results:Identity")
def import_(
    name: IdName,
    private_key_file: Annotated[
        Path | None,
        typer.Option("--private-key-file", help="File holding a hex private key.", dir_okay=False),
    ] = None,
    mnemonic_file: Annotated[
        Path | None,
        typer.Option("--mnemonic-file", help="File holding a BIP-39 mnemonic.", dir_okay=False),
    ] = None,
    path: Annotated[
        str | None,
        typer.Option(
            "--path", help="Derivation path for --mnemonic-file.", show_default="m/44'/60'/0'/0/0"
        ),
    ] = None,
    keystore_file: Annotated[
        Path | None,
        typer.Option(
            "--keystore", help="A keystore v3 JSON file (its password is asked).", dir_okay=False
        ),
    ] = None,
    password_file: PasswordFile = None,
) -> None:
    """Import a key from a private-key file, a mnemonic file or a keystore file.

    Secrets are read from files or prompts, never from the command line.
    """
    from sahara_cli.identity.manage import check_import_source, import_identity

    check_import_source(private_key_file, mnemonic_file, keystore_file, path)
    st = state()
    store = st.keystore()
    with st.output.status("Importing") as progress:
        info = import_identity(
            store,
            name,
            lambda purpose, new: st.password(password_file, purpose=purpose, new=new),
            private_key_file=private_key_file,
            mnemonic_file=mnemonic_file,
            keystore_file=keystore_file,
            hd_path=path,
            progress=progress,
        )
    st.output.result(info, _render_info(info, f"Imported Sahara ID '{info.name}'"))


@app.command("export")
@returns("sahara_cli.identity.results:IdentityExport")
def export(
    name: OptionalId = None,
    private_key: Annotated[
        bool, typer.Option("--private-key", help="Export the raw private key instead (asks first).")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (mode 0600) instead of stdout.",
            dir_okay=False,
        ),
    ] = None,
    yes: Yes = False,
    password_file: PasswordFile = None,
) -> None:
    """Export an ID as keystore v3 JSON, or (after confirmation) its private key."""
    import json

    from sahara_cli.identity.manage import export_identity

    st = state()
    store = st.keystore()
    info = store.resolve(name)
    if private_key:
        st.confirm(f"Print the unencrypted private key of '{info.name}'?", yes=yes)
    password = st.password(password_file, purpose=f"unlock '{info.name}'")
    status = f"Unlocking {info.name}" if private_key else "Checking password"
    with st.output.status(status) as progress:
        exported = export_identity(
            store, info.name, password, private_key=private_key, output=output, progress=progress
        )
    if exported.output is not None:
        note = f"Wrote {exported.name} to {exported.output} (mode 0600)"
        st.output.result(exported, lambda c: c.print(note))
        return
    text = exported.private_key or json.dumps(exported.keystore, indent=2)
    st.output.result(exported, lambda c: c.print(text, markup=False, highlight=False))


@app.command("list")
@returns("sahara_cli.identity.results:IdentityList")
def list_() -> None:
    """List the IDs in this home."""
    from sahara_cli.identity.manage import list_identities
    from sahara_cli.identity.results import Identity

    st = state()
    listed = list_identities(st.keystore())

    def render(console: Console) -> None:
        if not listed.ids:
            console.print("No Sahara IDs yet. Create one with [bold]sahara id create NAME[/].")
            return
        table = Table()
        table.add_column("name", style="bold")
        table.add_column("address", no_wrap=True)
        table.add_column("origin")
        table.add_column("created", style="dim")
        for item in listed.ids:
            if isinstance(item, Identity):
                mark = " [green]*[/]" if item.is_default else ""
                created = item.created_at.isoformat(timespec="seconds") if item.created_at else ""
                table.add_row(item.name + mark, item.address, item.origin, created)
            else:
                table.add_row(item.name, f"[red]{item.error.message}[/]", "", "")
        console.print(table)

    st.output.result(listed, render)


@app.command("show")
@returns("sahara_cli.identity.results:IdentityDetails")
def show(
    name: OptionalId = None,
    chain: Annotated[
        bool,
        typer.Option(
            "--chain/--no-chain",
            help="Ask the node for the ID's receipts and reputation (skipped if none answers).",
        ),
    ] = True,
) -> None:
    """Show an ID's address, public key and keystore, and its on-chain receipts."""
    from sahara_cli.identity.manage import show_identity

    st = state()
    store = st.keystore()
    reader = None
    if chain:
        from sahara_cli.protocol.standing import standing_reader

        node = st.config().config.node
        reader = standing_reader(node.rpc_url, timeout=min(node.timeout, 2.0))
    details = show_identity(store, name, standing=reader)
    base = _render_info(details, f"Sahara ID '{details.name}'")

    def render(console: Console) -> None:
        base(console)
        if details.chain is None:
            return
        console.print(
            f"[bold]reputation[/] {details.chain.reputation} "
            f"[dim](bps of contribution held; 10000 = one whole asset)[/]"
        )
        receipts = Table(title="receipts", title_justify="left", box=None)
        for column in ("receipt", "asset", "role", "share"):
            receipts.add_column(column)
        for r in details.chain.receipts:
            receipts.add_row(
                f"#{r.receipt_id}", f"#{r.asset_id}", r.role, f"{r.share_bps / 100:g}%"
            )
        console.print(receipts)

    st.output.result(details, render)


@app.command("use")
@returns("sahara_cli.identity.results:Identity")
def use(name: IdName) -> None:
    """Make NAME the default ID."""
    from sahara_cli.identity.manage import use_identity

    st = state()
    info = use_identity(st.keystore(), name)
    st.output.result(
        info, lambda c: c.print(f"Default ID is now [bold]{info.name}[/] ({info.address})")
    )


@app.command("rename")
@returns("sahara_cli.identity.results:RenamedIdentity")
def rename(
    old: IdName, new: Annotated[str, typer.Argument(help="New name.", show_default=False)]
) -> None:
    """Rename an ID (the default follows it)."""
    from sahara_cli.identity.manage import rename_identity

    st = state()
    info = rename_identity(st.keystore(), old, new)
    st.output.result(info, lambda c: c.print(f"Renamed [bold]{old}[/] to [bold]{info.name}[/]"))


@app.command("delete")
@returns("sahara_cli.identity.results:DeletedIdentity")
def delete(name: IdName, yes: Yes = False) -> None:
    """Delete an ID (its keystore is moved to <home>/backups/deleted-ids)."""
    from sahara_cli.identity.manage import delete_identity, peek_identity

    st = state()
    store = st.keystore()
    info = peek_identity(store, name)
    label = f"'{name}' ({info.address})" if info else f"'{name}'"
    st.confirm(f"Delete the Sahara ID {label}?", yes=yes)
    deleted = delete_identity(store, name)
    st.output.result(
        deleted, lambda c: c.print(f"Deleted {label}; keystore kept at {deleted.moved_to}")
    )


@app.command("sign-message")
@returns("sahara_cli.identity.results:MessageSignature")
def sign_message(
    message: Annotated[str | None, typer.Argument(help="Text to sign.", show_default=False)] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Sign this file's bytes.", dir_okay=False)
    ] = None,
    hex_: Annotated[bool, typer.Option("--hex", help="MESSAGE is hex-encoded bytes.")] = False,
    signer_name: SignerOption = None,
    password_file: PasswordFile = None,
) -> None:
    """Sign a message with EIP-191 (personal_sign)."""
    from sahara_cli.identity.signing import message_bytes, sign_message

    data = message_bytes(message, file, hex_=hex_)
    signer, _, _ = state().unlock(signer_name, password_file)
    signed = sign_message(signer, data)
    state().output.result(signed, lambda c: c.print(signed.signature))


@app.command("verify-message")
@returns("sahara_cli.identity.results:SignatureCheck")
def verify_message(
    message: Annotated[
        str | None, typer.Argument(help="The signed text.", show_default=False)
    ] = None,
    signature: Annotated[
        str, typer.Option("--signature", "-s", help="0x-prefixed 65-byte signature.")
    ] = "",
    address: Annotated[
        str | None,
        typer.Option(
            "--address", help="Expected signer (address or ID name); exit 1 if another signed."
        ),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="The signed file.", dir_okay=False)
    ] = None,
    hex_: Annotated[bool, typer.Option("--hex", help="MESSAGE is hex-encoded bytes.")] = False,
) -> None:
    """Say who signed an EIP-191 signature (and check it against --address).

    Without --address any well-formed signature recovers to some address: the command
    prints that signer and the local ID with its address, if one.
    """
    from sahara_cli.identity.addresses import resolve_address
    from sahara_cli.identity.signing import message_bytes, verify_message

    if not signature:
        raise UsageError("--signature is required")
    st = state()
    if address is not None:
        address = resolve_address(address, "--address", keystore=st.keystore)
    payload = message_bytes(message, file, hex_=hex_)
    check = verify_message(payload, signature, address, keystore=st.keystore_or_none())

    def render(console: Console) -> None:
        who = f"Sahara ID '{check.signer_name}'" if check.signer_name else "no local ID"
        if check.expected is None:
            console.print(f"signed by {check.recovered}  [dim]({who})[/]")
        else:
            console.print(f"[green]valid[/] signature by {check.recovered}  [dim]({who})[/]")

    st.output.result(check, render)


@app.command("sign-typed-data")
@returns("sahara_cli.identity.results:TypedDataSignature")
def sign_typed_data(
    file: Annotated[
        Path,
        typer.Argument(help="EIP-712 JSON: types, primaryType, domain, message.", dir_okay=False),
    ],
    signer_name: SignerOption = None,
    password_file: PasswordFile = None,
) -> None:
    """Sign an EIP-712 typed-data document (eth_signTypedData_v4)."""
    from sahara_cli.identity.signing import read_typed_data, sign_typed_data

    document = read_typed_data(file)  # checked before a password is asked
    signer, _, _ = state().unlock(signer_name, password_file)
    signed = sign_typed_data(signer, document)
    state().output.result(signed, lambda c: c.print(signed.signature))
