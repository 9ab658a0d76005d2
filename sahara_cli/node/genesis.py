"""Genesis: the chain id, the first block's parameters and the accounts it funds.

The default chain id, 31313 ("sahara local"), is used by no common development chain
(hardhat and anvil use 31337, ganache 1337, geth's dev mode 1337): a wallet never mixes
a sahara chain up with one of those.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import GenesisInvalid

if TYPE_CHECKING:
    from sahara_cli.node.results import DevAccounts

DEFAULT_CHAIN_ID = 31313
DEFAULT_GAS_LIMIT = 30_000_000
INITIAL_BASE_FEE = 1_000_000_000  # 1 gwei, as on Ethereum at the London fork
SAH = 10**18
#: The mnemonic hardhat and anvil fund by default; everybody's tests know its keys.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNTS = 10
DEV_BALANCE = 10_000 * SAH


@dataclass
class Account:
    balance: int = 0
    nonce: int = 0
    code: str = "0x"
    storage: dict[str, str] = field(default_factory=dict)


@dataclass
class Genesis:
    """Everything that decides block 0. Stored in the chain database at init."""

    chain_id: int = DEFAULT_CHAIN_ID
    gas_limit: int = DEFAULT_GAS_LIMIT
    base_fee: int = INITIAL_BASE_FEE
    timestamp: int = 0
    validator: str = "0x" + "00" * 20
    dev: bool = False
    alloc: dict[str, Account] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Genesis:
        try:
            data: dict[str, Any] = json.loads(text)
            alloc = {k.lower(): Account(**v) for k, v in data.pop("alloc", {}).items()}
            return cls(**data, alloc=alloc)
        except (TypeError, ValueError) as exc:
            raise GenesisInvalid(f"genesis is malformed: {exc}") from exc

    def fund(self, address: str, balance: int) -> None:
        account = self.alloc.setdefault(address.lower(), Account())
        account.balance = balance

    def predeploy(self, address: str, code: bytes, storage: dict[int, int] | None = None) -> None:
        """Place contract code (and storage) at ``address`` in block 0 (protocol contracts)."""
        account = self.alloc.setdefault(address.lower(), Account())
        account.code = "0x" + code.hex()
        account.storage = {hex(k): hex(v) for k, v in (storage or {}).items()}

    def state_dict(self) -> dict[bytes, dict[str, Any]]:
        """The genesis state in py-evm's ``apply_state_dict`` form."""
        out: dict[bytes, dict[str, Any]] = {}
        for address, account in self.alloc.items():
            try:
                raw = bytes.fromhex(address.removeprefix("0x"))
                code = bytes.fromhex(account.code.removeprefix("0x"))
                storage = {int(k, 16): int(v, 16) for k, v in account.storage.items()}
            except ValueError as exc:
                raise GenesisInvalid(f"genesis account {address}: {exc}") from exc
            if len(raw) != 20:
                raise GenesisInvalid(f"genesis account {address} is not a 20-byte address")
            out[raw] = {
                "balance": account.balance,
                "nonce": account.nonce,
                "code": code,
                "storage": storage,
            }
        return out


#: Compiled protocol contracts, read as data files: ``node`` never imports ``protocol``.
PROTOCOL_DIR = Path(__file__).resolve().parent.parent / "protocol" / "contracts"


def add_protocol(genesis: Genesis) -> Genesis:
    """Place the protocol contracts (registry, receipts, licensing, attribution,
    provenance) at their fixed addresses, from the committed artifacts, and give the
    SAPs their accounts and parameters."""
    try:
        manifest = json.loads((PROTOCOL_DIR / "deployment.json").read_text())
        for name, address in manifest["contracts"].items():
            artifact = json.loads((PROTOCOL_DIR / f"{name}.json").read_text())
            genesis.predeploy(address, bytes.fromhex(artifact["bytecode_runtime"][2:]))
    except (OSError, ValueError, KeyError) as exc:
        raise GenesisInvalid(f"protocol contract artifacts cannot be read: {exc}") from exc
    from sahara_cli.node.saps import genesis_accounts

    for sap, storage in genesis_accounts(dev=genesis.dev).items():
        # A nonce, so that the account is never empty (EIP-161) and its storage stays.
        account = genesis.alloc.setdefault("0x" + sap.hex(), Account())
        account.nonce = 1
        account.storage = {hex(k): hex(v) for k, v in storage.items()}
    return genesis


def dev_keys(count: int = DEV_ACCOUNTS) -> list[bytes]:
    """Private keys of the first ``count`` accounts of :data:`DEV_MNEMONIC`."""
    from sahara_cli.identity import mnemonic

    return [mnemonic.derive(DEV_MNEMONIC, f"m/44'/60'/0'/0/{i}") for i in range(count)]


def dev_accounts(count: int = DEV_ACCOUNTS) -> DevAccounts:
    """The funded accounts of a dev chain with their keys, as anvil prints them."""
    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.results import DevAccount, DevAccounts

    return DevAccounts(
        mnemonic=DEV_MNEMONIC,
        accounts=[
            DevAccount(index=i, address=Signer(key).address, private_key="0x" + key.hex())
            for i, key in enumerate(dev_keys(count))
        ],
    )


def dev_genesis(
    *, chain_id: int = DEFAULT_CHAIN_ID, validator: str, extra: list[str] | None = None
) -> Genesis:
    """A development genesis: the 10 standard test accounts and ``extra`` get 10,000 SAH."""
    from sahara_cli.identity.keys import Signer

    genesis = Genesis(chain_id=chain_id, validator=validator, dev=True)
    for key in dev_keys():
        genesis.fund(Signer(key).address, DEV_BALANCE)
    for address in extra or []:
        genesis.fund(address, DEV_BALANCE)
    return add_protocol(genesis)
