"""SAPs: the Sahara AI-native precompiles, the node's own code at fixed addresses.

=================  ==============================================  =====================
SAP                address                                         what it records
=================  ==============================================  =====================
TrainingRecord     ``0x5a4a000000000000000000000000000000000100``  training and merge jobs
InferenceRecord    ``0x5A4A000000000000000000000000000000000101``  served answers, metered
DisputeGame        ``0x5a4a000000000000000000000000000000000102``  claims, bisection, one step
=================  ==============================================  =====================

They run inside the EVM of every driver (the solo node and each CometBFT validator run
the same state machine), so a transaction, an ``eth_call`` or a contract calls them
like any contract, through the ABI of :func:`abi`. This package may import ``identity``
(hashing) and py-evm, never ``protocol`` (the addresses of the contracts they call are
constants here, checked against the deployment manifest by a test).
"""

from __future__ import annotations

from typing import Any

from sahara_cli.node.saps import dispute, inference, training
from sahara_cli.node.saps.base import SAP

__all__ = ["ADDRESSES", "SAPS", "abi", "genesis_accounts", "precompiles"]

SAPS: dict[str, type[SAP]] = {
    "TrainingRecord": training.TrainingRecord,
    "InferenceRecord": inference.InferenceRecord,
    "DisputeGame": dispute.DisputeGame,
}
ADDRESSES: dict[str, bytes] = {name: cls.address for name, cls in SAPS.items()}


def precompiles() -> dict[bytes, SAP]:
    """Address to SAP instance, for the VM's precompile table."""
    return {cls.address: cls() for cls in SAPS.values()}


def abi(name: str) -> list[dict[str, Any]]:
    """The ABI of a SAP, as ``eth_abi``, web3.py and ethers.js read it."""
    return SAPS[name].abi()


def genesis_accounts(*, dev: bool) -> dict[bytes, dict[int, int]]:
    """Each SAP's storage in block 0 (its parameters); dev chains finalise jobs and
    time out moves sooner."""
    window = training.DEV_CHALLENGE_WINDOW if dev else training.DEFAULT_CHALLENGE_WINDOW
    return {
        training.ADDRESS: training.genesis_storage(challenge_window=window),
        inference.ADDRESS: {},
        dispute.ADDRESS: dispute.genesis_storage(
            challenge_window=dispute.DEV_CHALLENGE_WINDOW
            if dev
            else dispute.DEFAULT_CHALLENGE_WINDOW,
            move_timeout=dispute.DEV_MOVE_TIMEOUT if dev else dispute.DEFAULT_MOVE_TIMEOUT,
        ),
    }
