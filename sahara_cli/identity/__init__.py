"""Sahara ID: keys, keystores, signatures.

``KeyStore`` manages the encrypted keys of a home; ``Signer`` is an unlocked key that
signs EIP-191 messages, EIP-712 documents and (later) transactions, and exposes the
secp256k1 public key the vault wraps data keys to.

What ``sahara id`` does is in :mod:`sahara_cli.identity.manage` (the life of an ID) and
:mod:`sahara_cli.identity.signing` (EIP-191 and EIP-712), returning the typed results of
:mod:`sahara_cli.identity.results`.
"""

from sahara_cli.identity.keys import Signer
from sahara_cli.identity.store import IdentityInfo, KeyStore

__all__ = ["IdentityInfo", "KeyStore", "Signer"]
