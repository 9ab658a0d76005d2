"""Images through llama.cpp for real: the tiny random GGUF with a tiny random CLIP
projector written by the test (a LLaVA-1.5 style "mlp" projector, loaded by the clip
code vendored in llama-cpp-python), images written by the test as PNG and BMP."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sahara_cli.agent.brain import Agent, runner_options
from sahara_cli.agent.runners.base import GenerationParams, RunnerOptions, open_runner
from sahara_cli.agent.runners.llama import LlamaRunner
from sahara_cli.agent.runners.tiny_models import TinyShape, TinyVisionShape, write_tiny_mmproj
from sahara_cli.agent.spec import AgentSpec
from sahara_cli.agent.tools.registry import ToolBox, tool_from_function
from sahara_cli.agent.types import Message
from sahara_cli.errors import ContextTooLong, ModelInvalid, PerceptionUnsupported

pytest_plugins = ("tests.agent_models",)  # the tiny_gguf fixture

MESSAGES = [Message("system", "You answer briefly."), Message("user", "What is in the picture?")]
IMAGE_TOKENS = TinyVisionShape().tokens  # context positions one image takes


def write_png(path: Path, pixels: Any) -> Path:
    """An 8-bit RGB PNG of ``pixels`` (height x width x 3, uint8)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def write_bmp(path: Path, pixels: Any) -> Path:
    """A 24-bit BMP of ``pixels`` (height x width x 3, uint8, RGB)."""
    height, width, _ = pixels.shape
    stride = (width * 3 + 3) & ~3
    rows = b"".join(
        pixels[y, :, ::-1].tobytes().ljust(stride, b"\x00") for y in range(height - 1, -1, -1)
    )
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    head = struct.pack("<2sIHHI", b"BM", 14 + len(info) + len(rows), 0, 0, 14 + len(info))
    path.write_bytes(head + info + rows)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A noisy PNG and a gradient BMP, neither the projector's size (both are resized)."""
    folder = tmp_path_factory.mktemp("images")
    noise = np.random.default_rng(1).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    ramp = np.zeros((40, 30, 3), dtype=np.uint8)
    ramp[..., 0] = np.linspace(0, 255, 30, dtype=np.uint8)
    ramp[..., 2] = np.linspace(255, 0, 40, dtype=np.uint8)[:, None]
    return write_png(folder / "noise.png", noise), write_bmp(folder / "ramp.bmp", ramp)


@pytest.fixture(scope="module")
def mmproj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_mmproj(tmp_path_factory.mktemp("mmproj") / "tiny-mmproj.gguf")


@pytest.fixture(scope="module")
def seeing(tiny_gguf: Path, mmproj: Path) -> Iterator[LlamaRunner]:
    runner = LlamaRunner(tiny_gguf, RunnerOptions(n_ctx=512, threads=2, mmproj=mmproj))
    yield runner
    runner.close()


def params(**kw: Any) -> GenerationParams:
    return GenerationParams(**{"max_tokens": 6, "temperature": 0.0, "seed": 5, **kw})


def test_the_tiny_projector_matches_the_tiny_model(mmproj: Path) -> None:
    import gguf

    reader = gguf.GGUFReader(str(mmproj))
    tensors = {t.name: [int(n) for n in t.shape] for t in reader.tensors}
    # GGUF shapes: the projector's last layer maps to the text model's hidden size.
    assert tensors["mm.2.weight"][1] == TinyShape().hidden
    assert mmproj.stat().st_size < 256 * 1024
    with pytest.raises(ValueError, match="multiple"):
        write_tiny_mmproj(mmproj.parent / "x.gguf", shape=TinyVisionShape(patch_size=5))


def test_an_image_takes_its_embeddings_in_the_context(
    seeing: LlamaRunner, images: tuple[Path, Path]
) -> None:
    png, bmp = images
    assert seeing.supports_images
    one = seeing.chat(MESSAGES, params(), images=[png])
    assert isinstance(one.text, str) and one.text
    assert (one.completion_tokens, one.finish_reason) == (6, "length")
    two = seeing.chat(MESSAGES, params(), images=[png, bmp])
    assert two.finish_reason == "length"
    # The same text around the images: each image adds exactly its embeddings.
    assert two.prompt_tokens - one.prompt_tokens == IMAGE_TOKENS
    text_only = seeing.chat(MESSAGES, params())
    assert text_only.prompt_tokens < one.prompt_tokens
    assert one.prompt_tokens >= IMAGE_TOKENS + seeing.count_tokens(MESSAGES[-1].content)
    # Deterministic with temperature 0, and streaming gives the same text.
    again = seeing.chat(MESSAGES, params(), images=[png])
    assert again == one
    assert "".join(seeing.stream_chat(MESSAGES, params(), images=[png])) == one.text


def test_text_and_json_keep_working_beside_images(
    seeing: LlamaRunner, images: tuple[Path, Path]
) -> None:
    """Text turns and JSON use the GGUF's own template with a projector loaded, and the
    prompt cache is not fooled by the image turn in between."""
    before = seeing.chat(MESSAGES, params(seed=9, temperature=0.7))
    seeing.chat(MESSAGES, params(), images=[images[0]])
    after = seeing.chat(MESSAGES, params(seed=9, temperature=0.7))
    assert after == before
    assert seeing.format_prompt(MESSAGES).startswith("<s><|im_start|>system")
    schema = {
        "type": "object",
        "properties": {"seen": {"type": "string", "maxLength": 12}},
        "required": ["seen"],
    }
    value = seeing.complete_json(MESSAGES, schema, params(max_tokens=40))
    assert isinstance(value["seen"], str)


def test_bad_images_and_projectors_are_clear_errors(
    seeing: LlamaRunner, images: tuple[Path, Path], tiny_gguf: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    with pytest.raises(PerceptionUnsupported, match="could not be decoded"):
        seeing.chat(MESSAGES, params(), images=[broken])
    with pytest.raises(PerceptionUnsupported, match="does not exist"):
        seeing.chat(MESSAGES, params(), images=[tmp_path / "missing.png"])
    too_many = seeing.context_length // IMAGE_TOKENS + 1
    with pytest.raises(ContextTooLong):
        seeing.chat(MESSAGES, params(), images=[images[0]] * too_many)
    # The runner still answers after the refusals.
    assert seeing.chat(MESSAGES, params(), images=[images[1]]).finish_reason == "length"
    # A projector for another model (other output size) fails when the runner loads.
    other = write_tiny_mmproj(tmp_path / "other-mmproj.gguf", text_hidden=32)
    with pytest.raises(ModelInvalid, match=r"mismatch .* \(n_embd = 64\) .* \(n_embd = 32\)"):
        LlamaRunner(tiny_gguf, RunnerOptions(n_ctx=256, threads=2, mmproj=other))


def _spec(model: Path, mmproj: Path | None) -> AgentSpec:
    model_spec: dict[str, Any] = {"name": str(model), "n_ctx": 1024, "threads": 2}
    if mmproj is not None:
        model_spec["mmproj"] = str(mmproj)
    return AgentSpec.model_validate(
        {
            "name": "eye",
            "persona": "You describe what you see.",
            "model": model_spec,
            "generation": {"max_tokens": 8, "temperature": 0.0, "seed": 7},
            "memory": {"long_term": False},
            "vault": {"search": False},
            "loop": {"max_steps": 1},
        }
    )


def _agent(spec: AgentSpec) -> Agent:
    def calculator(expression: str) -> str:
        """Evaluate arithmetic."""
        return expression

    runner = open_runner("llama", Path(spec.model.name), runner_options(spec))
    agent = Agent(spec, runner, ToolBox([tool_from_function(calculator)]))
    agent._closers.append(runner.close)
    return agent


def test_an_agent_with_a_projector_sees_images(
    tiny_gguf: Path, mmproj: Path, images: tuple[Path, Path]
) -> None:
    """model.mmproj in the spec loads the projector; the tool step (JSON) and the
    answer both run, and the image's embeddings count in the answer's prompt."""
    with _agent(_spec(tiny_gguf, mmproj)) as agent:
        assert agent.runner.supports_images
        seen = agent.ask("What is in the picture?", images=[images[0]])
        assert isinstance(seen.text, str) and seen.text
        assert seen.finish_reason == "length"
        assert seen.prompt_tokens > IMAGE_TOKENS
        assert seen.record["digest"].startswith("0x")
        for call in seen.tool_calls:
            assert call.tool == "calculator"
        plain = agent.ask("And without a picture?")
        assert plain.text and plain.prompt_tokens > 0


def test_an_agent_without_a_projector_refuses_images(
    tiny_gguf: Path, images: tuple[Path, Path]
) -> None:
    with _agent(_spec(tiny_gguf, None)) as agent:
        assert not agent.runner.supports_images
        with pytest.raises(PerceptionUnsupported, match="multimodal projector") as caught:
            agent.ask("What is in the picture?", images=[images[0]])
        assert "mmproj" in (caught.value.hint or "")
