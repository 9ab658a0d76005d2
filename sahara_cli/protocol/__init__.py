"""Sahara Blockchain Protocols: asset registry, receipts, licensing and attribution.

Vyper contracts in ``contracts/`` (predeployed by every sahara genesis at the addresses
in ``contracts/deployment.json``) and typed clients that build, sign, send and decode
their transactions.
"""
