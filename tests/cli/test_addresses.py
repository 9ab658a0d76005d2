"""Every address a person types is checked (EIP-55 when mixed case) before it is used.

A walk of the Typer app finds every option and argument that takes an address; each
must be listed in INPUTS with a command line that gives it a mistyped address, and that
command must fail with ``identity.bad_address`` before it asks for a password or reaches
the node. The same line with the address all-lowercase must get past the check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
import typer

from sahara_cli import errors
from sahara_cli.commands.main import app
from sahara_cli.identity import keys
from tests.conftest import PASSWORD, TEST_ADDRESS_1, Invoke

#: TEST_ADDRESS_1 with one letter's case flipped: the EIP-55 checksum no longer matches.
TYPO = TEST_ADDRESS_1.replace("C51812", "c51812")
assert TYPO != TEST_ADDRESS_1 and TYPO.lower() == TEST_ADDRESS_1.lower()


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in sorted(subcommands.items()):
            yield from walk(sub, (*path, name))
    else:
        yield path


ROOT = typer.main.get_command(app)


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = ROOT
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


def takes_an_address(param: click.Parameter) -> bool:
    text = f"{getattr(param, 'help', '') or ''} {param.name}".lower()
    return "address" in text or "0x and 40 hex" in text


#: Parameters whose help says "address" but that take no Ethereum address.
NOT_ADDRESSES = {
    (("node", "start"), "allow_remote_signing"): "a flag about the listen address",
    (("node", "run"), "allow_remote_signing"): "a flag about the listen address",
    (("mcp", "serve"), "allow_hosts"): "host names for the Host header check",
    (("agent", "serve"), "rate_per_ip"): "a rate per remote network address",
    (("mcp", "serve"), "rate_per_ip"): "a rate per remote network address",
}


def a_file(tmp: Path) -> str:
    path = tmp / "terms.txt"
    path.write_text("some terms\n")
    return str(path)


#: (command path, parameter name) -> the arguments after the command path for an address
#: and a scratch directory.
INPUTS: dict[tuple[tuple[str, ...], str], Callable[[str, Path], list[str]]] = {
    (("tx", "send"), "to"): lambda a, tmp: ["--to", a, "--value", "1"],
    (("balance",), "address"): lambda a, tmp: [a],
    (("node", "fund"), "address"): lambda a, tmp: [a, "1"],
    (("vault", "share"), "to"): lambda a, tmp: ["somefile", "--to", a],
    (("vault", "add"), "contributors"): lambda a, tmp: [
        a_file(tmp),
        "--register",
        "--contributor",
        f"{a}:1000",
    ],
    (("asset", "register"), "contributors"): lambda a, tmp: [
        "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        "--kind",
        "dataset",
        "--name",
        "data",
        "--contributor",
        f"{a}:1000",
    ],
    (("asset", "list"), "owner"): lambda a, tmp: ["--owner", a],
    (("asset", "update"), "meter"): lambda a, tmp: ["1", "--meter", a],
    (("attribute", "add"), "contributor"): lambda a, tmp: [
        "1",
        "--contributor",
        a,
        "--weight",
        "10",
    ],
    (("license", "offer"), "partner"): lambda a, tmp: [
        "1",
        "--type",
        "partnership",
        "--share",
        "20%",
        "--terms",
        a_file(tmp),
        "--partner",
        a,
    ],
    (("license", "list"), "holder"): lambda a, tmp: ["--holder", a],
    (("license", "check"), "user"): lambda a, tmp: ["1", "--user", a],
    (("agent", "publish"), "meter"): lambda a, tmp: ["someagent", "--meter", a],
    (("id", "verify-message"), "address"): lambda a, tmp: [
        "hello",
        "--signature",
        "0x" + "11" * 65,
        "--address",
        a,
    ],
    (("events",), "address"): lambda a, tmp: ["--address", a],
    (("light", "balance"), "address"): lambda a, tmp: [a],
    (("light", "storage"), "address"): lambda a, tmp: [a, "0"],
}


def address_params() -> list[tuple[tuple[str, ...], str]]:
    found = []
    for path in walk(ROOT):
        for param in command_at(path).params:
            if takes_an_address(param) and param.name:
                found.append((path, param.name))
    return found


def test_every_address_option_is_checked_here() -> None:
    found = set(address_params()) - set(NOT_ADDRESSES)
    missing = sorted(found - set(INPUTS))
    assert not missing, f"add these address inputs to INPUTS: {missing}"
    assert not set(INPUTS) - found, "INPUTS names options that no longer exist"


@pytest.mark.parametrize("key", sorted(INPUTS), ids=lambda k: " ".join(k[0]) + " " + k[1])
def test_a_mistyped_address_fails_before_anything_else(
    key: tuple[tuple[str, ...], str], cli: Invoke, initialised: Path, tmp_path: Path
) -> None:
    path, _ = key
    # No password is available (--no-prompt) and no node answers: a command that went
    # further than the address check would fail with another code.
    result = cli("--json", "--no-prompt", *path, *INPUTS[key](TYPO, tmp_path))
    assert result.exit_code == 2, result.stderr
    error = result.error()
    assert error["code"] == "identity.bad_address", error
    assert "checksum" in error["message"]


@pytest.mark.parametrize("key", sorted(INPUTS), ids=lambda k: " ".join(k[0]) + " " + k[1])
def test_unchecksummed_addresses_pass_the_check(
    key: tuple[tuple[str, ...], str], cli: Invoke, initialised: Path, tmp_path: Path
) -> None:
    path, _ = key
    for spelling in (TEST_ADDRESS_1.lower(), "0x" + TEST_ADDRESS_1[2:].upper(), TEST_ADDRESS_1):
        result = cli("--json", "--no-prompt", *path, *INPUTS[key](spelling, tmp_path))
        if result.exit_code:
            assert result.error()["code"] != "identity.bad_address", result.stderr


@pytest.mark.parametrize("key", sorted(INPUTS), ids=lambda k: " ".join(k[0]) + " " + k[1])
def test_an_id_name_is_taken_wherever_an_address_is(
    key: tuple[tuple[str, ...], str], cli: Invoke, initialised: Path, tmp_path: Path
) -> None:
    path, _ = key
    named = cli("--json", "--no-prompt", *path, *INPUTS[key]("main", tmp_path))
    if named.exit_code:
        assert named.error()["code"] not in ("identity.bad_address", "identity.not_found"), (
            named.stderr
        )
    unknown = cli("--json", "--no-prompt", *path, *INPUTS[key]("nobody", tmp_path))
    assert unknown.exit_code == 3, unknown.stderr
    error = unknown.error()
    assert error["code"] == "identity.not_found", error
    assert "'nobody'" in error["message"] and "main" in error["hint"]


@pytest.mark.parametrize("key", sorted(INPUTS), ids=lambda k: " ".join(k[0]) + " " + k[1])
def test_a_short_address_is_a_bad_address_not_a_missing_id(
    key: tuple[tuple[str, ...], str], cli: Invoke, initialised: Path, tmp_path: Path
) -> None:
    path, _ = key
    result = cli("--json", "--no-prompt", *path, *INPUTS[key]("0x123", tmp_path))
    assert result.exit_code == 2, result.stderr
    error = result.error()
    assert error["code"] == "identity.bad_address", error
    assert "'0x123' is not an address" in error["message"]


def test_the_resolver_reads_names_and_addresses(tmp_path: Path) -> None:
    from sahara_cli.identity.addresses import resolve_address
    from sahara_cli.identity.store import KeyStore

    store = KeyStore(tmp_path / "keys", scrypt_n=1024, default="bob")
    bob, _ = store.create("bob", "pw")
    odd, _ = store.create("0x123", "pw")  # a name that looks like an address is still one

    def resolve(text: str | None) -> str:
        return resolve_address(text, "--to", keystore=lambda: store)

    assert resolve(None) == resolve("bob") == resolve(" bob ") == bob.address
    assert resolve("0x123") == odd.address
    assert resolve(TEST_ADDRESS_1.lower()) == TEST_ADDRESS_1
    with pytest.raises(errors.AddressInvalid, match="lacks the 0x prefix"):
        resolve(TEST_ADDRESS_1[2:])
    with pytest.raises(errors.AddressInvalid, match="not an address"):
        resolve("0x1234")
    with pytest.raises(errors.AddressInvalid, match="neither an address"):
        resolve("bob smith")
    with pytest.raises(errors.IdentityNotFound, match="neither an address nor the name"):
        resolve("carol")

    def no_home() -> KeyStore:
        raise AssertionError("a plain address needs no keystore")

    assert resolve_address(TEST_ADDRESS_1, keystore=no_home) == TEST_ADDRESS_1


# -- the library function ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        TEST_ADDRESS_1,
        TEST_ADDRESS_1.lower(),
        "0x" + TEST_ADDRESS_1[2:].upper(),
        f"  {TEST_ADDRESS_1}\n",
        "0X" + TEST_ADDRESS_1[2:].lower(),
    ],
)
def test_parse_address_accepts_checksummed_and_single_case(text: str) -> None:
    assert keys.parse_address(text) == TEST_ADDRESS_1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TYPO, "EIP-55 checksum"),
        ("0x" + TEST_ADDRESS_1[2:].swapcase(), "EIP-55 checksum"),
        (TEST_ADDRESS_1[2:], "not an address"),
        (TEST_ADDRESS_1[:-1], "not an address"),
        (TEST_ADDRESS_1 + "0", "not an address"),
        ("0x" + "g" * 40, "not an address"),
        ("", "not an address"),
    ],
)
def test_parse_address_refuses_typos(text: str, message: str) -> None:
    with pytest.raises(errors.AddressInvalid, match=message) as caught:
        keys.parse_address(text, "--to")
    assert caught.value.code == "identity.bad_address"
    assert caught.value.message.startswith("--to ")


def test_rpc_facing_library_functions_check_addresses() -> None:
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Protocol

    node = NodeClient("http://127.0.0.1:9", timeout=1)  # never reached: the check comes first
    with pytest.raises(errors.AddressInvalid):
        node.balance(TYPO)
    with pytest.raises(errors.AddressInvalid):
        node.nonce(TYPO)
    with pytest.raises(errors.AddressInvalid):
        Protocol(node).has_access(1, TYPO)


# -- a real payment --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from sahara_cli.node.rpc.testing import dev_node

    with dev_node(tmp_path_factory.mktemp("address-node")) as (_, server):
        yield server.url


def test_tx_send_pays_no_mistyped_address(
    cli: Invoke, initialised: Path, node_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sahara_cli.node.client import NodeClient

    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    monkeypatch.setenv("SAHARA_NODE_RPC_URL", node_url)
    client = NodeClient(node_url)
    sender = cli("--json", "id", "show", "--no-chain").json()["address"]
    client.call("sahara_dev_setBalance", sender, hex(10**20))
    before = client.balance(TEST_ADDRESS_1)
    refused = cli("--json", "tx", "send", "--to", TYPO, "--value", "1")
    assert refused.exit_code == 2
    assert refused.error()["code"] == "identity.bad_address"
    assert client.nonce(sender) == 0
    assert client.balance(TEST_ADDRESS_1) == before
    paid = cli("--json", "tx", "send", "--to", TEST_ADDRESS_1.lower(), "--value", "1")
    assert paid.exit_code == 0, paid.stderr
    assert paid.json()["to"] == TEST_ADDRESS_1
    assert client.balance(TEST_ADDRESS_1) == before + 10**18


def test_tx_send_to_an_id_name(
    cli: Invoke, initialised: Path, node_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sahara_cli.node.client import NodeClient

    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    monkeypatch.setenv("SAHARA_NODE_RPC_URL", node_url)
    client = NodeClient(node_url)
    sender = cli("--json", "id", "show", "--no-chain").json()["address"]
    bob = cli("--json", "--no-prompt", "id", "create", "bob").json()["address"]
    client.call("sahara_dev_setBalance", sender, hex(10**20))
    paid = cli("--json", "tx", "send", "--to", "bob", "--value", "2", "--id", "main")
    assert paid.exit_code == 0, paid.stderr
    assert paid.json()["to"] == bob
    assert cli("--json", "balance", "bob").json()["balance_wei"] == str(2 * 10**18)
