"""The Sahara chain node: py-evm state machine, LMDB store, mempool, solo PoS producer,
JSON-RPC server and client. Layers, top to bottom: ``rpc`` -> ``service`` (mempool,
producer) -> ``state`` (the state machine) -> ``store`` (LMDB)."""

import os as _os

# py-evm hashes with eth-hash, which prefers pycryptodome's keccak (about 7 us a hash in
# ctypes) when both are installed; safe-pysha3's C keccak takes about 1.2 us. Pick it
# before eth-hash is first imported, unless the user chose a backend.
try:
    import sha3 as _sha3  # noqa: F401  # safe-pysha3
except ImportError:  # pragma: no cover - the dependency is pinned
    pass
else:
    _os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
