"""The context the built-in tools run in: the home, the agent's ID, the vault and the
chain, opened on first use (:class:`ToolContext`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sahara_cli.errors import NodeUnreachable, SaharaError

if TYPE_CHECKING:
    from sahara_cli.agent.spec import AgentSpec
    from sahara_cli.config import VaultSection
    from sahara_cli.identity.keys import Signer
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.db import Item
    from sahara_cli.vault.index import VaultIndex

log = logging.getLogger("sahara.agent")

CHAIN_RECHECK = 30.0  # seconds before an unreachable node is tried again


@dataclass
class ToolContext:
    """What built-in tools work with: the home, the agent's ID, the vault and the chain.

    Handles are opened on first use and closed by :meth:`close`. ``signer`` (the
    unlocked agent ID) lets searches open the text of private items the ID holds;
    without it only public text is shown. ``scopes`` and ``policy`` default to the
    spec's ``vault.scopes`` and ``license.policy``. ``rpc_url`` None means the node
    configured for the home. ``open_private`` False never opens private text (the MCP
    server uses it: private text leaves only through the license gate of ``vault_read``).
    """

    home_root: Path
    rpc_url: str | None = None
    signer: Signer | None = None
    spec: AgentSpec | None = None
    vault_config: VaultSection | None = None
    address: str | None = None
    scopes: list[str] | None = None
    policy: str | None = None
    open_private: bool = True
    #: When set, a private item's text is opened only if it returns True for the item
    #: (``agent serve`` uses it: private text reaches callers only as the spec allows).
    may_open: Callable[[Item], bool] | None = None
    node_timeout: float = 10.0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _vault: Vault | None = field(default=None, init=False, repr=False)
    _index: VaultIndex | None = field(default=None, init=False, repr=False)
    _node: NodeClient | None = field(default=None, init=False, repr=False)
    _protocol: Protocol | None = field(default=None, init=False, repr=False)
    _chain_failed_at: float | None = field(default=None, init=False, repr=False)
    _access: dict[tuple[int, str], tuple[bool, float]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.scopes is None:
            self.scopes = list(self.spec.vault.scopes) if self.spec is not None else []
        if self.policy is None:
            self.policy = self.spec.license.policy if self.spec is not None else "owned-or-licensed"
        if self.vault_config is None or self.rpc_url is None:
            from sahara_cli.config import load_config
            from sahara_cli.home import Home

            cfg = load_config(Home(self.home_root).config_file).config
            if self.vault_config is None:
                self.vault_config = cfg.vault
            if self.rpc_url is None:
                self.rpc_url = cfg.node.rpc_url
                self.node_timeout = cfg.node.timeout
        if self.address is None:
            self.address = self._own_address()

    def _own_address(self) -> str | None:
        if self.signer is not None:
            return self.signer.address
        from sahara_cli.errors import IdentityError

        try:
            from sahara_cli.config import load_config
            from sahara_cli.home import Home
            from sahara_cli.identity.store import KeyStore

            home = Home(self.home_root)
            cfg = load_config(home.config_file).config
            store = KeyStore(
                home.keystore_dir, config_path=home.config_file, default=cfg.identity.default
            )
            identity = self.spec.identity if self.spec is not None else None
            return store.resolve(identity).address
        except IdentityError:
            return None

    # -- handles ---------------------------------------------------------------------

    def vault(self) -> Vault:
        with self.lock:
            if self._vault is None:
                from sahara_cli.vault.backends import open_vault

                assert self.vault_config is not None
                self._vault = open_vault(self.home_root, self.vault_config)
            return self._vault

    def index(self) -> VaultIndex:
        with self.lock:
            if self._index is None:
                from sahara_cli.vault.backends import vault_root
                from sahara_cli.vault.search import open_index

                assert self.vault_config is not None
                self._index = open_index(vault_root(self.home_root), self.vault_config.embedder)
            return self._index

    def node(self) -> NodeClient:
        """A client of the node; raises :class:`NodeUnreachable` when none answers."""
        with self.lock:
            if self._node is None:
                from sahara_cli.node.process import require_reachable

                if not self.rpc_url:
                    raise NodeUnreachable("no node is configured (node.rpc_url is empty)")
                self._node = require_reachable(self.rpc_url, self.node_timeout)
            return self._node

    def protocol(self) -> Protocol:
        """The protocol contracts on the node (raises when none answers or none is deployed)."""
        with self.lock:
            if self._protocol is None:
                from sahara_cli.protocol.client import Protocol

                proto = Protocol(self.node())
                proto.ensure_deployed()
                self._protocol = proto
            return self._protocol

    def chain(self) -> Protocol | None:
        """The protocol, or None while the node is unreachable (tried again after a while)."""
        with self.lock:
            if self._protocol is not None:
                return self._protocol
            now = time.monotonic()
            if self._chain_failed_at is not None and now - self._chain_failed_at < CHAIN_RECHECK:
                return None
            try:
                return self.protocol()
            except SaharaError as exc:
                log.info("license checks fall back to local ownership: %s", exc.message)
                self._chain_failed_at = now
                self._node = None
                return None

    def has_access(self, asset_id: int, address: str) -> bool | None:
        """Whether ``address`` holds any license to the asset (cached briefly); None
        when no node answers."""
        key = (asset_id, address.lower())
        with self.lock:
            cached = self._access.get(key)
            if cached is not None and time.monotonic() - cached[1] < CHAIN_RECHECK:
                return cached[0]
            proto = self.chain()
            if proto is None:
                return None
            try:
                owner = proto.asset(asset_id).owner
                allowed = owner.lower() == address.lower() or proto.has_access(asset_id, address, 0)
            except SaharaError as exc:
                log.info("license check of asset %s failed: %s", asset_id, exc.message)
                return None
            self._access[key] = (allowed, time.monotonic())
            return allowed

    def close(self) -> None:
        with self.lock:
            index, self._index = self._index, None
            vault, self._vault = self._vault, None
            node, self._node = self._node, None
            self._protocol = None
        if index is not None:
            index.close()
        if vault is not None:
            vault.close()
        if node is not None:
            node.close()

    def __enter__(self) -> ToolContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
