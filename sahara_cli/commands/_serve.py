"""Helpers shared by the commands that start a server (agent serve, mcp serve)."""

from __future__ import annotations

from sahara_cli.errors import AgentPortInUse, UsageError


def check_port(host: str, port: int) -> None:
    """Fail with a clear error, before anything is loaded, when ``host:port`` cannot be
    bound (a name that does not resolve, a port in use)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UsageError(f"cannot resolve {host}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise AgentPortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None
