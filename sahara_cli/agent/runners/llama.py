"""The llama.cpp runner: GGUF models on CPU (and consumer GPUs with ``n_gpu_layers``)
through ``llama-cpp-python``.

Replies are formatted with the chat template the GGUF carries and generated with
llama.cpp's own sampler chain (top-k, top-p, min-p, temperature, seeded
distribution: the samplers ``create_chat_completion`` uses), token by token, so the
runner knows the exact token counts, the finish reason and where a stop string cut the
text. Turns that carry images go through ``create_chat_completion`` with a llava chat
handler when a multimodal projector is loaded (its LLaVA-1.5 prompt format); other turns
and JSON keep the model's own template.

JSON is generated under a grammar made from the schema (``LlamaGrammar.from_json_schema``)
with a logit bias that depends on where the text is: inside a string towards the quote
(more so the longer the string) and away from end-of-text and byte tokens, outside
strings away from whitespace. The first complete object is parsed and validated; a run
that ends mid-value is retried with another seed, and after that the schema-guided
decoder of :mod:`sahara_cli.agent.runners.guided` runs over the same model, which always
completes, so :meth:`complete_json` always returns a valid object.
"""

from __future__ import annotations

import base64
import ctypes
import json
import logging
import math
import mimetypes
import os
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

log = logging.getLogger("sahara.agent.llama")

#: Grammar-constrained tries before the guided decoder takes over.
JSON_TRIES = 2
_LOG_CALLBACK: Any = None
_MTMD_SILENCED = False
_GGML_LOG_ERROR = 4  # ggml_log_level
_ERRORS: list[str] = []  # the last error lines llama.cpp logged, for error messages


def physical_cores() -> int:
    """Physical cores this process may use (hyper-threads do not speed up llama.cpp)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        with Path("/proc/cpuinfo").open(encoding="ascii", errors="replace") as fh:
            physical = core = ""
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    physical = value.strip()
                elif key == "core id":
                    core = value.strip()
                    cores.add((physical, core))
    except OSError:
        pass
    return max(1, min(allowed, len(cores) or allowed))


def _import_llama() -> Any:
    try:
        import llama_cpp
    except Exception as exc:  # ImportError, or OSError when the shared library fails
        raise RunnerUnavailable(
            f"llama-cpp-python cannot be loaded: {exc}",
            hint="Install it with 'pip install llama-cpp-python' (scripts/setup builds it).",
        ) from exc
    _silence(llama_cpp)
    return llama_cpp


def _silence(llama_cpp: Any) -> None:
    """Send llama.cpp's own log lines to the ``sahara.agent.llama`` logger (debug)."""
    global _LOG_CALLBACK  # noqa: PLW0603 - the C side keeps a pointer to it
    if _LOG_CALLBACK is not None:
        return

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:  # noqa: ARG001
        line = text.decode("utf-8", errors="replace").rstrip()
        if level == _GGML_LOG_ERROR and line:
            _ERRORS.append(line)
            del _ERRORS[:-4]
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s", line)

    _LOG_CALLBACK = callback
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def _silence_mtmd() -> None:
    """The same for the multimodal library (the projector and the image turns), which
    otherwise writes to stderr."""
    global _MTMD_SILENCED  # noqa: PLW0603
    if _MTMD_SILENCED or _LOG_CALLBACK is None:
        return
    from llama_cpp import mtmd_cpp

    mtmd_cpp.mtmd_helper_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    _MTMD_SILENCED = True


class LlamaRunner(Runner):
    """A GGUF model loaded by llama.cpp."""

    kind = "llama"

    def __init__(self, model_path: Path, options: RunnerOptions | None = None) -> None:
        from sahara_cli.agent.runners.model_store import OVERHEAD_BYTES, check_fits, check_gguf

        options = options or RunnerOptions()
        self.model_path = Path(model_path)
        self._options = options
        info = check_gguf(self.model_path)
        n_ctx = options.n_ctx
        if options.n_gpu_layers == 0:
            mmproj_size = options.mmproj.stat().st_size if options.mmproj else 0
            check_fits(
                info.size + info.kv_bytes(n_ctx) + mmproj_size + OVERHEAD_BYTES,
                f"{self.model_path.name} with a context of {n_ctx} tokens",
            )
        llama_cpp = _import_llama()
        from llama_cpp import llama_chat_format

        threads = options.threads or physical_cores()
        handler = None
        if options.mmproj is not None:
            check_mmproj = Path(options.mmproj)
            if not check_mmproj.is_file():
                from sahara_cli.errors import ModelNotFound

                raise ModelNotFound(f"multimodal projector {check_mmproj} does not exist")
            _silence_mtmd()
            handler = llama_chat_format.Llava15ChatHandler(
                clip_model_path=str(check_mmproj), verbose=False
            )
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                n_gpu_layers=options.n_gpu_layers,
                n_threads=threads,
                n_threads_batch=threads,
                chat_format=options.chat_format,
                chat_handler=handler,
                verbose=False,
                **options.extra,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelInvalid(f"llama.cpp cannot load {self.model_path}: {exc}") from exc
        if handler is not None:
            _ERRORS.clear()
            try:  # load the projector now, so a wrong one fails here, not at the first image
                handler._init_mtmd_context(self._llama)
            except ValueError as exc:
                self._llama.close()
                reason = (_ERRORS[-1] if _ERRORS else str(exc)).splitlines()[0]
                reason = reason.partition("error: ")[2] or reason
                raise ModelInvalid(
                    f"llama.cpp cannot load the multimodal projector {options.mmproj} "
                    f"for {self.model_path.name}: {reason}",
                    hint="The projector must be the one made for this model "
                    "(its output size is the model's embedding size).",
                ) from exc
        self._handler = handler
        self.title = str(self._llama.metadata.get("general.name", ""))
        self._n_vocab = int(self._llama.n_vocab())
        self._eos = int(self._llama.token_eos())
        self._bos = int(self._llama.token_bos())
        self._formatter = None
        if options.chat_format is None:
            # The GGUF's own template for text and JSON, with or without a projector:
            # only turns that carry images go through the llava handler.
            template = self._llama.metadata.get("tokenizer.chat_template")
            if template:
                model = self._llama._model
                self._formatter = llama_chat_format.Jinja2ChatFormatter(
                    template=template,
                    eos_token=model.token_get_text(self._eos) if self._eos >= 0 else "",
                    bos_token=model.token_get_text(self._bos) if self._bos >= 0 else "",
                    stop_token_ids=[self._eos],
                )
        self._pieces: list[bytes] | None = None
        self._classes: dict[str, npt.NDArray[np.bool_]] = {}
        self._guided_vocab: Any = None
        self._last = Completion("", 0, 0, "stop")
        self.threads = threads

    # -- facts -----------------------------------------------------------------------

    @property
    def context_length(self) -> int:
        return int(self._llama.n_ctx())

    @property
    def supports_images(self) -> bool:
        return self._handler is not None

    @property
    def last(self) -> Completion:
        return self._last

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "threads": self.threads,
            "n_gpu_layers": self._options.n_gpu_layers,
            "chat_template": "gguf" if self._formatter is not None else self._options.chat_format,
        }

    def count_tokens(self, text: str, *, special: bool = False) -> int:
        return len(self._tokenize(text, special=special))

    def _tokenize(self, text: str, *, special: bool = False, bos: bool = False) -> list[int]:
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=bos, special=special))

    def close(self) -> None:
        llama = getattr(self, "_llama", None)
        if llama is not None:
            llama.close()
            self._llama = None

    # -- prompts ---------------------------------------------------------------------

    def format_prompt(self, messages: Sequence[Message]) -> str:
        if self._formatter is None:
            raise NotImplementedError(
                "the prompt text is only known for the GGUF's own chat template"
            )
        payload: Any = [m.to_dict() for m in messages]
        return str(self._formatter(messages=payload).prompt)

    def _prompt(self, messages: Sequence[Message]) -> list[int]:
        tokens = self._tokenize(self.format_prompt(messages), special=True)
        if len(tokens) >= self.context_length:
            raise ContextTooLong(
                f"the prompt takes {len(tokens)} tokens; the context holds {self.context_length}"
            )
        return tokens

    def _feed(self, tokens: Sequence[int]) -> None:
        """Make the context hold exactly ``tokens``, reusing the longest cached prefix,
        with logits for the last one."""
        llama = self._llama
        cached = llama.input_ids[: llama.n_tokens]
        common = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)
        llama.n_tokens = common  # eval() drops the KV cache from here on
        llama.eval(list(tokens[common:]))

    def _piece(self, token: int) -> bytes:
        """The bytes ``token`` adds to the text (none for control tokens)."""
        if self._pieces is None:
            import llama_cpp

            vocab = self._llama._model.vocab
            buffer = ctypes.create_string_buffer(256)
            pieces = []
            for i in range(self._n_vocab):
                n = llama_cpp.llama_token_to_piece(vocab, i, buffer, 256, 0, False)
                pieces.append(bytes(buffer.raw[: max(n, 0)]))
            self._pieces = pieces
        return self._pieces[token]

    def _is_eog(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self._llama._model.vocab, token))

    def _sampler(self, params: GenerationParams, *, grammar: Any = None, bias: Any = None) -> Any:
        from llama_cpp._internals import LlamaSampler

        sampler = LlamaSampler()  # type: ignore[no-untyped-call]
        if bias is not None:
            sampler.add_custom(bias)
        if grammar is not None:
            sampler.add_grammar(self._llama._model, grammar)
        if params.temperature <= 0:
            sampler.add_greedy()  # type: ignore[no-untyped-call]
        else:
            sampler.add_top_k(40)
            sampler.add_top_p(params.top_p, 1)
            sampler.add_min_p(0.05, 1)
            sampler.add_temp(params.temperature)
            seed = params.seed if params.seed is not None else 0xFFFFFFFF  # random
            sampler.add_dist(seed & 0xFFFFFFFF)
        return sampler

    def _tokens(self, prompt: list[int], params: GenerationParams, sampler: Any) -> Iterator[int]:
        """Sampled tokens after ``prompt``, at most ``max_tokens`` (and the context)."""
        budget = min(params.max_tokens, self.context_length - len(prompt))
        self._feed(prompt)
        context = self._llama._ctx
        for i in range(budget):
            token = int(sampler.sample(context, -1))
            yield token
            if i + 1 < budget:
                self._llama.eval([token])

    # -- chat ------------------------------------------------------------------------

    def stream_chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams = GenerationParams(),
        *,
        images: Sequence[Path] = (),
    ) -> Iterator[str]:
        if images:
            if self._handler is None:
                raise PerceptionUnsupported(
                    f"{self.model_path.name} cannot see images: no multimodal projector is loaded",
                    hint="Set model.mmproj in the agent spec to the model's mmproj GGUF.",
                )
            for image in images:
                if not Path(image).is_file():
                    raise PerceptionUnsupported(f"image {image} does not exist")
            return self._stream_handler(messages, params, images)
        if self._formatter is None:
            return self._stream_handler(messages, params, ())
        return self._stream(self._prompt(messages), params)

    def _stream(self, prompt: list[int], params: GenerationParams) -> Iterator[str]:
        stream = TextStream(params.stop)
        data = bytearray()

        def text_with(token: int) -> str:
            data.extend(self._piece(token))
            return data.decode("utf-8", errors="replace")

        sampler = self._sampler(params)
        try:
            yield from stream.deltas(self._tokens(prompt, params, sampler), self._is_eog, text_with)
        finally:
            sampler.close()
            self._last = Completion(stream.text, len(prompt), stream.count, stream.finish)

    def _stream_handler(
        self, messages: Sequence[Message], params: GenerationParams, images: Sequence[Path]
    ) -> Iterator[str]:
        """Through ``create_chat_completion`` (llava handler, or a named chat format).

        A pass-through logits processor counts the sampled tokens: the prompt's count
        (images included) is the context's length afterwards less them, the last of which
        is never evaluated. The completion's count is that number, less the end token
        when one stopped it; after a stop string (which may have been any of the last
        tokens) it is the text re-tokenized."""
        text: list[str] = []
        finish = "length"
        sampled = 0

        def count(input_ids: Any, scores: Any) -> Any:  # noqa: ARG001
            nonlocal sampled
            sampled += 1
            return scores

        try:
            chunks: Any = self._llama.create_chat_completion(
                messages=self._handler_payload(messages, images),
                stream=True,
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=params.seed,
                stop=list(params.stop),
                logits_processor=[count],
            )
        except ValueError as exc:  # the llava handler's errors, raised before any text
            if self._handler is None:
                raise
            raise _handler_error(exc) from exc
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                delta = choice.get("delta", {}).get("content") or ""
                if delta:
                    text.append(delta)
                    yield delta
                finish = choice.get("finish_reason") or finish
        finally:
            full = "".join(text)
            if finish == "length":
                completion = sampled
            elif not params.stop:
                completion = max(sampled - 1, 0)  # the end token
            else:
                completion = len(self._tokenize(full)) if full else 0
            prompt = max(0, int(self._llama.n_tokens) - max(sampled - 1, 0))
            self._last = Completion(full, prompt, completion, finish)
            if images:
                # The cached token ids say nothing of where the image embeddings went:
                # the next prompt starts afresh rather than reuse a wrong prefix.
                self._llama.n_tokens = 0

    def _handler_payload(
        self, messages: Sequence[Message], images: Sequence[Path]
    ) -> list[dict[str, Any]]:
        """The messages for ``create_chat_completion``, the images (as data URIs) first
        in the last user message."""
        payload: list[dict[str, Any]] = [m.to_dict() for m in messages]
        if self._handler is None:
            return payload
        # The llava template renders a user's text content twice over ("USER: " again
        # after it): content parts render once.
        last_user = None
        for index, message in enumerate(payload):
            if message["role"] == "user":
                parts: list[dict[str, Any]] = [{"type": "text", "text": message["content"]}]
                payload[index] = {"role": "user", "content": parts}
                last_user = index
        if images and last_user is not None:
            pictures = [{"type": "image_url", "image_url": {"url": _data_uri(p)}} for p in images]
            payload[last_user]["content"][:0] = pictures
        return payload

    # -- JSON ------------------------------------------------------------------------

    def complete_json(
        self,
        messages: Sequence[Message],
        schema: dict[str, Any],
        params: GenerationParams = GenerationParams(),
    ) -> dict[str, Any]:
        import jsonschema  # type: ignore[import-untyped]

        if self._formatter is None:
            raise AgentError(
                "JSON output needs the model's own chat template",
                hint="Leave chat_format unset for GGUF models that carry a template.",
            )
        prompt = self._prompt(messages)
        grammar = self._grammar(schema)
        seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(4), "big")
        validator = jsonschema.Draft202012Validator(schema)
        for attempt in range(JSON_TRIES if grammar is not None else 0):
            tried = GenerationParams(
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=(seed + attempt * 7919) & 0xFFFFFFFF,
            )
            value, count = self._json_once(prompt, grammar, tried)
            if isinstance(value, dict) and validator.is_valid(value):
                self._last = Completion(json.dumps(value), len(prompt), count, "stop")
                return value
            log.debug("grammar run %d gave no valid object; trying again", attempt + 1)
        return self._json_guided(prompt, schema, params, seed, validator)

    def _grammar(self, schema: dict[str, Any]) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar

        try:
            return LlamaGrammar.from_json_schema(json.dumps(_for_grammar(schema)), verbose=False)
        except Exception as exc:  # the converter refuses some schema constructs
            log.debug("no grammar for this schema (%s); using guided decoding", exc)
            return None

    def _token_classes(self) -> dict[str, npt.NDArray[np.bool_]]:
        if not self._classes:
            import llama_cpp

            vocab = self._llama._model.vocab
            pieces = [self._piece(i) for i in range(self._n_vocab)]
            self._classes = {
                "quote": np.array([b'"' in p for p in pieces]),
                "blank": np.array([bool(p) and not p.strip() for p in pieces]),
                "byte": np.array(
                    [
                        (len(p) == 1 and p[0] >= 0x80)
                        or any(b < 0x20 for b in p)
                        or bool(llama_cpp.llama_vocab_is_control(vocab, i))
                        for i, p in enumerate(pieces)
                    ]
                ),
                "eog": np.array(
                    [bool(llama_cpp.llama_vocab_is_eog(vocab, i)) for i in range(self._n_vocab)]
                ),
            }
        return self._classes

    def _json_once(
        self, prompt: list[int], grammar: Any, params: GenerationParams
    ) -> tuple[Any, int]:
        """One grammar-constrained run; the parsed value (None if incomplete) and tokens."""
        from llama_cpp import llama_cpp as capi

        classes = self._token_classes()
        scan = _JsonScan()
        bias = np.zeros(self._n_vocab, dtype=np.float32)

        def apply(cur_p: Any) -> None:
            bias.fill(0.0)
            if scan.in_string:
                bias[classes["quote"]] = 1.0 + 0.3 * scan.string_length
                bias[classes["byte"]] = -10.0
                bias[classes["eog"]] = -10.0
            elif scan.started:
                bias[classes["blank"]] = -5.0
            array = cur_p.contents
            size = int(array.size)
            data = (capi.llama_token_data * size).from_address(
                ctypes.addressof(array.data.contents)
            )
            view = np.ctypeslib.as_array(data)
            view["logit"] += bias[view["id"]]

        sampler = self._sampler(params, grammar=grammar, bias=apply)
        data = bytearray()
        count = 0
        try:
            for token in self._tokens(prompt, params, sampler):
                if self._is_eog(token):
                    break
                count += 1
                piece = self._piece(token)
                data += piece
                scan.feed(piece)
                if scan.done:
                    break
        finally:
            sampler.close()
        if not scan.done:
            return None, count
        try:
            return json.loads(bytes(data[: scan.end]).decode("utf-8")), count
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None, count

    def _logprobs(self, prefix: Sequence[int]) -> npt.NDArray[np.float64]:
        self._feed(prefix)
        pointer = self._llama._ctx.get_logits()
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).astype(np.float64)
        top = float(logits.max())
        return logits - (top + math.log(float(np.exp(logits - top).sum())))

    def _json_guided(
        self,
        prompt: list[int],
        schema: dict[str, Any],
        params: GenerationParams,
        seed: int,
        validator: Any,
    ) -> dict[str, Any]:
        from sahara_cli.agent.runners.guided import GuidedDecoder, GuidedVocab, SchemaUnsupported

        if self._guided_vocab is None:
            import llama_cpp

            vocab = self._llama._model.vocab
            pieces: list[str | None] = []
            for i in range(self._n_vocab):
                if llama_cpp.llama_vocab_is_control(vocab, i) or llama_cpp.llama_vocab_is_eog(
                    vocab, i
                ):
                    pieces.append(None)
                    continue
                try:
                    pieces.append(self._piece(i).decode("utf-8"))
                except UnicodeDecodeError:
                    pieces.append(None)
            self._guided_vocab = GuidedVocab(pieces, self._tokenize)
        decoder = GuidedDecoder(
            self._logprobs,
            self._guided_vocab,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=seed,
        )
        try:
            result = decoder.generate(prompt, schema)
        except SchemaUnsupported as exc:
            raise AgentError(f"cannot generate JSON for this schema: {exc}") from exc
        if not isinstance(result.value, dict) or not validator.is_valid(result.value):
            raise AgentError(
                "the schema asks for something guided decoding cannot produce",
                hint="Use objects, strings, numbers, booleans, arrays, enums and anyOf.",
            )
        self._last = Completion(result.text, len(prompt), result.tokens, "stop")
        value: dict[str, Any] = result.value
        return value


def _for_grammar(schema: Any) -> Any:
    """The schema with what the grammar converter ignores made explicit: a bounded
    integer of at most 256 values becomes the enum of those values."""
    if isinstance(schema, list):
        return [_for_grammar(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _for_grammar(v) for k, v in schema.items()}
    low, high = schema.get("minimum"), schema.get("maximum")
    if (
        schema.get("type") == "integer"
        and isinstance(low, int)
        and isinstance(high, int)
        and 0 <= high - low < 256
        and "enum" not in schema
    ):
        out = {"enum": list(range(low, high + 1))}
    return out


class _JsonScan:
    """Follows JSON text byte by byte: inside a string or not, and where the first
    top-level value ends."""

    def __init__(self) -> None:
        self.in_string = False
        self.escape = False
        self.depth = 0
        self.started = False
        self.done = False
        self.end = 0
        self.string_length = 0
        self._pos = 0

    def feed(self, data: bytes) -> None:
        for byte in data:
            self._pos += 1
            if self.done:
                return
            char = chr(byte)
            if self.in_string:
                if self.escape:
                    self.escape = False
                elif char == "\\":
                    self.escape = True
                elif char == '"':
                    self.in_string = False
                    if self.depth == 0:
                        self._finish()
                elif byte < 0x80 or byte >= 0xC0:  # count characters, not bytes
                    self.string_length += 1
                continue
            if char == '"':
                self.in_string = True
                self.started = True
                self.string_length = 0
            elif char in "{[":
                self.depth += 1
                self.started = True
            elif char in "}]":
                self.depth -= 1
                if self.depth <= 0:
                    self._finish()

    def _finish(self) -> None:
        self.done = True
        self.end = self._pos


def _handler_error(exc: ValueError) -> AgentError:
    """What a ValueError of the llava chat handler means."""
    message = str(exc)
    if "n_ctx" in message:
        return ContextTooLong(f"the prompt with its images does not fit the context: {message}")
    if "bitmap" in message:
        return PerceptionUnsupported(
            "an image could not be decoded", hint="Use png, jpg, gif or bmp files."
        )
    return ModelInvalid(f"the multimodal projector failed: {message}")


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(str(path))[0] or "image/png"
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:{mime};base64,{encoded}"
