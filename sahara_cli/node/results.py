"""Typed results of the node's operations: ``sahara node``, ``sahara localnet``, ``sahara light``.

A light module (pydantic and :mod:`sahara_cli.results` only): the commands name these
classes in ``@returns`` and import them inside the command, so ``sahara --help`` loads
none of it. The conventions are those of :mod:`sahara_cli.results`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, RootModel

from sahara_cli.results import Address, Hash32, Result, Sah, Timestamp, Wei

__all__ = [
    "AppServing",
    "ChainReset",
    "DevAccount",
    "DevAccounts",
    "HeadBlock",
    "LightAccount",
    "LightHead",
    "LightHeader",
    "LocalnetDown",
    "LocalnetLogs",
    "LocalnetNode",
    "LocalnetNodeStarted",
    "LocalnetNodeStopped",
    "LocalnetPorts",
    "LocalnetStatus",
    "LogTail",
    "MempoolCounts",
    "NodeLog",
    "NodeRun",
    "NodeServing",
    "NodeStatus",
    "NodeStopped",
    "TrustedHeader",
]


def hex_hash(value: str | bytes | None) -> str | None:
    """CometBFT's upper-case hex (or bytes) as a lowercase ``0x`` hash; None when empty."""
    if value is None or value in ("", b""):
        return None
    text = value.hex() if isinstance(value, bytes) else value.removeprefix("0x")
    return "0x" + text.lower()


# -- sahara node ---------------------------------------------------------------------------


class NodeServing(Result):
    """A solo node serving JSON-RPC (``node run``, ``node start``)."""

    pid: int = Field(description="process id of the node")
    rpc_url: str
    chain_id: int
    validator: Address = Field(description="the address that signs the blocks")
    validator_source: str = Field(description="which key the validator is")
    dev: bool = Field(description="a development chain (dev accounts, sahara_dev_*)")
    block_time_s: float = Field(description="seconds between blocks; 0: on every transaction")
    height: int = Field(description="the head block's number when it started")
    started_at: Timestamp
    log: str | None = Field(None, description="the log file of a background node")

    @classmethod
    def from_runtime(
        cls, info: dict[str, Any], *, validator_source: str, log: str | None = None
    ) -> NodeServing:
        """From the runtime record a node writes once it serves (``node.json``)."""
        return cls(
            pid=info["pid"],
            rpc_url=info["rpc_url"],
            chain_id=info["chain_id"],
            validator=info["validator"],
            validator_source=validator_source,
            dev=info["dev"],
            block_time_s=info["block_time"],
            height=info["height"],
            started_at=info["started"],
            log=log,
        )


class AppServing(Result):
    """A CometBFT application listening (``node run --abci``)."""

    abci: str = Field(description="the address CometBFT's proxy_app connects to")
    comet_rpc: str = Field(description="CometBFT's RPC, where transactions go")
    data_dir: str


class NodeRun(RootModel[NodeServing | AppServing]):
    """``node run``: a solo node serving, or with ``--abci`` the application listening."""


class NodeStopped(Result):
    stopped: bool = Field(description="whether a node of this home was running")
    pid: int | None = Field(description="the process stopped")


class HeadBlock(Result):
    number: int
    hash: Hash32
    produced_at: Timestamp = Field(description="the block's timestamp")


class MempoolCounts(Result):
    pending: int = Field(description="transactions ready for the next blocks")
    queued: int = Field(description="transactions waiting for a missing nonce")


class NodeStatus(Result):
    """What the node at ``node.rpc_url`` reports of itself (``sahara_nodeInfo``)."""

    rpc_url: str
    local_pid: int | None = Field(description="pid when it is this home's background node")
    client_version: str
    chain_id: int
    head: HeadBlock
    validator: Address
    dev: bool
    block_time_s: float = Field(description="seconds between blocks; 0: on every transaction")
    mempool: MempoolCounts
    tx_per_second: float = Field(description="over the last 10 seconds")
    blocks_produced: int = Field(description="since the node started")
    txs_produced: int = Field(description="since the node started")
    uptime_s: int

    @classmethod
    def from_node_info(
        cls, info: dict[str, Any], *, rpc_url: str, local_pid: int | None
    ) -> NodeStatus:
        """From a ``sahara_nodeInfo`` reply (quantities in 0x-hex, as on the wire)."""
        head = info["head"]
        return cls(
            rpc_url=rpc_url,
            local_pid=local_pid,
            client_version=info["clientVersion"],
            chain_id=int(info["chainId"], 16),
            head=HeadBlock(
                number=int(head["number"], 16),
                hash=head["hash"],
                produced_at=int(head["timestamp"], 16),
            ),
            validator=info["validator"],
            dev=info["dev"],
            block_time_s=info["blockTime"],
            mempool=MempoolCounts(**info["mempool"]),
            tx_per_second=info["txPerSecond"],
            blocks_produced=info["blocksProduced"],
            txs_produced=info["txsProduced"],
            uptime_s=round(info["uptime"]),
        )


class NodeLog(Result):
    path: str
    lines: list[str] = Field(description="the last lines of the log, oldest first")


class ChainReset(Result):
    deleted: bool = Field(description="whether there was chain data to delete")
    path: str


class DevAccount(Result):
    index: int
    address: Address
    private_key: str = Field(description="0x and 64 hex digits; public knowledge")


class DevAccounts(Result):
    """The funded accounts of a development chain (the hardhat/anvil mnemonic's keys)."""

    mnemonic: str
    accounts: list[DevAccount]


# -- sahara localnet -----------------------------------------------------------------------


class LocalnetPorts(Result):
    p2p: int
    rpc: int = Field(description="CometBFT's RPC")
    abci: int
    eth_rpc: int = Field(description="the app's Ethereum JSON-RPC")


class LocalnetNode(Result):
    index: int
    running: bool = Field(description="both its app and its CometBFT run")
    app_running: bool
    cometbft_running: bool
    app_pid: int | None
    cometbft_pid: int | None
    height: int | None = Field(description="CometBFT's latest block height")
    app_hash: Hash32 | None = Field(description="the app hash of the latest block")
    peers: int | None
    catching_up: bool | None
    eth_rpc_url: str
    cometbft_rpc_url: str
    ports: LocalnetPorts
    home: str


class LocalnetStatus(Result):
    """A localnet's validators (``localnet up``, ``localnet status``)."""

    root: str
    validators: int
    block_time_s: float = Field(description="CometBFT's timeout_commit")
    running: int = Field(description="how many nodes run")
    nodes: list[LocalnetNode]
    resumed: bool = Field(
        False, description="localnet up: a stopped localnet was started again on its chain"
    )


class LocalnetNodeStopped(Result):
    index: int
    stopped: bool = Field(description="whether any of its processes was running")
    cometbft: bool = Field(description="its CometBFT was stopped")
    app: bool = Field(description="its app was stopped")


class LocalnetNodeStarted(Result):
    index: int
    app_pid: int | None
    cometbft_pid: int | None
    height: int | None
    eth_rpc_url: str
    cometbft_rpc_url: str


class LogTail(Result):
    path: str
    lines: list[str]


class LocalnetLogs(Result):
    index: int
    app: LogTail
    cometbft: LogTail


class LocalnetDown(Result):
    root: str
    existed: bool = Field(description="whether there was a localnet")
    stopped: list[int] = Field(description="pids of the processes stopped")
    removed: bool = Field(description="whether the directory was deleted (--clean)")


# -- sahara light --------------------------------------------------------------------------


class TrustedHeader(Result):
    """The header the light client started from."""

    height: int
    hash: Hash32
    source: str = Field(description="where the trust came from (--trust-hash, first use)")


class LightHeader(Result):
    """A CometBFT header verified by CometBFT's light client from the trusted one
    (each line of ``light follow``)."""

    height: int
    hash: Hash32
    app_hash: Hash32 | None = Field(description="the state root of EVM block height - 1")
    state_root_of_block: int = Field(description="the EVM block whose state root app_hash is")
    produced_at: Timestamp = Field(description="the header's time")
    cometbft_chain_id: str = Field(description="CometBFT's chain id (a name)")
    validators_hash: Hash32 | None
    verified: Literal[True] = True


class LightHead(LightHeader):
    """The newest verified header (``light head``)."""

    trusted: TrustedHeader


class LightAccount(Result):
    """An account's balance, nonce and storage slots, proven against a verified state root."""

    address: Address
    block: int = Field(description="the EVM block")
    balance_wei: Wei
    balance_sah: Sah = ""
    nonce: int
    storage_hash: Hash32
    code_hash: Hash32
    storage: dict[str, str] = Field(description="slot (0x-hex) to value (0x-hex)")
    state_root: Hash32
    header: LightHeader
    trusted: TrustedHeader
    verified: Literal[True] = True
