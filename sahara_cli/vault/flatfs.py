"""The local store's first layout, one file per block (as Kubo's flatfs lays them out).

Homes made before pack files keep their blocks here::

    root/blocks/SHARDING              "/repo/flatfs/shard/v1/next-to-last/2"
    root/blocks/<XY>/<KEY>.data       one block; KEY = base32 of its multihash, XY = KEY[-3:-1]

:class:`~sahara_cli.vault.local.LocalBlockstore` still reads them, and ``gc`` moves the
ones a pin holds into a pack and deletes the rest; nothing writes here any more.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

from sahara_cli.vault.cid import CID, RAW, SHA2_256

SHARDING = "/repo/flatfs/shard/v1/next-to-last/2\n"
BLOCK_SUFFIX = ".data"
TEMP_PREFIX = ".tmp-"
_MH_PREFIX = bytes((SHA2_256, 32))


def block_key(cid: CID) -> str:
    """The flatfs key of a block: base32 (upper case, no padding) of its multihash."""
    return base64.b32encode(cid.multihash).decode("ascii").rstrip("=")


def block_path(blocks_dir: Path, cid: CID) -> Path:
    """Where flatfs (``next-to-last/2``) keeps ``cid``: ``blocks/<KEY[-3:-1]>/<KEY>.data``."""
    key = block_key(cid)
    return blocks_dir / key[-3:-1] / (key + BLOCK_SUFFIX)


def cid_from_key(key: str) -> CID | None:
    """The CIDv1 raw of a flatfs key, or None for a name that is not a sha2-256 key."""
    try:
        multihash = base64.b32decode(key + "=" * (-len(key) % 8))
    except ValueError:
        return None
    if len(multihash) != 34 or not multihash.startswith(_MH_PREFIX):
        return None
    return CID(RAW, multihash[2:])


def entries(blocks_dir: Path) -> Iterator[tuple[os.DirEntry[str], CID | None]]:
    """Every file in the shard folders: ``(entry, cid)``, cid None for non-blocks."""
    try:
        shards = [e for e in os.scandir(blocks_dir) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    for shard in shards:
        try:
            found = list(os.scandir(shard.path))
        except FileNotFoundError:
            continue
        for entry in found:
            name = entry.name
            cid = None
            if name.endswith(BLOCK_SUFFIX) and not name.startswith("."):
                cid = cid_from_key(name[: -len(BLOCK_SUFFIX)])
            yield entry, cid
