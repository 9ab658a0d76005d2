"""One API over the model runners: llama.cpp (GGUF, CPU and consumer GPUs) and
torch / transformers (servers).

A runner holds one loaded model. It streams chat completions as text deltas, and
produces JSON constrained by a schema (a llama.cpp grammar, or guided decoding in the
torch runner), so even a tiny random model always yields a parseable tool call.
``tests/unit/test_runner_conformance.py`` runs one test class over every runner.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sahara_cli.agent.types import Message

RunnerKind = Literal["llama", "torch"]
RUNNER_KINDS: tuple[str, ...] = ("llama", "torch")


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings for one completion."""

    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    stop: Sequence[str] = ()


@dataclass(frozen=True)
class RunnerOptions:
    """Load-time settings. ``threads`` None means the runner's own choice, which for
    llama.cpp is one thread per physical core for both decoding and prompt batches."""

    n_ctx: int = 2048
    n_gpu_layers: int = 0
    threads: int | None = None
    device: str | None = None  # torch: "cpu", "cuda", ...; None picks cuda when present
    mmproj: Path | None = None  # llama.cpp multimodal projector (images)
    chat_format: str | None = None  # None: the chat template the model file carries
    adapter: Path | None = None  # torch: a peft LoRA adapter folder loaded on the model
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Completion:
    """A finished completion with its token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"


class Runner(ABC):
    """A loaded model. Not thread-safe: one completion at a time."""

    kind: str
    model_path: Path
    #: The model's own name, as its file says (GGUF ``general.name``); "" when it has none.
    title: str = ""

    @property
    def is_test_model(self) -> bool:
        """A tiny random-weight model sahara writes for tests and demos: answers are noise."""
        from sahara_cli.agent.runners.tiny_models import TINY_NAME

        return self.title == TINY_NAME

    @property
    @abstractmethod
    def context_length(self) -> int:
        """Tokens the loaded context holds (prompt plus completion)."""

    @property
    def supports_images(self) -> bool:
        """Whether images can be given (a multimodal projector is loaded)."""
        return False

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's vocabulary."""

    def format_prompt(self, messages: Sequence[Message]) -> str:
        """The prompt text the model's chat template makes of ``messages`` (with the
        opening of the assistant's turn), as it is tokenized for generation."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its prompt text")

    @abstractmethod
    def stream_chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams = GenerationParams(),
        *,
        images: Sequence[Path] = (),
    ) -> Iterator[str]:
        """Yield the assistant's reply as text deltas, formatted with the model's chat
        template. After the iterator is exhausted, :attr:`last` holds the counts."""

    def chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams = GenerationParams(),
        *,
        images: Sequence[Path] = (),
    ) -> Completion:
        """The whole reply at once."""
        for _delta in self.stream_chat(messages, params, images=images):
            pass
        return self.last

    @abstractmethod
    def complete_json(
        self,
        messages: Sequence[Message],
        schema: dict[str, Any],
        params: GenerationParams = GenerationParams(),
    ) -> dict[str, Any]:
        """A JSON object that validates against ``schema``, always.

        Supported schema subset: objects with ``properties`` and ``required``, strings
        (``enum``, ``maxLength``), integers, numbers, booleans, arrays of those, nested
        objects, and ``anyOf`` / ``oneOf`` of objects.
        """

    @property
    @abstractmethod
    def last(self) -> Completion:
        """The counts of the most recent completion."""

    def describe(self) -> dict[str, Any]:
        """Facts for ``--json`` output and provenance records."""
        return {
            "runner": self.kind,
            "model": str(self.model_path),
            "context_length": self.context_length,
            "images": self.supports_images,
        }

    def close(self) -> None:  # noqa: B027 - optional for runners holding nothing
        """Free the model's memory."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StopBuffer:
    """Turns a growing decoded text into safe deltas: text that may be the start of a
    stop string, or an incomplete UTF-8 character (U+FFFD at the end), is held back
    until the next token says what it is."""

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._stop = [s for s in stop if s]
        self.text = ""
        self._sent = 0
        self.stopped = False

    def feed(self, text: str) -> str:
        """Take the whole text decoded so far; return what may be shown now."""
        hits = [i for i in (text.find(s) for s in self._stop) if i >= 0]
        if hits:
            self.stopped = True
            text = text[: min(hits)]
            self.text = text
            delta = text[self._sent :]
            self._sent = len(text)
            return delta
        self.text = text
        hold = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(text)), hold, -1):
                if text.endswith(stop[:n]):
                    hold = n
                    break
        end = len(text) - hold
        while end > self._sent and text[end - 1] == "\ufffd":
            end -= 1
        if end <= self._sent:
            return ""
        delta = text[self._sent : end]
        self._sent = end
        return delta

    def flush(self) -> str:
        """What was held back, once generation is over."""
        delta = self.text[self._sent :]
        self._sent = len(self.text)
        return delta


class TextStream:
    """The text of sampled tokens as deltas, up to an end token, a stop string, or the
    end of the tokens (finish "length"). Afterwards ``text``, ``count`` (tokens that
    became text) and ``finish`` describe the completion."""

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._buffer = StopBuffer(stop)
        self.count = 0
        self.finish = "length"

    @property
    def text(self) -> str:
        return self._buffer.text

    def deltas(
        self,
        tokens: Iterable[int],
        is_end: Callable[[int], bool],
        text_with: Callable[[int], str],
    ) -> Iterator[str]:
        """Deltas of ``tokens``; ``text_with(token)`` is the whole text up to ``token``."""
        for token in tokens:
            if is_end(token):
                self.finish = "stop"
                break
            self.count += 1
            delta = self._buffer.feed(text_with(token))
            if delta:
                yield delta
            if self._buffer.stopped:
                self.finish = "stop"
                break
        tail = self._buffer.flush()
        if tail:
            yield tail


def open_runner(kind: str, model_path: Path, options: RunnerOptions | None = None) -> Runner:
    """Load ``model_path`` with the runner named ``kind`` ("llama" or "torch")."""
    options = options or RunnerOptions()
    if kind == "llama" and options.adapter is not None:
        from sahara_cli.errors import AgentLearnUnsupported

        raise AgentLearnUnsupported(
            f"{model_path.name} runs on llama.cpp, which does not load the peft adapter "
            f"{options.adapter}"
        )
    if kind == "llama":
        from sahara_cli.agent.runners.llama import LlamaRunner

        return LlamaRunner(model_path, options)
    if kind == "torch":
        from sahara_cli.agent.runners.torch import TorchRunner

        return TorchRunner(model_path, options)
    from sahara_cli.errors import AgentSpecInvalid

    raise AgentSpecInvalid(f"unknown runner {kind!r}: use one of {', '.join(RUNNER_KINDS)}")
