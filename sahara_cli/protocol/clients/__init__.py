"""One small typed client per protocol contract, each usable on its own.

``AssetRegistryClient(node)`` and its siblings read with ``eth_call`` and write through a
:class:`~sahara_cli.protocol.sender.Sender`; :class:`~sahara_cli.protocol.client.Protocol`
composes them over one node and one sender. Modules here import the codec
(``protocol.abi``), the sender, the values and ``node.client``; never each other, except
``base`` (and ``saps``, the base of the SAPs' clients).
"""

from __future__ import annotations

from sahara_cli.protocol.clients.asset_registry import AssetRegistryClient
from sahara_cli.protocol.clients.attribution import AttributionClient
from sahara_cli.protocol.clients.base import Contract, ContractClient
from sahara_cli.protocol.clients.licensing import LicensingClient
from sahara_cli.protocol.clients.provenance import ProvenanceClient
from sahara_cli.protocol.clients.receipts import ReceiptsClient

#: Every deployed contract's client, by contract name.
CLIENTS: dict[str, type[ContractClient]] = {
    "AssetRegistry": AssetRegistryClient,
    "Receipts": ReceiptsClient,
    "Licensing": LicensingClient,
    "Attribution": AttributionClient,
    "Provenance": ProvenanceClient,
}

__all__ = [
    "CLIENTS",
    "AssetRegistryClient",
    "AttributionClient",
    "Contract",
    "ContractClient",
    "LicensingClient",
    "ProvenanceClient",
    "ReceiptsClient",
]
