"""The Sahara chain node: py-evm state machine, LMDB store, mempool, solo PoS producer,
JSON-RPC server and client. Layers, top to bottom: ``rpc`` -> ``service`` (mempool,
producer) -> ``state`` (the state machine) -> ``store`` (LMDB)."""
