"""Read and write safetensors files one tensor at a time, with numpy only.

The ``safetensors`` package reads lazily, but its numpy side cannot hold ``bfloat16``
(numpy has no such type) and it writes a whole dict at once. A merge needs both: most
published checkpoints are ``bfloat16``, and the merged model should be written tensor by
tensor, never whole in memory. The format is small (an 8-byte header length, a JSON
header of names, dtypes, shapes and byte ranges, then the bytes), so this module reads
it through ``mmap`` and writes it in one streaming pass. ``bfloat16`` is read as
``float32`` (exact) and written back with round-to-nearest-even, as torch does.

A file that does not follow the format (a truncated download, a bad header, ranges that
overlap or run past the end) raises :class:`ComputeModelInvalid` naming the file.
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from sahara_cli.errors import ComputeModelInvalid

#: safetensors dtype -> (numpy dtype of the stored bytes, is floating point).
DTYPES: dict[str, tuple[str, bool]] = {
    "F64": ("<f8", True),
    "F32": ("<f4", True),
    "F16": ("<f2", True),
    "BF16": ("<u2", True),
    "I64": ("<i8", False),
    "I32": ("<i4", False),
    "I16": ("<i2", False),
    "I8": ("i1", False),
    "U64": ("<u8", False),
    "U32": ("<u4", False),
    "U16": ("<u2", False),
    "U8": ("u1", False),
    "BOOL": ("?", False),
}
#: Largest header the reference implementation accepts (100 MB).
MAX_HEADER = 100_000_000


@dataclass(frozen=True)
class TensorInfo:
    """One entry of a header: the name, dtype, shape and byte range in the data."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def is_float(self) -> bool:
        return DTYPES[self.dtype][1]

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    """``bfloat16`` bits (uint16) -> float32, exactly."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> ``bfloat16`` bits (uint16), round to nearest even; NaN stays NaN."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + (((bits >> 16) & 1) + 0x7FFF)) >> 16
    nan = np.isnan(values)
    rounded = np.where(nan, (bits >> 16) | 0x40, rounded)
    return rounded.astype(np.uint16)


class SafetensorsFile:
    """A safetensors file opened for reading; tensors are views of a memory map."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._map: mmap.mmap | None = None
        try:
            self._file = path.open("rb")
            size = path.stat().st_size
            head = self._file.read(8)
            if len(head) < 8:
                self._bad("it is shorter than a safetensors header")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER or 8 + length > size:
                self._bad("its header length runs past the end of the file")
            try:
                header = json.loads(self._file.read(length))
            except (UnicodeDecodeError, json.JSONDecodeError):
                self._bad("its header is not JSON")
            self.data_start = 8 + length
            self.metadata, self.tensors = self._parse(header, size - self.data_start)
            if size > self.data_start:
                self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            self.close()
            raise ComputeModelInvalid(
                f"cannot read {path}: {exc.strerror or exc}", details={"path": str(path)}
            ) from exc
        except ComputeModelInvalid:
            self.close()
            raise

    def _bad(self, why: str) -> Any:
        raise ComputeModelInvalid(
            f"{self.path} is not a valid safetensors file: {why}",
            hint="the file is damaged or incomplete; download or save it again",
            details={"path": str(self.path)},
        )

    def _parse(self, header: Any, data_size: int) -> tuple[dict[str, str], dict[str, TensorInfo]]:
        if not isinstance(header, dict):
            self._bad("its header is not a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        tensors: dict[str, TensorInfo] = {}
        for name, entry in header.items():
            try:
                dtype, shape = entry["dtype"], tuple(int(d) for d in entry["shape"])
                begin, end = (int(o) for o in entry["data_offsets"])
            except (TypeError, KeyError, ValueError):
                self._bad(f"the header entry of {name!r} is malformed")
            if dtype not in DTYPES:
                self._bad(f"{name!r} has the dtype {dtype}, which merging does not handle")
            info = TensorInfo(name, dtype, shape, begin, end)
            itemsize = np.dtype(DTYPES[dtype][0]).itemsize
            if any(d < 0 for d in shape) or end - begin != info.numel * itemsize:
                self._bad(f"the byte range of {name!r} does not match its shape")
            tensors[name] = info
        position = 0
        for info in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
            if info.begin != position:
                self._bad("its tensors' byte ranges overlap or leave gaps")
            position = info.end
        if position != data_size:
            self._bad(f"its data holds {data_size} bytes where the header names {position}")
        return dict(metadata), tensors

    def raw(self, name: str) -> np.ndarray:
        """The tensor as stored (``bfloat16`` as its uint16 bits), a read-only view."""
        info = self.tensors[name]
        dtype = np.dtype(DTYPES[info.dtype][0])
        if info.numel == 0 or self._map is None:
            return np.zeros(info.shape, dtype=dtype)
        return np.frombuffer(
            self._map, dtype=dtype, count=info.numel, offset=self.data_start + info.begin
        ).reshape(info.shape)

    def float64(self, name: str) -> np.ndarray:
        """A floating-point tensor as a new float64 array."""
        raw = self.raw(name)
        if self.tensors[name].dtype == "BF16":
            return bf16_to_f32(raw).astype(np.float64)
        return raw.astype(np.float64)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode(values: np.ndarray, dtype: str) -> bytes:
    """A tensor's bytes in a safetensors dtype (floats are rounded to it)."""
    if dtype == "BF16":
        return f32_to_bf16(values.astype(np.float32)).tobytes()
    return np.ascontiguousarray(values, dtype=np.dtype(DTYPES[dtype][0])).tobytes()


def write_streaming(
    path: Path,
    layout: Iterable[tuple[str, str, tuple[int, ...]]],
    tensors: Iterator[tuple[str, np.ndarray]],
    metadata: dict[str, str] | None = None,
) -> int:
    """Write a safetensors file whose tensors come one by one, in ``layout``'s order.

    ``layout`` gives each (name, dtype, shape) up front, so the header (byte ranges
    included) is written first and each tensor's bytes follow as ``tensors`` yields
    them. Returns the number of elements written.
    """
    entries: dict[str, Any] = {}
    order: list[tuple[str, str, tuple[int, ...]]] = []
    offset = 0
    for name, dtype, shape in layout:
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[dtype][0]).itemsize
        entries[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        order.append((name, dtype, shape))
        offset += size
    if metadata:
        entries = {"__metadata__": metadata, **entries}
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    count = 0
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(header)))
        out.write(header)
        for name, dtype, shape in order:
            got_name, values = next(tensors)
            if got_name != name or tuple(values.shape) != shape:
                raise AssertionError(f"tensor {got_name} came in place of {name}")
            out.write(encode(values, dtype))
            count += values.size
    return count
