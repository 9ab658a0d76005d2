"""The one block storage API the vault is written against.

Two implementations share it and one conformance test class
(``tests/unit/test_vault_blockstore.py``): :class:`sahara_cli.vault.local.LocalBlockstore`
(pack files under the home, no daemon) and :class:`sahara_cli.vault.kubo.KuboBlockstore`
(a real IPFS node over Kubo's HTTP RPC API).

Blocks are immutable and addressed by their CID, so ``put`` is idempotent and safe to
repeat after a crash. ``get`` always checks the bytes against the CID. A block is
durable once :meth:`Blockstore.sync` or :meth:`Blockstore.pin` returns. Pins are
recursive: a pinned root keeps every block below it through ``gc``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType

from sahara_cli.vault.cid import CID


@dataclass(frozen=True)
class StoreStat:
    blocks: int
    bytes: int
    location: str


@dataclass(frozen=True)
class GCResult:
    removed_blocks: int
    removed_bytes: int


class Blockstore(ABC):
    """Content-addressed block storage with recursive pins and garbage collection."""

    name: str = "abstract"

    @abstractmethod
    def put(self, cid: CID, data: bytes) -> None:
        """Store ``data`` under ``cid``. The caller computed ``cid`` from ``data``."""

    def put_many(self, blocks: Iterable[tuple[CID, bytes]]) -> None:
        """Store many blocks; backends may batch (Kubo sends one CAR per batch)."""
        for cid, data in blocks:
            self.put(cid, data)

    def sync(self) -> None:  # noqa: B027 - a backend that syncs on put has nothing to do
        """Make every block put so far durable (fsynced). ``pin`` syncs before it
        records the pin, so a pinned root never names a block a power cut can lose."""

    @abstractmethod
    def get(self, cid: CID) -> bytes:
        """The block's bytes, checked against ``cid``.

        Raises :class:`~sahara_cli.errors.VaultBlockNotFound` or
        :class:`~sahara_cli.errors.VaultBlockCorrupt`.
        """

    @abstractmethod
    def has(self, cid: CID) -> bool: ...

    @abstractmethod
    def delete(self, cid: CID) -> None:
        """Remove one block (no error when it is absent)."""

    @abstractmethod
    def cids(self) -> Iterator[CID]:
        """Every stored block's CID, in no particular order."""

    @abstractmethod
    def pin(self, root: CID) -> None:
        """Pin ``root`` and everything below it; every block must be present."""

    @abstractmethod
    def unpin(self, root: CID) -> None:
        """Drop the pin on ``root`` (no error when it was not pinned)."""

    @abstractmethod
    def pins(self) -> list[CID]:
        """The roots pinned directly."""

    @abstractmethod
    def gc(self, *, dry_run: bool = False) -> GCResult:
        """Delete every block not reachable from a pin (``dry_run``: only count them)."""

    @abstractmethod
    def stat(self) -> StoreStat: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files or connections."""

    def __enter__(self) -> Blockstore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
