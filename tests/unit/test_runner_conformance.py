"""One conformance class for every runner: llama.cpp on a tiny GGUF and torch on a tiny
transformers checkpoint, both written by the test session with random weights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sahara_cli.agent.runners.base import GenerationParams, Runner, RunnerOptions, open_runner
from sahara_cli.agent.types import Message
from sahara_cli.errors import PerceptionUnsupported

pytest_plugins = ("tests.agent_models",)  # the tiny_gguf and tiny_hf fixtures

MESSAGES = [Message("system", "You answer briefly."), Message("user", "Which data do we have?")]

TOOL_CALL = {  # the shape ToolBox.call_schema() makes: one branch per tool
    "type": "object",
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "tool": {"type": "string", "enum": ["vault_search"]},
                "arguments": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "maxLength": 40},
                        "k": {"type": "integer", "minimum": 1, "maximum": 8},
                    },
                    "required": ["query"],
                    "additionalProperties": False,
                },
            },
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "tool": {"type": "string", "enum": ["calculator"]},
                "arguments": {
                    "type": "object",
                    "properties": {"expression": {"type": "string"}},
                    "required": ["expression"],
                    "additionalProperties": False,
                },
            },
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "tool": {"type": "string", "enum": ["answer"]},
                "arguments": {"type": "object", "properties": {}, "additionalProperties": False},
            },
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        },
    ],
}
TOOL_ENUM = {  # a flat variant: the name as an enum, the arguments as anyOf
    "type": "object",
    "properties": {
        "tool": {"enum": ["vault_search", "balance", "calculator"]},
        "arguments": {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"query": {"type": "string", "maxLength": 24}},
                    "required": ["query"],
                },
                {
                    "type": "object",
                    "properties": {"address": {"type": "string", "maxLength": 42}},
                    "required": ["address"],
                },
            ]
        },
    },
    "required": ["tool", "arguments"],
}
NESTED = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 30},
        "rating": {"type": "integer", "minimum": 0, "maximum": 5},
        "count": {"type": "integer"},
        "score": {"type": "number"},
        "done": {"type": "boolean"},
        "mood": {"type": "string", "enum": ["good", "bad", "unsure"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
        "owner": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 16}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        },
    },
    "required": ["title", "rating", "count", "score", "done", "mood", "tags", "owner"],
}
SCHEMAS = {"tool_call": TOOL_CALL, "tool_enum": TOOL_ENUM, "nested": NESTED}
SEEDS = range(30)


@pytest.fixture(scope="module", params=["llama", "torch"])
def runner(request: pytest.FixtureRequest) -> Iterator[Runner]:
    kind = request.param
    path = request.getfixturevalue("tiny_gguf" if kind == "llama" else "tiny_hf")
    loaded = open_runner(kind, path, RunnerOptions(n_ctx=1024, threads=2))
    yield loaded
    loaded.close()


def params(**kwargs: Any) -> GenerationParams:
    return GenerationParams(**{"max_tokens": 24, "seed": 7, **kwargs})


class TestRunnerConformance:
    def test_stream_deltas_join_to_the_completion(self, runner: Runner) -> None:
        deltas = list(runner.stream_chat(MESSAGES, params()))
        completion = runner.last
        assert deltas and all(isinstance(d, str) and d for d in deltas)
        assert "".join(deltas) == completion.text
        assert completion.text.strip()
        assert completion.completion_tokens == 24
        assert completion.finish_reason == "length"

    def test_prompt_tokens_count_the_chat_template(self, runner: Runner) -> None:
        prompt = runner.format_prompt(MESSAGES)
        # The tiny models' template: ChatML-like turns, then the assistant's opening.
        assert "<|im_start|>user\nWhich data do we have?<|im_end|>" in prompt
        assert prompt.endswith("<|im_start|>assistant\n")
        runner.chat(MESSAGES, params(max_tokens=4))
        assert runner.last.prompt_tokens == runner.count_tokens(prompt, special=True)  # type: ignore[call-arg]
        content = sum(runner.count_tokens(m.content) for m in MESSAGES)
        assert runner.last.prompt_tokens > content + 2 * len(MESSAGES)

    def test_max_tokens_gives_finish_reason_length(self, runner: Runner) -> None:
        completion = runner.chat(MESSAGES, params(max_tokens=5))
        assert completion.finish_reason == "length"
        assert completion.completion_tokens == 5
        assert runner.count_tokens(completion.text) >= 1

    def test_same_seed_same_text_other_seed_other_text(self, runner: Runner) -> None:
        first = runner.chat(MESSAGES, params(max_tokens=20, seed=11)).text
        again = runner.chat(MESSAGES, params(max_tokens=20, seed=11)).text
        other = runner.chat(MESSAGES, params(max_tokens=20, seed=12)).text
        assert first == again
        assert first != other

    def test_stop_string_cuts_the_text(self, runner: Runner) -> None:
        full = runner.chat(MESSAGES, params(max_tokens=24, seed=3)).text
        stop = full[len(full) // 2 : len(full) // 2 + 2]
        assert stop.strip(), full
        cut = runner.chat(MESSAGES, params(max_tokens=24, seed=3, stop=[stop]))
        assert cut.finish_reason == "stop"
        assert cut.text == full[: full.index(stop)]
        assert stop not in cut.text
        streamed = "".join(runner.stream_chat(MESSAGES, params(max_tokens=24, seed=3, stop=[stop])))
        assert streamed == cut.text

    def test_images_without_a_projector_are_refused(self, runner: Runner, tmp_path: Path) -> None:
        image = tmp_path / "cat.png"
        image.write_bytes(b"\x89PNG\r\n\x1a\n")
        assert not runner.supports_images
        with pytest.raises(PerceptionUnsupported):
            runner.stream_chat(MESSAGES, params(), images=[image])

    @pytest.mark.parametrize("name", sorted(SCHEMAS))
    def test_complete_json_always_validates(self, runner: Runner, name: str) -> None:
        schema = SCHEMAS[name]
        seen = set()
        for seed in SEEDS:
            value = runner.complete_json(MESSAGES, schema, params(max_tokens=160, seed=seed))
            jsonschema.validate(value, schema)
            assert runner.last.finish_reason == "stop"
            assert runner.last.completion_tokens > 0
            seen.add(repr(sorted(value.items())))
        if name != "tool_call":  # (a random model may always pick the tool without arguments)
            # The model chooses the values: different seeds give different objects.
            assert len(seen) > len(SEEDS) // 3

    def test_complete_json_is_seeded(self, runner: Runner) -> None:
        first = runner.complete_json(MESSAGES, NESTED, params(seed=5, max_tokens=160))
        again = runner.complete_json(MESSAGES, NESTED, params(seed=5, max_tokens=160))
        assert first == again
