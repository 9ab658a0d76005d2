"""Schema-guided JSON decoding over any language model.

The decoder writes the JSON structure itself (braces, keys, commas, quotes) and lets
the model choose only the values, each under the schema's constraints, so the result
parses and validates by construction, even with a random model:

- ``enum`` / ``const`` / booleans: the option whose tokens the model finds most likely
  (sampled with the temperature, or the best at temperature 0);
- strings: tokens sampled from those whose text holds no quote, backslash or control
  character, closed when the model prefers a quote, and always by ``maxLength`` (or a
  default bound);
- integers and numbers: digit tokens, bounded length, clamped into ``minimum`` /
  ``maximum``; small ranges are chosen like an enum;
- arrays: items until the model prefers ``]``, within ``minItems`` / ``maxItems`` (or a
  default bound);
- objects: required properties always, optional ones when the model prefers the key;
- ``anyOf`` / ``oneOf``: the branch whose opening (its discriminating ``const`` / ``enum``
  property, else its first key) the model finds most likely; ``allOf`` of objects is
  merged; local ``$ref`` is followed.

The model is seen through two small things only, so this module is testable without one:
a :data:`LogProbs` function (next-token log-probabilities for a token-id prefix) and a
:class:`GuidedVocab` (each token's text, and an encoder).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

#: Next-token log-probabilities (one float per vocabulary entry) after ``prefix``.
LogProbs = Callable[[Sequence[int]], npt.NDArray[np.floating[Any]]]

_FORBIDDEN = frozenset('"\\') | frozenset(chr(c) for c in range(0x20)) | {"\x7f"}
_CLOSERS = (",", "}", "]", " ", "\n")


class SchemaUnsupported(ValueError):
    """A schema construct the decoder cannot honour (e.g. ``not``, ``pattern``)."""


@dataclass
class GuidedVocab:
    """What the decoder needs of a tokenizer.

    ``pieces[i]`` is the text token ``i`` adds when it follows other text (None for
    control, byte and partial-character tokens, which values never use); ``encode``
    turns text into token ids without special tokens.
    """

    pieces: Sequence[str | None]
    encode: Callable[[str], list[int]]
    _arrays: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def _mask(self, name: str, test: Callable[[str], bool]) -> npt.NDArray[np.bool_]:
        cached = self._arrays.get(name)
        if cached is None:
            cached = np.array([p is not None and p != "" and test(p) for p in self.pieces])
            self._arrays[name] = cached
        return np.asarray(cached, dtype=np.bool_)

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        cached = self._arrays.get("lengths")
        if cached is None:
            cached = np.array([len(p) if p else 0 for p in self.pieces], dtype=np.int64)
            self._arrays["lengths"] = cached
        return np.asarray(cached, dtype=np.int64)

    def string_safe(self) -> npt.NDArray[np.bool_]:
        """Tokens whose text may sit inside a JSON string as is."""
        return self._mask("safe", lambda p: not (_FORBIDDEN & set(p)))

    def quote_start(self) -> npt.NDArray[np.bool_]:
        """Tokens whose text starts with a quote: the model wants to close a string."""
        return self._mask("quote", lambda p: p.startswith('"'))

    def digits(self) -> npt.NDArray[np.bool_]:
        return self._mask("digits", str.isdigit)

    def closers(self) -> npt.NDArray[np.bool_]:
        """Tokens that end a bare value (a number): comma, brace, bracket, space."""
        return self._mask("closers", lambda p: p.lstrip(" ")[:1] in _CLOSERS or p.isspace())


@dataclass
class GuidedResult:
    """The value, its JSON text, and the tokens the model saw appended."""

    value: Any
    text: str
    tokens: int


def _logsumexp(values: npt.NDArray[np.floating[Any]]) -> float:
    if values.size == 0:
        return -math.inf
    top = float(np.max(values))
    if top == -math.inf:
        return -math.inf
    return top + math.log(float(np.sum(np.exp(values - top))))


class GuidedDecoder:
    """Generate one JSON value for a schema, the model choosing every value."""

    def __init__(
        self,
        logprobs: LogProbs,
        vocab: GuidedVocab,
        *,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int | None = None,
        max_string: int = 48,
        max_items: int = 4,
        max_digits: int = 6,
    ) -> None:
        self._lp = logprobs
        self._vocab = vocab
        self._temperature = temperature
        self._top_p = top_p
        self._rng = np.random.default_rng(seed)
        self._max_string = max_string
        self._max_items = max_items
        self._max_digits = max_digits
        self._ids: list[int] = []
        self._out: list[str] = []
        self._tokens = 0
        self._root: dict[str, Any] = {}

    # -- public --------------------------------------------------------------------

    def generate(self, prompt: Sequence[int], schema: dict[str, Any]) -> GuidedResult:
        """A value for ``schema`` after the token ids ``prompt``."""
        self._ids = list(prompt)
        self._out = []
        self._tokens = 0
        self._root = schema
        self._value(schema)
        text = "".join(self._out)
        return GuidedResult(json.loads(text), text, self._tokens)

    # -- the model -----------------------------------------------------------------

    def _emit(self, text: str) -> None:
        """Structure the decoder writes: the model reads it, does not choose it."""
        self._out.append(text)
        ids = self._vocab.encode(text)
        self._ids.extend(ids)
        self._tokens += len(ids)

    def _take(self, token: int) -> None:
        self._ids.append(token)
        self._tokens += 1

    def _pick(self, scores: npt.NDArray[np.floating[Any]]) -> int:
        """Sample an index from log-scores with temperature and top-p."""
        finite = np.isfinite(scores)
        if not finite.any():
            return 0
        if self._temperature <= 0:
            return int(np.argmax(np.where(finite, scores, -np.inf)))
        logits = np.where(finite, scores / self._temperature, -np.inf)
        probs = np.exp(logits - np.max(logits))
        probs /= probs.sum()
        order = np.argsort(-probs)
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, self._top_p)) + 1]
        kept = probs[keep] / probs[keep].sum()
        return int(keep[self._rng.choice(len(keep), p=kept)])

    def _choose(self, texts: Sequence[str]) -> int:
        """Pick one of ``texts`` the way constrained sampling would: token by token,
        among the tokens that keep some option possible, until one option is left.

        An option that ends where others go on competes with the chance that the model
        does not continue with any of their next tokens.
        """
        if len(texts) == 1:
            return 0
        encoded = [self._vocab.encode(t) for t in texts]
        alive = list(range(len(texts)))
        prefix = list(self._ids)
        pos = 0
        while len(alive) > 1:
            ended = [i for i in alive if len(encoded[i]) <= pos]
            going: dict[int, list[int]] = {}
            for i in alive:
                if len(encoded[i]) > pos:
                    going.setdefault(encoded[i][pos], []).append(i)
            if not going:
                return ended[0]
            lp = self._lp(prefix)
            tokens = list(going)
            scores = [float(lp[t]) for t in tokens]
            if ended:
                mass = float(np.sum(np.exp(np.array(scores))))
                scores.append(math.log(max(1.0 - mass, 1e-12)))
            index = self._pick(np.array(scores))
            if index == len(tokens):
                return ended[0]
            alive = going[tokens[index]]
            prefix.append(tokens[index])
            pos += 1
        return alive[0]

    # -- schemas -------------------------------------------------------------------

    def _resolve(self, schema: Any) -> dict[str, Any]:
        if schema is True or schema is None:
            return {}
        if not isinstance(schema, dict):
            raise SchemaUnsupported(f"not a schema: {schema!r}")
        seen = 0
        while "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise SchemaUnsupported(f"only local $ref is supported, not {ref!r}")
            target: Any = self._root
            for step in filter(None, ref[1:].split("/")):
                target = target[step.replace("~1", "/").replace("~0", "~")]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
            if seen > 32:
                raise SchemaUnsupported("$ref cycle")
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for raw in schema["allOf"]:
                part = self._resolve(raw)
                merged.setdefault("properties", {}).update(part.get("properties", {}))
                merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                for key, value in part.items():
                    if key not in ("properties", "required"):
                        merged.setdefault(key, value)
            schema = merged
        return dict(schema)

    def _value(self, schema: Any) -> Any:
        schema = self._resolve(schema)
        if "const" in schema:
            self._emit(json.dumps(schema["const"]))
            return schema["const"]
        if "enum" in schema:
            options = list(schema["enum"])
            texts = [json.dumps(o) for o in options]
            index = self._choose(texts)
            self._emit(texts[index])
            return options[index]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._branch(schema, key)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = kind[self._choose([_lead_of_type(k) for k in kind])] if kind else None
        if kind is None:
            if "properties" in schema:
                kind = "object"
            elif "items" in schema:
                kind = "array"
            else:
                kind = "string"
        handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "object": self._object,
            "array": self._array,
            "string": self._string,
            "integer": self._integer,
            "number": self._number,
            "boolean": self._boolean,
            "null": self._null,
        }
        handler = handlers.get(kind)
        if handler is None:
            raise SchemaUnsupported(f"type {kind!r}")
        return handler(schema)

    def _branch(self, schema: dict[str, Any], key: str) -> Any:
        branches = [self._resolve(b) for b in schema[key]]
        base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        leads: list[str] = []
        firsts: list[str | None] = []
        for branch in branches:
            merged = {**base, **branch}
            first = _discriminator(merged, branches)
            firsts.append(first)
            leads.append(_lead(merged, first))
        index = self._choose(leads)
        chosen = {**base, **branches[index]}
        if _is_object(chosen):
            return self._object(chosen, first=firsts[index])
        return self._value(chosen)

    def _object(self, schema: dict[str, Any], first: str | None = None) -> dict[str, Any]:
        props: dict[str, Any] = dict(schema.get("properties", {}))
        required: list[str] = list(dict.fromkeys(schema.get("required", [])))
        keys = list(props) + [r for r in required if r not in props]
        if first is not None and first in keys:
            keys.remove(first)
            keys.insert(0, first)
        result: dict[str, Any] = {}
        self._emit("{")
        for key in keys:
            if key not in required and key != first:
                # Optional: include it when the model prefers the key to closing.
                sep = ", " if result else ""
                if self._choose([f"{sep}{json.dumps(key)}", "}"]) != 0:
                    continue
            self._emit((", " if result else "") + json.dumps(key) + ": ")
            result[key] = self._value(props.get(key, {}))
        self._emit("}")
        return result

    def _array(self, schema: dict[str, Any]) -> list[Any]:
        items = self._resolve(schema.get("items", {}))
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, self._max_items)))
        unique = bool(schema.get("uniqueItems", False))
        result: list[Any] = []
        repeats = 0
        self._emit("[")
        while len(result) < high:
            if len(result) >= low:
                go_on = (", " if result else "") + _lead(items, None)
                if self._choose([go_on, "]"]) != 0:
                    break
            mark = (len(self._out), len(self._ids))
            if result:
                self._emit(", ")
            item = self._value(items)
            if unique and item in result:
                # A repeat would break uniqueItems: take it back and close.
                del self._out[mark[0] :]
                del self._ids[mark[1] :]
                repeats += 1
                if len(result) >= low or repeats > 8:
                    break
                continue
            result.append(item)
        self._emit("]")
        return result

    def _string(self, schema: dict[str, Any]) -> str:
        vocab = self._vocab
        high = int(schema.get("maxLength", self._max_string))
        low = min(int(schema.get("minLength", 0)), high)
        safe = vocab.string_safe()
        quote = vocab.quote_start()
        lengths = vocab.lengths
        text = ""
        self._emit_tokens_only('"')
        while len(text) < high:
            lp = self._lp(self._ids)
            room = high - len(text)
            allowed = np.flatnonzero(safe & (lengths <= room))
            if not text:
                # No leading blanks: a value starts with something to read.
                allowed = np.array(
                    [t for t in allowed if not (vocab.pieces[int(t)] or " ").isspace()],
                    dtype=np.int64,
                )
            if allowed.size == 0:
                break
            close = _logsumexp(lp[quote]) if quote.any() else -math.inf
            if len(text) < low:
                close = -math.inf
            elif math.isfinite(close):
                close += 0.25 * len(text)  # longer strings close more readily
            scores = np.append(lp[allowed], close)
            index = self._pick(scores)
            if index == allowed.size:
                break
            token = int(allowed[index])
            self._take(token)
            text += vocab.pieces[token] or ""
        self._out.append(json.dumps(text))
        self._emit_tokens_only('"')
        return text

    def _emit_tokens_only(self, text: str) -> None:
        ids = self._vocab.encode(text)
        self._ids.extend(ids)
        self._tokens += len(ids)

    def _digits(self, count: int, *, leading_zero: bool) -> str:
        """Digit tokens until the model prefers to end the number, at most ``count``."""
        vocab = self._vocab
        digits = vocab.digits()
        closers = vocab.closers()
        lengths = vocab.lengths
        text = ""
        while len(text) < count:
            lp = self._lp(self._ids)
            allowed = np.flatnonzero(digits & (lengths <= count - len(text)))
            if not text and not leading_zero:
                allowed = np.array(
                    [t for t in allowed if not (vocab.pieces[int(t)] or "0").startswith("0")],
                    dtype=np.int64,
                )
            if allowed.size == 0:
                break
            end = _logsumexp(lp[closers]) if text and closers.any() else -math.inf
            index = self._pick(np.append(lp[allowed], end))
            if index == allowed.size:
                break
            token = int(allowed[index])
            self._take(token)
            text += vocab.pieces[token] or ""
            if text == "0":
                break
        return text or "0"

    def _bounds(self, schema: dict[str, Any]) -> tuple[float | None, float | None, bool, bool]:
        """Lower and upper bounds, and whether each is exclusive (draft 6+ form)."""
        low, high = schema.get("minimum"), schema.get("maximum")
        low_x = high_x = False
        if isinstance(schema.get("exclusiveMinimum"), (int, float)):
            low, low_x = schema["exclusiveMinimum"], True
        if isinstance(schema.get("exclusiveMaximum"), (int, float)):
            high, high_x = schema["exclusiveMaximum"], True
        return low, high, low_x, high_x

    def _integer(self, schema: dict[str, Any]) -> int:
        low, high, low_x, high_x = self._bounds(schema)
        lo = None if low is None else (math.floor(low) + 1 if low_x else math.ceil(low))
        hi = None if high is None else (math.ceil(high) - 1 if high_x else math.floor(high))
        if lo is not None and hi is not None:
            if hi < lo:
                raise SchemaUnsupported(f"no integer lies between {low} and {high}")
            if hi - lo <= 32:
                options = [str(v) for v in range(lo, hi + 1)]
                index = self._choose(options)
                self._emit(options[index])
                return lo + index
        negative = (lo is None or lo < 0) and self._choose(["-", "1"]) == 0
        if negative:
            self._emit_tokens_only("-")
        value = int(self._digits(self._max_digits, leading_zero=True))
        value = -value if negative else value
        if lo is not None:
            value = max(value, lo)
        if hi is not None:
            value = min(value, hi)
        self._out.append(str(value))
        return value

    def _number(self, schema: dict[str, Any]) -> float:
        low, high, low_x, high_x = self._bounds(schema)
        negative = (low is None or low < 0) and self._choose(["-", "1"]) == 0
        if negative:
            self._emit_tokens_only("-")
        text = self._digits(self._max_digits, leading_zero=True)
        if self._choose([".", ","]) == 0:
            self._emit_tokens_only(".")
            text += "." + self._digits(4, leading_zero=True)
        value = float(("-" if negative else "") + text)
        if low is not None and (value < low or (low_x and value <= low)):
            value = float(low) if not low_x else float(low) + 0.5
        if high is not None and (value > high or (high_x and value >= high)):
            value = float(high) if not high_x else float(high) - 0.5
        if low is not None and high is not None and not (low <= value <= high):
            value = (float(low) + float(high)) / 2
        self._out.append(json.dumps(value))
        return value

    def _boolean(self, schema: dict[str, Any]) -> bool:  # noqa: ARG002 - uniform handler
        index = self._choose(["true", "false"])
        self._emit(("true", "false")[index])
        return index == 0

    def _null(self, schema: dict[str, Any]) -> None:  # noqa: ARG002 - uniform handler
        self._emit("null")


def _is_object(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" or "properties" in schema


def _lead_of_type(kind: str) -> str:
    return {
        "object": "{",
        "array": "[",
        "string": '"',
        "integer": "1",
        "number": "1",
        "boolean": "true",
        "null": "null",
    }.get(kind, '"')


def _lead(schema: dict[str, Any], first: str | None) -> str:
    """The opening text of a value of ``schema``: what branches are told apart by."""
    if "const" in schema:
        return json.dumps(schema["const"])
    if schema.get("enum"):
        return json.dumps(schema["enum"][0])
    if _is_object(schema):
        props = schema.get("properties", {})
        key = first if first is not None else next(iter(props), None)
        if key is None:
            return "{}"
        sub = props.get(key, {})
        if isinstance(sub, dict) and "const" in sub:
            return "{" + json.dumps(key) + ": " + json.dumps(sub["const"])
        if isinstance(sub, dict) and len(sub.get("enum", [])) == 1:
            return "{" + json.dumps(key) + ": " + json.dumps(sub["enum"][0])
        return "{" + json.dumps(key) + ": "
    kind = schema.get("type")
    return _lead_of_type(kind if isinstance(kind, str) else "string")


def _discriminator(branch: dict[str, Any], branches: list[dict[str, Any]]) -> str | None:
    """The property of ``branch`` holding a const (or one-value enum) that tells it apart."""
    if not _is_object(branch):
        return None
    props: dict[str, Any] = branch.get("properties", {})
    required = set(branch.get("required", []))
    candidates: list[str] = [
        str(key)
        for key, sub in props.items()
        if isinstance(sub, dict) and ("const" in sub or len(sub.get("enum", [])) == 1)
    ]
    # Prefer a required key that every branch has: the usual tagged union.
    for key in candidates:
        if key in required and all(key in b.get("properties", {}) for b in branches):
            return key
    if candidates:
        return candidates[0]
    return next((str(k) for k in props), None)
