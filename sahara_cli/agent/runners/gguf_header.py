"""A GGUF header read in one pass: the metadata and where every tensor's data lies.

What :func:`~sahara_cli.agent.runners.model_store.check_gguf` needs before llama.cpp
loads a file (the architecture and sizes, the chat template, and that every tensor lies
inside the file), without the ``gguf`` package: that one imports numpy and its own
modules (tens of milliseconds) and builds an object for every metadata element, every
token of the vocabulary included, which made the check cost more than the model's load
on a small model. Arrays of strings (vocabularies, merges) are skipped, not decoded.

The format (version 2 and 3, little-endian): the magic, the version, the tensor and
metadata counts, the metadata as (key, type, value), the tensor infos as (name, shape,
type, offset), then the data, aligned to ``general.alignment`` (32 by default).
A file this reader does not know (version 1, a tensor type newer than :data:`BLOCKS`)
raises :class:`Unsupported`, and the caller falls back to the ``gguf`` package.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BLOCKS", "Header", "Tensor", "Unsupported", "read_header"]

#: ggml tensor types: (elements per block, bytes per block), as ggml defines them (a test
#: holds this table equal to the ``gguf`` package's ``GGML_QUANT_SIZES``).
BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0
    9: (32, 40),  # Q8_1
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    15: (256, 292),  # Q8_K
    16: (256, 66),  # IQ2_XXS
    17: (256, 74),  # IQ2_XS
    18: (256, 98),  # IQ3_XXS
    19: (256, 50),  # IQ1_S
    20: (32, 18),  # IQ4_NL
    21: (256, 110),  # IQ3_S
    22: (256, 82),  # IQ2_S
    23: (256, 136),  # IQ4_XS
    24: (1, 1),  # I8
    25: (1, 2),  # I16
    26: (1, 4),  # I32
    27: (1, 8),  # I64
    28: (1, 8),  # F64
    29: (256, 56),  # IQ1_M
    30: (1, 2),  # BF16
    34: (256, 54),  # TQ1_0
    35: (256, 66),  # TQ2_0
    39: (32, 17),  # MXFP4
    40: (64, 36),  # NVFP4
    41: (128, 18),  # Q1_0
}

_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class Unsupported(Exception):
    """A GGUF this reader does not handle (the ``gguf`` package may)."""


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    type: int
    data_offset: int
    n_bytes: int


@dataclass(frozen=True)
class Header:
    version: int
    metadata: dict[str, Any]
    tensors: list[Tensor]


class _Cursor:
    def __init__(self, data: Any) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.take("<Q")
        end = self.at + length
        if end > len(self.data):
            raise ValueError("a string runs past the end of the file")
        text = bytes(self.data[self.at : end]).decode("utf-8", errors="replace")
        self.at = end
        return text

    def skip_string(self) -> None:
        length = self.take("<Q")
        self.at += length
        if self.at > len(self.data):
            raise ValueError("a string runs past the end of the file")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, count = self.take("<I"), self.take("<Q")
            if item == _STRING:  # a vocabulary or merges: skipped
                for _ in range(count):
                    self.skip_string()
                return None
            if item not in _SCALARS:
                raise Unsupported(f"an array of type {item}")
            fmt = _SCALARS[item]
            size = struct.calcsize(fmt)
            if self.at + size * count > len(self.data):
                raise ValueError("an array runs past the end of the file")
            values = list(struct.unpack_from(f"<{count}{fmt[1]}", self.data, self.at))
            self.at += size * count
            return values
        raise Unsupported(f"a metadata value of type {kind}")


def read_header(path: Path) -> Header:
    """The header of the GGUF at ``path``. Raises ``ValueError`` or ``struct.error`` for
    a damaged or truncated one, :class:`Unsupported` for one it does not know."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        cursor = _Cursor(data)
        if bytes(data[:4]) != b"GGUF":
            raise ValueError("not a GGUF file")
        cursor.at = 4
        version = cursor.take("<I")
        if version not in (2, 3):
            raise Unsupported(f"GGUF version {version}")
        tensor_count, kv_count = cursor.take("<Q"), cursor.take("<Q")
        metadata: dict[str, Any] = {}
        for _ in range(kv_count):
            key = cursor.string()
            metadata[key] = cursor.value(cursor.take("<I"))
        infos = []
        for _ in range(tensor_count):
            name = cursor.string()
            dims = cursor.take("<I")
            shape = tuple(cursor.take("<Q") for _ in range(dims))
            infos.append((name, shape, cursor.take("<I"), cursor.take("<Q")))
        alignment = metadata.get("general.alignment") or 32
        start = -(-cursor.at // alignment) * alignment
        tensors = []
        for name, shape, kind, offset in infos:
            if kind not in BLOCKS:
                raise Unsupported(f"tensor type {kind}")
            block, size = BLOCKS[kind]
            elements = 1
            for d in shape:
                elements *= d
            tensors.append(Tensor(name, shape, kind, start + offset, elements // block * size))
        return Header(version, metadata, tensors)
