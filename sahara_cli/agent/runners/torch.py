"""The torch / transformers runner: a local ``save_pretrained`` directory, on CUDA when
there is one (or the device the options name), else on the CPU.

Replies use the tokenizer's chat template and a token loop over the model with its KV
cache: seeded sampling (temperature, top-p), stop strings, and the finish reason.
JSON comes from the schema-guided decoder of :mod:`sahara_cli.agent.runners.guided`, which
writes the structure and lets the model choose the values, so it always validates.
Nothing is downloaded: the model and tokenizer load with ``local_files_only=True``.
A LoRA adapter (``RunnerOptions.adapter``, the agent spec's ``[adapter]`` from ``agent
learn``) is loaded with peft on top of the model and merged into its weights.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sahara_cli.agent.runners.base import (
    Completion,
    GenerationParams,
    Runner,
    RunnerOptions,
    TextStream,
)
from sahara_cli.agent.types import Message
from sahara_cli.errors import (
    AgentError,
    ContextTooLong,
    ModelInvalid,
    PerceptionUnsupported,
    RunnerUnavailable,
)

log = logging.getLogger("sahara.agent.torch")


class TorchRunner(Runner):
    """A causal language model loaded with transformers."""

    kind = "torch"

    def __init__(self, model_path: Path, options: RunnerOptions | None = None) -> None:
        from sahara_cli.agent.runners.model_store import check_fits, check_transformers, tree_bytes

        options = options or RunnerOptions()
        self.model_path = Path(model_path)
        self._options = options
        config = check_transformers(self.model_path)
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except Exception as exc:  # ImportError, or a broken CUDA install
            raise RunnerUnavailable(
                f"torch / transformers cannot be loaded: {exc}",
                hint="Install them with 'pip install torch transformers'.",
            ) from exc
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device == "cpu":
            check_fits(2 * tree_bytes(self.model_path), f"{self.model_path.name} on the CPU")
        if options.threads:
            torch.set_num_threads(options.threads)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(
                str(self.model_path), local_files_only=True
            )
            model: Any = AutoModelForCausalLM.from_pretrained(
                str(self.model_path), local_files_only=True
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelInvalid(f"transformers cannot load {self.model_path}: {exc}") from exc
        self.adapter = options.adapter
        if options.adapter is not None:
            model = _with_adapter(model, options.adapter)
        self._model = model.to(device)
        self._model.eval()
        marker = self.model_path / "sahara-tiny.json"  # from_pretrained resets name_or_path
        if marker.is_file():
            self.title = str(json.loads(marker.read_text(encoding="utf-8")).get("name", ""))
        self._torch = torch
        self._device = device
        limit = config.get("max_position_embeddings") or options.n_ctx
        self._n_ctx = min(int(options.n_ctx), int(limit))
        self._vocab_size = int(self._model.get_output_embeddings().weight.shape[0])
        eos = self._model.generation_config.eos_token_id
        if eos is None:
            eos = self._tokenizer.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self._cache: Any = None
        # transformers 5 renamed the forward argument (and output) past_key_values -> cache
        params = inspect.signature(type(self._model).forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._cached: list[int] = []
        self._cached_logits: Any = None
        self._guided_vocab: Any = None
        self._last = Completion("", 0, 0, "stop")

    # -- facts -----------------------------------------------------------------------

    @property
    def context_length(self) -> int:
        return self._n_ctx

    @property
    def last(self) -> Completion:
        return self._last

    def describe(self) -> dict[str, Any]:
        extra = {"adapter": str(self.adapter)} if self.adapter is not None else {}
        return {**super().describe(), "device": self._device, **extra}

    def count_tokens(self, text: str, *, special: bool = False) -> int:
        return len(self._encode(text, special=special))

    def _encode(self, text: str, *, special: bool = False) -> list[int]:
        if special:
            return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])
        return list(
            self._tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)
        )

    def close(self) -> None:
        self._cache = None
        self._cached = []
        model = getattr(self, "_model", None)
        if model is not None:
            del self._model
            if self._device.startswith("cuda"):
                with contextlib.suppress(Exception):
                    self._torch.cuda.empty_cache()

    # -- prompts ---------------------------------------------------------------------

    def format_prompt(self, messages: Sequence[Message]) -> str:
        if not getattr(self._tokenizer, "chat_template", None):
            raise ModelInvalid(
                f"{self.model_path} has no chat template",
                hint="Save the tokenizer with a chat_template (tokenizer.chat_template = ...).",
            )
        text = self._tokenizer.apply_chat_template(
            [m.to_dict() for m in messages], tokenize=False, add_generation_prompt=True
        )
        return str(text)

    def _prompt(self, messages: Sequence[Message]) -> list[int]:
        tokens = self._encode(self.format_prompt(messages), special=True)
        if len(tokens) >= self._n_ctx:
            raise ContextTooLong(
                f"the prompt takes {len(tokens)} tokens; the context holds {self._n_ctx}"
            )
        return tokens

    # -- the model with its KV cache ---------------------------------------------------

    def _logits(self, prefix: Sequence[int]) -> Any:
        """Next-token logits after ``prefix`` (a 1-D float tensor), reusing the KV cache
        of the longest prefix already computed."""
        torch = self._torch
        prefix = list(prefix)
        if prefix == self._cached and self._cached_logits is not None:
            return self._cached_logits
        common = 0
        for a, b in zip(self._cached, prefix, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(prefix) - 1)
        if self._cache is not None and common < len(self._cached):
            try:
                self._cache.crop(common - len(self._cached))
            except Exception:  # a cache that cannot be rolled back: start again
                self._cache, common = None, 0
        if self._cache is None:
            common = 0
        from transformers import DynamicCache

        if self._cache is None:
            self._cache = DynamicCache()
        ids = torch.tensor([prefix[common:]], device=self._device)
        with torch.inference_mode():
            out = self._model(input_ids=ids, use_cache=True, **{self._cache_arg: self._cache})
        self._cache = getattr(out, self._cache_arg, None) or self._cache
        self._cached = prefix
        self._cached_logits = out.logits[0, -1].float()
        return self._cached_logits

    def _logprobs(self, prefix: Sequence[int]) -> npt.NDArray[np.float64]:
        logits = self._logits(prefix)
        result: npt.NDArray[np.float64] = (
            self._torch.log_softmax(logits.double(), dim=-1).cpu().numpy()
        )
        return result

    def _sample(self, logits: Any, params: GenerationParams, generator: Any) -> int:
        torch = self._torch
        if params.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < params.top_p
            sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
            choice = torch.multinomial(sorted_probs.cpu(), 1, generator=generator)
            return int(order.cpu()[choice])
        return int(torch.multinomial(probs.cpu(), 1, generator=generator))

    def _generator(self, seed: int | None) -> Any:
        generator = self._torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        return generator

    # -- chat ------------------------------------------------------------------------

    def stream_chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams = GenerationParams(),
        *,
        images: Sequence[Path] = (),
    ) -> Iterator[str]:
        if images:
            raise PerceptionUnsupported(
                "the torch runner does not take images",
                hint="Use a llama.cpp model with a multimodal projector (model.mmproj).",
            )
        return self._stream(self._prompt(messages), params)

    def _tokens(self, prompt: list[int], params: GenerationParams) -> Iterator[int]:
        """Sampled tokens after ``prompt``, at most ``max_tokens`` (and the context)."""
        generator = self._generator(params.seed)
        ids = list(prompt)
        for _ in range(min(params.max_tokens, self._n_ctx - len(prompt))):
            token = self._sample(self._logits(ids), params, generator)
            yield token
            ids.append(token)

    def _stream(self, prompt: list[int], params: GenerationParams) -> Iterator[str]:
        stream = TextStream(params.stop)
        produced: list[int] = []

        def text_with(token: int) -> str:
            produced.append(token)
            return str(self._tokenizer.decode(produced, skip_special_tokens=True))

        try:
            yield from stream.deltas(
                self._tokens(prompt, params), self._eos.__contains__, text_with
            )
        finally:
            self._last = Completion(stream.text, len(prompt), stream.count, stream.finish)

    # -- JSON ------------------------------------------------------------------------

    def _vocab(self) -> Any:
        """Each token's text in the middle of other text (decoded after an anchor)."""
        if self._guided_vocab is None:
            from sahara_cli.agent.runners.guided import GuidedVocab

            tokenizer = self._tokenizer
            anchor = self._encode("a")
            base = str(tokenizer.decode(anchor))
            special = set(tokenizer.all_special_ids)
            texts: list[str] = tokenizer.batch_decode(
                [[*anchor, i] for i in range(self._vocab_size)]
            )
            pieces: list[str | None] = []
            for i, text in enumerate(texts):
                piece = text[len(base) :] if text.startswith(base) else None
                if i in special or not piece or "\ufffd" in piece:
                    piece = None
                pieces.append(piece)
            self._guided_vocab = GuidedVocab(pieces, self._encode)
        return self._guided_vocab

    def complete_json(
        self,
        messages: Sequence[Message],
        schema: dict[str, Any],
        params: GenerationParams = GenerationParams(),
    ) -> dict[str, Any]:
        import jsonschema  # type: ignore[import-untyped]

        from sahara_cli.agent.runners.guided import GuidedDecoder, SchemaUnsupported

        prompt = self._prompt(messages)
        decoder = GuidedDecoder(
            self._logprobs,
            self._vocab(),
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
        )
        try:
            result = decoder.generate(prompt, schema)
        except SchemaUnsupported as exc:
            raise AgentError(f"cannot generate JSON for this schema: {exc}") from exc
        if not isinstance(result.value, dict) or not jsonschema.Draft202012Validator(
            schema
        ).is_valid(result.value):
            raise AgentError(
                "the schema asks for something guided decoding cannot produce",
                hint="Use objects, strings, numbers, booleans, arrays, enums and anyOf.",
            )
        self._last = Completion(json.dumps(result.value), len(prompt), result.tokens, "stop")
        value: dict[str, Any] = result.value
        return value


def _with_adapter(model: Any, adapter: Path) -> Any:
    """``model`` with the peft LoRA adapter in the folder ``adapter`` merged into its
    weights (loaded with ``PeftModel.from_pretrained``, then ``merge_and_unload``: the
    same answers as the adapter on top, at the base model's speed)."""
    if not (adapter / "adapter_config.json").is_file():
        raise ModelInvalid(
            f"the agent's adapter {adapter} holds no adapter_config.json",
            hint="Train it again with 'sahara agent learn', or remove [adapter] from the spec.",
        )
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise RunnerUnavailable(
            f"peft cannot be loaded: {exc}", hint="Install it with 'pip install peft'."
        ) from exc
    try:
        with warnings.catch_warnings():  # a transformers deprecation peft trips over
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            peft = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
        return peft.merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelInvalid(f"the adapter {adapter} does not fit the model: {first}") from exc
