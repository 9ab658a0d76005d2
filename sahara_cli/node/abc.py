"""What the layers of the node need from each other, declared once (py-evm's ``eth/abc.py``).

The JSON-RPC layer (:mod:`sahara_cli.node.rpc`) serves any :class:`NodeAPI`. Two drivers
implement it:

- :class:`sahara_cli.node.producer.Node`, the solo node: its own mempool and block
  producer; it is also a :class:`DevNodeAPI` (mining on demand, snapshots, balances and
  the clock for tests), which the ``sahara_dev_*`` / ``evm_*`` / ``anvil_*`` methods use;
- :class:`sahara_cli.node.abci.rpc.AppNode`, a CometBFT validator's application:
  transactions go to CometBFT's mempool, blocks come when CometBFT commits them.

Both read the chain through :class:`~sahara_cli.node.state.ChainView` and never hand the
RPC layer their store, mempool or consensus engine. ``tests/unit/test_node_drivers.py``
holds the conformance tests both pass.

Below them, the state machine (:mod:`sahara_cli.node.state`) needs from an EVM exactly
what py-evm declares in its own ``eth.abc`` (``VirtualMachineAPI``, ``StateAPI``); there
is one EVM, so no second interface is declared here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eth.abc import SignedTransactionAPI

    from sahara_cli.node.mempool import PoolContent
    from sahara_cli.node.state import BlockResult, ChainView

__all__ = ["BlockListener", "DevNodeAPI", "NodeAPI", "ProductionStats"]

#: Called with every committed block, on the thread that committed it.
BlockListener = Callable[["BlockResult"], None]


class ProductionStats(ABC):
    """How many blocks and transactions a node has committed since it started."""

    #: Unix time the node started.
    started: float
    blocks: int
    txs: int

    @abstractmethod
    def record(self, txs: int) -> None:
        """Count one committed block holding ``txs`` transactions."""

    @abstractmethod
    def tx_per_second(self, window: float = 10.0) -> float:
        """Transactions a second committed over the last ``window`` seconds."""


class NodeAPI(ABC):
    """A running chain node as the JSON-RPC layer sees it."""

    #: Blocks and transactions committed since the node started (``sahara_nodeInfo``).
    stats: ProductionStats

    @property
    @abstractmethod
    def chain_id(self) -> int:
        """The EIP-155 chain id."""

    @property
    @abstractmethod
    def dev(self) -> bool:
        """Whether this is a development chain (dev keys sign, ``sahara_dev_*`` exist)."""

    @property
    @abstractmethod
    def validator_address(self) -> str:
        """The checksummed address of the validator that signs this node's blocks."""

    @property
    @abstractmethod
    def block_time(self) -> float:
        """Seconds between blocks; 0 when blocks come with transactions (or consensus)."""

    # -- reads -----------------------------------------------------------------------------

    @abstractmethod
    def view(self) -> ChainView:
        """A read-only view of the committed chain, safe on any thread."""

    @abstractmethod
    def subscribe(self, listener: BlockListener) -> Callable[[], None]:
        """Call ``listener`` after every committed block; returns the unsubscribe call."""

    # -- transactions ------------------------------------------------------------------------

    @abstractmethod
    def submit(self, raw: bytes) -> bytes:
        """Check a signed transaction and hand it to the mempool; returns its hash.

        Refusals are :class:`~sahara_cli.errors.TxInvalid` or a
        :class:`~sahara_cli.errors.MempoolError`, with geth's words as ``message``.
        """

    @abstractmethod
    def pending_nonce(self, address: bytes) -> int:
        """The next nonce of ``address``, counting its transactions still pooled."""

    @abstractmethod
    def pending_transaction(self, tx_hash: bytes) -> SignedTransactionAPI | None:
        """A transaction waiting in the mempool (None once mined, or if unknown)."""

    @abstractmethod
    def pool_status(self) -> dict[str, int]:
        """``{"pending": n, "queued": m}``, as ``txpool_status`` reports them."""

    @abstractmethod
    def pool_content(self) -> PoolContent:
        """``{"pending"|"queued": {sender: {nonce: tx}}}``, as ``txpool_content`` has it."""


class DevNodeAPI(NodeAPI):
    """A node that also takes orders for tests: mine now, snapshot, revert, set a balance,
    move the clock. Only development chains serve these methods over RPC."""

    #: With block time 0: mine as soon as transactions wait (False holds them for ``mine``).
    automine: bool

    @abstractmethod
    def mine(self, blocks: int = 1, timestamp: int | None = None) -> list[BlockResult]:
        """Build ``blocks`` blocks now (the first at ``timestamp`` if given)."""

    @abstractmethod
    def snapshot(self) -> int:
        """Remember the current head; returns the id :meth:`revert` takes."""

    @abstractmethod
    def revert(self, snapshot: int) -> bool:
        """Go back to the head of ``snapshot`` (and forget later snapshots)."""

    @abstractmethod
    def set_balance(self, address: bytes, balance: int) -> BlockResult:
        """Give ``address`` exactly ``balance`` wei, in a block of its own."""

    @property
    @abstractmethod
    def time_offset(self) -> int:
        """Seconds the dev clock runs ahead of the wall clock."""

    @abstractmethod
    def increase_time(self, seconds: int) -> int:
        """Move the clock of later blocks forward; returns the total offset."""
