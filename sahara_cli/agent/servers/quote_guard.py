"""The quote guard: a served answer never copies a private passage at length.

:class:`QuoteGuard` knows the private passages an answer's prompt held and redacts
every run of more than ``max_words`` consecutive words of the answer that also stands
in one of them. A redacted run becomes one :data:`MARKER`.

Words are compared as a reader sees them (:func:`fold`): case-folded, in compatibility
form (fullwidth letters, ligatures), without accents or other combining marks and
without invisible format characters (zero-width spaces, soft hyphens). A word is a run
of letters and digits (``_`` separates words, as punctuation does), and each Han, kana
or Hangul syllable is a word of its own, since those scripts do not put spaces between
words. Redaction replaces the answer's own characters, however they were written.

The passages of one item (the chunks of one document, in a list) are read joined
too, in either order, so a run that spans the join of two chunks (which do not overlap)
counts as one quote.

It works on a stream: :meth:`QuoteGuard.feed` takes each piece of the reply as the
model writes it and returns what may be sent now; :meth:`QuoteGuard.close` returns the
rest. It holds back the last ``max_words`` words (a rolling window): a word goes out
only once no longer run could include it, so a streamed answer is redacted exactly
as the whole answer would be, and no part of a redacted run is ever sent.

What it cannot do: it is a verbatim guard. A filler word every ``max_words`` words,
a paraphrase or a translation carries a passage's content past it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

MARKER = "[redacted: quotes a private passage]"
DEFAULT_MAX_WORDS = 25

#: Categories that do not count at all: combining marks and invisible format characters.
_IGNORED = frozenset({"Mn", "Me", "Cf"})
# What a folded character is to the word splitter.
_BREAK, _LETTER, _SYLLABLE, _JAMO_LEAD, _JAMO_REST = range(5)
#: Scripts written without spaces: each character (Han, kana) is one word.
_SYLLABIC = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3FFFF),  # CJK extensions B and on
)


@lru_cache(maxsize=8192)
def fold(char: str) -> str:
    """What one character of text counts as: case-folded, compatibility-decomposed,
    without combining marks or format characters (often ``""``; a ligature or a
    Hangul syllable folds to more than one)."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", char).casefold())
    return "".join(c for c in text if unicodedata.category(c) not in _IGNORED)


@lru_cache(maxsize=8192)
def _kind(char: str) -> int:
    """What a folded character does to a word."""
    if not char.isalnum():
        return _BREAK
    code = ord(char)
    if 0x1100 <= code <= 0x115F or 0xA960 <= code <= 0xA97F:
        return _JAMO_LEAD  # a Hangul syllable starts with its leading consonant
    if 0x1160 <= code <= 0x11FF or 0xD7B0 <= code <= 0xD7FF:
        return _JAMO_REST
    if any(lo <= code <= hi for lo, hi in _SYLLABIC):
        return _SYLLABLE
    return _LETTER


class _Splitter:
    """Splits text, fed in pieces, into folded words, each with the span of the
    original characters it was read from. A word is given out once a later character
    shows it has ended (or at :meth:`finish`), so pieces split the text anywhere."""

    def __init__(self) -> None:
        self._chars: list[str] = []
        self._kind = _BREAK
        self._start = 0
        self._end = 0

    def feed(self, text: str, start: int) -> Iterator[tuple[str, int, int]]:
        """The words that ended within ``text[start:]``."""
        for i in range(start, len(text)):
            for char in fold(text[i]):
                kind = _kind(char)
                if kind == _BREAK:
                    yield from self.finish()
                    continue
                joins = (kind == _LETTER and self._kind == _LETTER) or (
                    kind == _JAMO_REST and self._kind in (_JAMO_LEAD, _JAMO_REST)
                )
                if not joins:
                    yield from self.finish()
                    self._start = i
                    self._kind = kind
                self._chars.append(char)
                self._end = i + 1

    def finish(self) -> Iterator[tuple[str, int, int]]:
        """The word under way, if any: the text ended (or a break came)."""
        if self._chars:
            yield "".join(self._chars), self._start, self._end
            self._chars = []
        self._kind = _BREAK


def words(text: str) -> list[str]:
    """The folded words of ``text``."""
    splitter = _Splitter()
    found = [word for word, _, _ in splitter.feed(text, 0)]
    found.extend(word for word, _, _ in splitter.finish())
    return found


@dataclass
class QuoteGuard:
    """Redacts runs of more than ``max_words`` words copied from ``passages``: each a
    passage's text, or a list of the texts of one item's chunks (read alone and each
    two joined)."""

    passages: Iterable[str | Sequence[str]]
    max_words: int = DEFAULT_MAX_WORDS
    redacted_spans: int = field(default=0, init=False)
    redacted_words: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.max_words < 1:
            raise ValueError("max_words must be at least 1")
        n = self.max_words + 1
        self._n = n
        self._grams: set[tuple[str, ...]] = set()
        for passage in self.passages:
            chunks = [words(passage)] if isinstance(passage, str) else [words(t) for t in passage]
            for found in chunks:
                self._add_grams(found)
            # A run across the join of two chunks: the last words of one, the first
            # of another (the chunks' order is not known, so both ways).
            for a, head in enumerate(chunks):
                for b, tail in enumerate(chunks):
                    if a != b:
                        self._add_grams(head[-(n - 1) :] + tail[: n - 1])
        self._text = ""
        self._splitter = _Splitter()
        self._scan = 0  # the characters read so far
        self._spans: list[tuple[int, int]] = []  # each complete word's characters
        self._norm: list[str] = []
        self._covered: list[bool] = []
        self._pos = 0  # characters of the text handled (sent or redacted)
        self._sent = 0  # words handled
        self._redacting = False

    def _add_grams(self, found: list[str]) -> None:
        n = self._n
        for i in range(len(found) - n + 1):
            self._grams.add(tuple(found[i : i + n]))

    @property
    def active(self) -> bool:
        """Whether there is anything to guard (a private passage long enough)."""
        return bool(self._grams)

    def feed(self, piece: str) -> str:
        """Take the next piece of the answer; return the text that may be sent now."""
        self._text += piece
        for word in self._splitter.feed(self._text, self._scan):
            self._add(*word)
        self._scan = len(self._text)
        return self._emit(len(self._spans) - self._n + 1)

    def close(self) -> str:
        """The end of the answer: the rest of the text that may be sent."""
        for word in self._splitter.finish():
            self._add(*word)
        out = self._emit(len(self._spans))
        rest = self._text[self._pos :]
        self._pos = len(self._text)
        return out + rest

    def filter(self, text: str) -> str:
        """A whole answer, redacted."""
        return self.feed(text) + self.close()

    def _add(self, word: str, start: int, end: int) -> None:
        self._spans.append((start, end))
        self._norm.append(word)
        self._covered.append(False)
        last = len(self._norm)
        if self._grams and last >= self._n and tuple(self._norm[last - self._n :]) in self._grams:
            for i in range(last - self._n, last):
                self._covered[i] = True

    def _emit(self, upto: int) -> str:
        """The text of words ``[sent, upto)`` (and the gaps before them), runs of
        covered words each replaced by one marker. Two words read from one character
        (a ligature, say) give it out once."""
        out: list[str] = []
        for i in range(self._sent, max(upto, self._sent)):
            start, end = self._spans[i]
            start = max(start, self._pos)
            gap = self._text[self._pos : start]
            if self._covered[i]:
                if not self._redacting:
                    out.append(gap + MARKER)
                    self._redacting = True
                    self.redacted_spans += 1
                self.redacted_words += 1
            else:
                out.append(gap + self._text[start:end])
                self._redacting = False
            self._pos = max(end, self._pos)
            self._sent = i + 1
        return "".join(out)

    def report(self) -> dict[str, object]:
        """What the caller is told: the limit and what was redacted, and why."""
        out: dict[str, object] = {
            "max_quote_words": self.max_words,
            "redacted_spans": self.redacted_spans,
            "redacted_words": self.redacted_words,
        }
        if self.redacted_spans:
            out["reason"] = (
                f"{self.redacted_spans} part(s) of the answer quoted more than "
                f"{self.max_words} consecutive words of a private passage and were redacted"
            )
        return out
