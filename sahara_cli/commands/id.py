"""sahara id: create, import, export and use Sahara IDs (encrypted keystores)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._state import state
from sahara_cli.errors import FileUnreadable, SignatureMismatch, UsageError

if TYPE_CHECKING:
    pass

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


def _render_info(info: Any, title: str) -> Any:
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
        table.add_row("created", info.created or "-")
        table.add_row("keystore", str(info.path))
        console.print(table)

    return render


def _read_json(file: Path, what: str) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileUnreadable(f"{what} {file} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileUnreadable(f"cannot read {what} {file} as JSON: {exc}") from exc


def _message_bytes(message: str | None, file: Path | None, hex_: bool) -> bytes:
    if (message is None) == (file is None):
        raise UsageError("give either MESSAGE or --file, not both or neither")
    if file is not None:
        try:
            return file.read_bytes()
        except OSError as exc:
            raise FileUnreadable(f"cannot read {file}: {exc.strerror or exc}") from exc
    assert message is not None
    if hex_:
        try:
            return bytes.fromhex(message.removeprefix("0x"))
        except ValueError as exc:
            raise UsageError("--hex given but MESSAGE is not hex") from exc
    return message.encode("utf-8")


@app.command("create")
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
    st = state()
    store = st.keystore()
    password = st.password(password_file, purpose=f"encrypt the new ID '{name}'", new=True)
    with st.output.status("Encrypting keystore") as progress:
        info, phrase = store.create(
            name, password, with_mnemonic=mnemonic, words=words, progress=progress
        )
    if store.default is None:
        info = store.use(info.name)
    data: dict[str, Any] = info.to_dict()
    if phrase is not None:
        data["mnemonic"] = phrase

    def render(console: Console) -> None:
        _render_info(info, f"Created Sahara ID '{info.name}'")(console)
        if phrase is not None:
            console.print()
            console.print(
                "[bold yellow]Mnemonic (shown once; write it down and keep it offline):[/]"
            )
            console.print(f"  {phrase}", markup=False)

    st.output.result(data, render)


@app.command("import")
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
    from sahara_cli.identity.store import read_secret_file

    sources = [s for s in (private_key_file, mnemonic_file, keystore_file) if s is not None]
    if len(sources) != 1:
        raise UsageError("give exactly one of --private-key-file, --mnemonic-file, --keystore")
    if path is not None and mnemonic_file is None:
        raise UsageError("--path only applies to --mnemonic-file")
    st = state()
    store = st.keystore()
    with st.output.status("Importing") as progress:
        if keystore_file is not None:
            document = _read_json(keystore_file, "keystore file")
            password = st.password(password_file, purpose=f"open {keystore_file.name}")
            info = store.import_keystore(name, document, password, progress=progress)
        elif private_key_file is not None:
            from sahara_cli.identity.keys import parse_private_key

            key = parse_private_key(read_secret_file(private_key_file, "private key"))
            password = st.password(password_file, purpose=f"encrypt the ID '{name}'", new=True)
            info = store.import_private_key(name, key, password, progress=progress)
        else:
            assert mnemonic_file is not None
            phrase = read_secret_file(mnemonic_file, "mnemonic")
            password = st.password(password_file, purpose=f"encrypt the ID '{name}'", new=True)
            info = store.import_mnemonic(name, phrase, password, path=path, progress=progress)
    if store.default is None:
        info = store.use(info.name)
    st.output.result(info.to_dict(), _render_info(info, f"Imported Sahara ID '{info.name}'"))


@app.command("export")
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
    from sahara_cli.fsutil import atomic_write

    st = state()
    store = st.keystore()
    info = store.resolve(name)
    if private_key:
        st.confirm(f"Print the unencrypted private key of '{info.name}'?", yes=yes)
        signer, _, _ = st.unlock(info.name, password_file)
        secret = "0x" + signer.private_key.hex()
        data: dict[str, Any] = {"name": info.name, "address": info.address, "private_key": secret}
        text = secret + "\n"
    else:
        password = st.password(password_file, purpose=f"unlock '{info.name}'")
        with st.output.status("Checking password") as progress:
            document = store.export(info.name, password, progress=progress)
        data = {"name": info.name, "address": info.address, "keystore": document}
        text = json.dumps(document, indent=2) + "\n"
    if output is not None:
        atomic_write(output, text.encode())
        data = {k: v for k, v in data.items() if k not in ("private_key", "keystore")}
        data["output"] = str(output)
        st.output.result(data, lambda c: c.print(f"Wrote {info.name} to {output} (mode 0600)"))
        return
    st.output.result(data, lambda c: c.print(text.rstrip("\n"), markup=False, highlight=False))


@app.command("list")
def list_() -> None:
    """List the IDs in this home."""
    from sahara_cli.identity.store import IdentityInfo

    st = state()
    items = st.keystore().list()
    rows = [
        i.to_dict()
        if isinstance(i, IdentityInfo)
        else {"name": i.details["name"], "error": i.to_dict()}
        for i in items
    ]

    def render(console: Console) -> None:
        if not rows:
            console.print("No Sahara IDs yet. Create one with [bold]sahara id create NAME[/].")
            return
        table = Table()
        table.add_column("name", style="bold")
        table.add_column("address", no_wrap=True)
        table.add_column("origin")
        table.add_column("created", style="dim")
        for item in items:
            if isinstance(item, IdentityInfo):
                mark = " [green]*[/]" if item.is_default else ""
                table.add_row(item.name + mark, item.address, item.origin, item.created)
            else:
                table.add_row(item.details["name"], f"[red]{item.message}[/]", "", "")
        console.print(table)

    st.output.result({"ids": rows}, render)


@app.command("show")
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
    st = state()
    info = st.keystore().resolve(name)
    data = info.to_dict()
    standing = _chain_standing(st, info.address) if chain else None
    if chain:
        data["chain"] = standing
    base = _render_info(info, f"Sahara ID '{info.name}'")

    def render(console: Console) -> None:
        base(console)
        if standing is None:
            return
        console.print(
            f"[bold]reputation[/] {standing['reputation']} "
            f"[dim](bps of contribution held; 10000 = one whole asset)[/]"
        )
        receipts = Table(title="receipts", title_justify="left", box=None)
        for column in ("receipt", "asset", "role", "share"):
            receipts.add_column(column)
        for r in standing["receipts"]:
            receipts.add_row(
                f"#{r['id']}", f"#{r['asset']}", r["role"], f"{r['share_bps'] / 100:g}%"
            )
        console.print(receipts)

    st.output.result(data, render)


def _chain_standing(st: Any, address: str) -> dict[str, Any] | None:
    """Receipts and reputation of ``address``, or None when no sahara node answers."""
    from sahara_cli.errors import SaharaError
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Protocol

    cfg = st.config().config.node
    client = NodeClient(cfg.rpc_url, timeout=min(cfg.timeout, 2.0))
    try:
        proto = Protocol(client)
        proto.ensure_deployed()
        receipts = proto.receipts_of(address)
        return {
            "rpc_url": cfg.rpc_url,
            "reputation": proto.reputation(address),
            "receipts": [r.to_dict() for r in receipts],
        }
    except SaharaError:
        return None
    finally:
        client.close()


@app.command("use")
def use(name: IdName) -> None:
    """Make NAME the default ID."""
    st = state()
    info = st.keystore().use(name)
    st.output.result(
        info.to_dict(),
        lambda c: c.print(f"Default ID is now [bold]{info.name}[/] ({info.address})"),
    )


@app.command("rename")
def rename(
    old: IdName, new: Annotated[str, typer.Argument(help="New name.", show_default=False)]
) -> None:
    """Rename an ID (the default follows it)."""
    st = state()
    info = st.keystore().rename(old, new)
    st.output.result(
        {"old": old, **info.to_dict()},
        lambda c: c.print(f"Renamed [bold]{old}[/] to [bold]{info.name}[/]"),
    )


@app.command("delete")
def delete(name: IdName, yes: Yes = False) -> None:
    """Delete an ID (its keystore is moved to <home>/backups/deleted-ids)."""
    st = state()
    store = st.keystore()
    info = store.get(name) if (store.directory / f"{name}.json").exists() else None
    label = f"'{name}' ({info.address})" if info else f"'{name}'"
    st.confirm(f"Delete the Sahara ID {label}?", yes=yes)
    deleted, kept = store.delete(name)
    data = {"name": name, "address": deleted.address, "moved_to": str(kept) if kept else None}
    st.output.result(data, lambda c: c.print(f"Deleted {label}; keystore kept at {kept}"))


@app.command("sign-message")
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
    from sahara_cli.identity.keys import personal_message_hash

    data_bytes = _message_bytes(message, file, hex_)
    signer, _, _ = state().unlock(signer_name, password_file)
    signature = "0x" + signer.sign_message(data_bytes).hex()
    data = {
        "address": signer.address,
        "message_hash": "0x" + personal_message_hash(data_bytes).hex(),
        "signature": signature,
    }
    state().output.result(data, lambda c: c.print(signature))


@app.command("verify-message")
def verify_message(
    message: Annotated[
        str | None, typer.Argument(help="The signed text.", show_default=False)
    ] = None,
    signature: Annotated[
        str, typer.Option("--signature", "-s", help="0x-prefixed 65-byte signature.")
    ] = "",
    address: Annotated[
        str | None, typer.Option("--address", help="Expected signer; exit 1 if another key signed.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="The signed file.", dir_okay=False)
    ] = None,
    hex_: Annotated[bool, typer.Option("--hex", help="MESSAGE is hex-encoded bytes.")] = False,
) -> None:
    """Recover the signer of an EIP-191 signature (and check it against --address)."""
    from sahara_cli.identity.keys import parse_address, personal_message_hash, recover_hash

    if not signature:
        raise UsageError("--signature is required")
    if address is not None:
        address = parse_address(address, "--address")
    digest = personal_message_hash(_message_bytes(message, file, hex_))
    recovered = recover_hash(digest, signature)
    st = state()
    if address is not None and recovered.lower() != address.lower():
        raise SignatureMismatch(
            f"signed by {recovered}, not by {address}", details={"recovered": recovered}
        )
    data = {"recovered": recovered, "valid": True, "expected": address}
    st.output.result(data, lambda c: c.print(f"[green]valid[/] signature by {recovered}"))


@app.command("sign-typed-data")
def sign_typed_data(
    file: Annotated[
        Path,
        typer.Argument(help="EIP-712 JSON: types, primaryType, domain, message.", dir_okay=False),
    ],
    signer_name: SignerOption = None,
    password_file: PasswordFile = None,
) -> None:
    """Sign an EIP-712 typed-data document (eth_signTypedData_v4)."""
    from sahara_cli.identity.keys import typed_data_hash

    document = _read_json(file, "typed-data file")
    digest = typed_data_hash(document)  # validates before asking for a password
    signer, _, _ = state().unlock(signer_name, password_file)
    signature = "0x" + signer.sign_typed_data(document).hex()
    data = {"address": signer.address, "hash": "0x" + digest.hex(), "signature": signature}
    state().output.result(data, lambda c: c.print(signature))
