"""The streaming safetensors reader and writer the merge uses, against the reference."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file
from safetensors.torch import save_file as save_torch

from sahara_cli.compute.safetensors_io import (
    SafetensorsFile,
    bf16_to_f32,
    f32_to_bf16,
    write_streaming,
)
from sahara_cli.errors import ComputeModelInvalid


def test_bfloat16_conversion_rounds_as_torch_does() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.standard_normal(10_000).astype(np.float32) * 10.0 ** rng.integers(-30, 30, 10_000),
            np.array(
                [0.0, -0.0, np.inf, -np.inf, 3.4e38, 1e-45, 1.00390625, 1.01171875], np.float32
            ),
        ]
    )
    ours = f32_to_bf16(values)
    theirs = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(ours, theirs)
    assert np.isnan(bf16_to_f32(f32_to_bf16(np.array([np.nan], np.float32)))).all()
    exact = torch.from_numpy(values).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(bf16_to_f32(theirs), exact)


def test_a_streamed_file_reads_back_with_the_reference_reader(tmp_path: Path) -> None:
    tensors = {
        "b.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "a.scalar": np.array(2.5, dtype=np.float64),
        "c.empty": np.zeros((0, 3), dtype=np.float16),
        "d.ids": np.array([1, 2, 3], dtype=np.int64),
    }
    layout = [
        (
            n,
            {"float32": "F32", "float64": "F64", "float16": "F16", "int64": "I64"}[str(v.dtype)],
            v.shape,
        )
        for n, v in tensors.items()
    ]
    count = write_streaming(
        tmp_path / "x.safetensors", layout, iter(tensors.items()), {"format": "pt"}
    )
    assert count == 12 + 1 + 0 + 3
    back = load_file(str(tmp_path / "x.safetensors"))
    for name, value in tensors.items():
        np.testing.assert_array_equal(back[name], value)
        assert back[name].dtype == value.dtype
    with SafetensorsFile(tmp_path / "x.safetensors") as f:
        assert f.metadata == {"format": "pt"}
        np.testing.assert_array_equal(f.float64("b.weight"), tensors["b.weight"])


def test_bfloat16_files_of_torch_read_exactly(tmp_path: Path) -> None:
    value = torch.randn(5, 7).to(torch.bfloat16)
    save_torch({"w": value}, str(tmp_path / "w.safetensors"))
    with SafetensorsFile(tmp_path / "w.safetensors") as f:
        np.testing.assert_array_equal(f.float64("w"), value.double().numpy())


def raw_file(path: Path, header: object, data: bytes) -> Path:
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


@pytest.mark.parametrize(
    ("header", "data"),
    [
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4),  # short
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),  # shape
        ({"w": {"dtype": "F9", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),  # dtype
        (
            {
                "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            },
            b"\0" * 8,
        ),  # overlap
        ({"w": {"dtype": "F32", "shape": [1]}}, b"\0" * 4),  # no offsets
        ([1, 2], b""),  # not an object
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, header: object, data: bytes) -> None:
    with pytest.raises(ComputeModelInvalid):
        SafetensorsFile(raw_file(tmp_path / "bad.safetensors", header, data))


def test_a_header_length_past_the_end_is_refused(tmp_path: Path) -> None:
    save_file({"w": np.ones(3, np.float32)}, str(tmp_path / "w.safetensors"))
    data = bytearray((tmp_path / "w.safetensors").read_bytes())
    data[:8] = struct.pack("<Q", 1 << 40)
    (tmp_path / "w.safetensors").write_bytes(bytes(data))
    with pytest.raises(ComputeModelInvalid, match="header length"):
        SafetensorsFile(tmp_path / "w.safetensors")
