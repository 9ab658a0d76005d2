"""The node's Ethereum JSON-RPC server (HTTP and WebSocket on one port).

``server.py`` serves; ``dispatch.py`` runs requests; one module per namespace holds the
handlers (``eth``, ``net``, ``web3``, ``txpool``, ``debug``, ``sahara``), each named like
its wire method; ``format.py`` writes geth's JSON shapes; ``params.py`` parses params.
"""

from __future__ import annotations

from sahara_cli.node.rpc.context import ServerOptions
from sahara_cli.node.rpc.server import RPCServer, ServerHandle, serve_in_thread

__all__ = ["RPCServer", "ServerHandle", "ServerOptions", "serve_in_thread"]
