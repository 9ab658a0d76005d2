"""The Sahara chain node: py-evm state machine, LMDB store, mempool, solo PoS producer,
JSON-RPC server and client. Layers, top to bottom: ``rpc`` -> ``producer`` (mempool and
the solo block producer) or ``abci`` (the CometBFT application) -> ``state`` (the state
machine) -> ``store`` (LMDB). ``abc`` declares what the RPC layer needs from a node;
``process`` starts, stops and finds a node's process."""

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
