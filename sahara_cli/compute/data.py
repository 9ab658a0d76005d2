"""Training data from the vault, behind the chain's licence check.

Every dataset of a job is checked on chain *before* any of them is decrypted: the trainer
must own it, or hold a Full-Access, Long-term or Partnership license that is valid now by
the chain's clock and the wall clock (an API license pays for answers, not for the data).
Only then is each one's plaintext read through the vault and cut into training records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sahara_cli.errors import (
    NoTrainingData,
    TrainingNotLicensed,
    VaultLicenseExpired,
    VaultNoLicense,
)

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.vault.core import Vault
    from sahara_cli.vault.db import Item

#: The most plaintext one dataset may bring into a training run.
MAX_DATASET_BYTES = 256 << 20


@dataclass(frozen=True)
class Dataset:
    """One dataset's training records, with where they came from."""

    asset_id: int
    name: str
    records: list[str]
    size: int
    sha256: str


def check_training_access(proto: Protocol, asset_ids: Sequence[int], user: str) -> None:
    """Refuse, before anything is read, a dataset ``user`` may not train on."""
    from sahara_cli.vault.access import check_access

    for asset_id in asset_ids:
        owner = proto.asset(asset_id).owner  # protocol.asset_not_found for an unknown id
        try:
            check_access(proto, asset_id, user, owner)
        except (VaultNoLicense, VaultLicenseExpired) as exc:
            api_only = exc.hint is not None and "API license" in exc.hint
            reason = "expired" if isinstance(exc, VaultLicenseExpired) else "none"
            if api_only:
                reason = "api-only"
            raise TrainingNotLicensed(
                f"cannot train on asset {asset_id}: {exc.message}"
                + (" (an API license serves answers, not the data)" if api_only else ""),
                details={"asset_id": asset_id, "reason": reason},
            ) from None


def split_records(text: str, name: str) -> list[str]:
    """Training records of a text: JSON Lines' ``text`` (or all string values), else
    paragraphs, else lines."""
    if name.endswith((".jsonl", ".ndjson")):
        records = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                records.append(line.strip())
                continue
            if isinstance(value, dict):
                if isinstance(value.get("text"), str):
                    records.append(value["text"])
                else:
                    records.append(" ".join(str(v) for v in value.values() if isinstance(v, str)))
            elif isinstance(value, str):
                records.append(value)
        return [r for r in records if r.strip()]
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    if len(paragraphs) > 1:
        return paragraphs
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Plaintext:
    """One dataset's files, decrypted, with where they came from."""

    asset_id: int
    name: str
    kind: str
    files: list[tuple[str, bytes]]
    sha256: str

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.files)


def read_plaintexts(
    vault: Vault,
    proto: Protocol,
    asset_ids: Sequence[int],
    unlock: Callable[[], Signer],
) -> list[Plaintext]:
    """The plaintext files of each dataset, read through the vault once the chain allows
    it (a dataset this vault lacks is fetched from its owner's vault server)."""
    import hashlib

    from sahara_cli.errors import UsageError
    from sahara_cli.vault.licensed import check_still_licensed, open_key

    who = unlock()
    check_training_access(proto, asset_ids, who.address)
    items = [_held_or_fetched(vault, proto, asset_id, who) for asset_id in asset_ids]
    out = []
    for asset_id, item in zip(asset_ids, items, strict=True):
        if item.size > MAX_DATASET_BYTES:
            raise UsageError(f"asset {asset_id} is over {MAX_DATASET_BYTES >> 20} MiB")
        if item.origin == "licensed":
            check_still_licensed(proto, item)
        files = _plaintext_files(vault, item, open_key(vault, item, lambda: who))
        digest = hashlib.sha256()
        for _, data in files:
            digest.update(data)
        out.append(Plaintext(asset_id, item.name, item.kind, files, "0x" + digest.hexdigest()))
    return out


def read_datasets(
    vault: Vault,
    proto: Protocol,
    asset_ids: Sequence[int],
    unlock: Callable[[], Signer],
) -> list[Dataset]:
    """The records of each dataset, read through the vault once the chain allows it."""
    out = []
    for plain in read_plaintexts(vault, proto, asset_ids, unlock):
        records: list[str] = []
        for name, data in plain.files:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                if plain.kind == "file":
                    raise NoTrainingData(
                        f"asset {plain.asset_id} ({plain.name}) is not UTF-8 text",
                        details={"asset_id": plain.asset_id},
                    ) from None
                continue  # a binary file in a folder dataset: not text to train on
            records += split_records(text, name)
        if not records:
            raise NoTrainingData(
                f"asset {plain.asset_id} ({plain.name}) holds no text",
                details={"asset_id": plain.asset_id},
            )
        out.append(Dataset(plain.asset_id, plain.name, records, plain.size, plain.sha256))
    return out


def _plaintext_files(vault: Vault, item: Item, key: bytes | None) -> list[tuple[str, bytes]]:
    """``(name, plaintext)`` of a file item, or of every file of a folder item in path
    order (written out to a private temporary folder, removed at once)."""
    import tempfile
    from pathlib import Path

    if item.kind == "file":
        parts: list[bytes] = []
        vault.stream(item, key, parts.append)
        return [(item.name, b"".join(parts))]
    with tempfile.TemporaryDirectory(prefix="sahara-train-") as tmp:
        folder = vault.write_out(item, key, Path(tmp) / "data")
        return [
            (str(path.relative_to(folder)), path.read_bytes())
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        ]


def _held_or_fetched(vault: Vault, proto: Protocol, asset_id: int, who: Signer) -> Item:
    """The vault's item of ``asset_id``; one this vault lacks is fetched from its owner's
    vault server (the asset's URI), which checks the license on chain before it releases
    the key."""
    from sahara_cli.errors import VaultItemNotFound
    from sahara_cli.vault.licensed import fetch_licensed

    try:
        return vault.find(f"asset:{asset_id}")
    except VaultItemNotFound:
        return fetch_licensed(vault, proto, asset_id, who)
