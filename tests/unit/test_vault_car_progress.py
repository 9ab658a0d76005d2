"""vault export and import report their bytes, so the CLI's bar has a total and an ETA."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from sahara_cli.vault.core import Holder, Vault
from sahara_cli.vault.items import export_item, import_items
from sahara_cli.vault.local import LocalBlockstore

OWNER = Holder("0x" + "11" * 20, b"")


class Recorder:
    def __init__(self) -> None:
        self.bars: dict[str, tuple[int | None, int]] = {}

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        done = [0]

        def advance(n: int) -> None:
            done[0] += n

        yield advance
        self.bars[description] = (total, done[0])

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:
        yield lambda _m: None


def test_export_and_import_count_their_bytes(tmp_path: Path) -> None:
    size = 3 << 20  # several blocks
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(size))
    with Vault(tmp_path / "a", LocalBlockstore(tmp_path / "a")) as vault:
        item, _ = vault.add(source, OWNER, public=True)
        report = Recorder()
        exported = export_item(vault, item.cid, tmp_path / "big.car", report)
    total, done = report.bars["Exporting"]
    assert total == size
    assert size <= done < exported.bytes  # every data byte, plus the DAG's nodes
    with Vault(tmp_path / "b", LocalBlockstore(tmp_path / "b")) as vault:
        report = Recorder()
        imported = import_items(vault, tmp_path / "big.car", OWNER.address, None, report)
    total, done = report.bars["Importing"]
    assert total == (tmp_path / "big.car").stat().st_size
    assert size <= done < total
    assert imported.items[0].cid == item.cid
