"""The one-pass GGUF header reader against the ``gguf`` package, the reference."""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np
import pytest

from sahara_cli.agent.runners import gguf_header
from sahara_cli.agent.runners.model_store import check_gguf

pytest_plugins = ("tests.agent_models",)  # the tiny_gguf fixture


def test_the_block_table_is_ggmls() -> None:
    theirs = {int(kind): sizes for kind, sizes in gguf.constants.GGML_QUANT_SIZES.items()}
    assert theirs == gguf_header.BLOCKS


def written(path: Path) -> Path:
    """A GGUF with every kind of metadata value and tensors of several types."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("header test")
    writer.add_context_length(4096)
    writer.add_uint8("t.u8", 7)
    writer.add_int32("t.i32", -5)
    writer.add_uint64("t.u64", 2**40)
    writer.add_float32("t.f32", 0.5)
    writer.add_float64("t.f64", -1.25)
    writer.add_bool("t.bool", True)
    writer.add_array("t.ints", [3, 1, 2])
    writer.add_array("t.words", ["a", "bé", "c" * 300])
    writer.add_string("tokenizer.chat_template", "{{ messages }}")
    writer.add_tensor("f32", np.arange(64, dtype=np.float32).reshape(8, 8))
    writer.add_tensor("f16", np.ones((3, 5), dtype=np.float16))
    quantized = np.zeros((4, 34), dtype=np.uint8)  # 4 rows of one Q8_0 block (32 values)
    writer.add_tensor("q8", quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("source", ["written", "tiny"])
def test_the_header_reads_as_the_gguf_package_reads_it(
    tmp_path: Path, tiny_gguf: Path, source: str
) -> None:
    path = written(tmp_path / "h.gguf") if source == "written" else tiny_gguf
    reference = gguf.GGUFReader(str(path))
    header = gguf_header.read_header(path)
    assert [(t.name, t.data_offset, t.n_bytes) for t in header.tensors] == [
        (t.name, int(t.data_offset), int(t.n_bytes)) for t in reference.tensors
    ]
    for key, field in reference.fields.items():
        if key.startswith("GGUF."):
            continue  # the reader's own pseudo-fields (version and counts)
        value = field.contents()
        if isinstance(value, list) and value and isinstance(value[0], str):
            assert header.metadata[key] is None  # arrays of strings are skipped
        elif isinstance(value, float):
            assert header.metadata[key] == pytest.approx(value)
        else:
            assert header.metadata[key] == value, key


def test_a_tensor_type_it_does_not_know_falls_back(tmp_path: Path) -> None:
    path = written(tmp_path / "h.gguf")
    data = bytearray(path.read_bytes())
    # The last tensor info (q8) ends with its type (u32) and offset (u64).
    header = gguf_header.read_header(path)
    q8 = header.tensors[-1]
    at = data.index(b"q8") + 2 + 4 + 8 * len(q8.shape)
    assert int.from_bytes(data[at : at + 4], "little") == q8.type
    data[at : at + 4] = (99).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(gguf_header.Unsupported, match="tensor type 99"):
        gguf_header.read_header(path)


def test_a_checked_file_is_read_once_until_it_changes(tmp_path: Path, tiny_gguf: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(tiny_gguf.read_bytes())
    first = check_gguf(path)
    assert check_gguf(path) is first
    os.utime(path, ns=(1, 1))  # another modification time: checked again
    again = check_gguf(path)
    assert again is not first and again == first
