"""The pid, runtime and listen checks the home's background servers share."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from sahara_cli.procutil import listen_error, live_pid, read_runtime


def test_live_pid_is_the_running_process_and_none_for_a_gone_or_garbled_one(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "x.pid"
    assert live_pid(pid_file) is None
    pid_file.write_text(f"{os.getpid()}\n")
    assert live_pid(pid_file) == os.getpid()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pid_file.write_text(gone)
    assert live_pid(pid_file) is None
    pid_file.write_text("not a pid")
    assert live_pid(pid_file) is None


def test_read_runtime_takes_only_a_whole_json_object(tmp_path: Path) -> None:
    runtime = tmp_path / "x.json"
    assert read_runtime(runtime) is None
    runtime.write_text('{"pid": 7')
    assert read_runtime(runtime) is None
    runtime.write_text("[1, 2]")
    assert read_runtime(runtime) is None
    runtime.write_text('{"pid": 7}')
    assert read_runtime(runtime) == {"pid": 7}


def test_listen_error_names_a_taken_port_and_none_for_a_free_one() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        error = listen_error("127.0.0.1", port)
        assert isinstance(error, OSError)
    assert listen_error("127.0.0.1", port) is None
