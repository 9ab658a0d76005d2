"""What the background servers of a home share: their pid file, their runtime file, and
whether an address can be listened on.

A bottom-layer module (standard library only), used by the node's process helpers and by
``vault serve --detach``.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

__all__ = ["listen_error", "live_pid", "read_runtime"]


def live_pid(pid_file: Path) -> int | None:
    """The pid written in ``pid_file`` when that process is alive, else None (a missing,
    unreadable or stale pid file is no process)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, but another user's
        return pid
    return pid


def read_runtime(runtime_file: Path) -> dict[str, Any] | None:
    """The JSON object a running server wrote about itself, or None when absent or torn."""
    try:
        data = json.loads(runtime_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def listen_error(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on now, or None when it can (with the servers'
    own SO_REUSEADDR, so a port in TIME_WAIT is not refused)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError as exc:
            return exc
    return None
