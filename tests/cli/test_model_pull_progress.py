"""model pull shows the download and the check as byte counts: the total is known, so
the CLI's bar has an ETA; the hub's own tqdm bar is never drawn."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sahara_cli.agent.runners.model_store import ModelStore
from tests.cli.test_model_cli import _HubDouble

pytest_plugins = ("tests.agent_models",)


class Recorder:
    def __init__(self) -> None:
        self.bars: list[tuple[str, int | None, int]] = []
        self.statuses: list[str] = []

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        done = [0]

        def advance(n: int) -> None:
            done[0] += n

        yield advance
        self.bars.append((description, total, done[0]))

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:
        self.statuses.append(message)
        yield lambda _m: None


def test_pull_reports_the_download_and_the_check_in_bytes(
    tiny_gguf: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    hub = _HubDouble("owner/tiny-GGUF", "tiny.gguf", tiny_gguf.read_bytes())
    try:
        report = Recorder()
        ModelStore(tmp_path / "home").pull(
            "owner/tiny-GGUF", "tiny.gguf", endpoint=hub.url, report=report
        )
    finally:
        hub.close()
    size = len(hub.data)
    assert ("Downloading tiny.gguf", size, size) in report.bars
    assert ("Checking", size, size) in report.bars
    assert report.statuses == ["Asking the hub for tiny.gguf"]
    assert "tiny.gguf" not in capfd.readouterr().err  # no tqdm bar of the hub's own
