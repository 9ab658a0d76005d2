"""The quote guard: a served answer never copies a private passage at length.

:class:`QuoteGuard` knows the private passages an answer's prompt held and redacts
every run of more than ``max_words`` consecutive words of the answer that also stands
in one of them. Words are runs of letters and digits compared case-folded, so
changing case or punctuation does not get a quote past it. A redacted run becomes
one :data:`MARKER`.

It works on a stream: :meth:`QuoteGuard.feed` takes each piece of the reply as the
model writes it and returns what may be sent now; :meth:`QuoteGuard.close` returns the
rest. It holds back the last ``max_words`` words (a rolling window): a word goes out
only once no longer run could include it, so a streamed answer is redacted exactly
as the whole answer would be, and no part of a redacted run is ever sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

WORD = re.compile(r"\w+")
MARKER = "[redacted: quotes a private passage]"
DEFAULT_MAX_WORDS = 25


def words(text: str) -> list[str]:
    """The case-folded words of ``text``."""
    return [w.casefold() for w in WORD.findall(text)]


@dataclass
class QuoteGuard:
    """Redacts runs of more than ``max_words`` words copied from ``passages``."""

    passages: Iterable[str]
    max_words: int = DEFAULT_MAX_WORDS
    redacted_spans: int = field(default=0, init=False)
    redacted_words: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.max_words < 1:
            raise ValueError("max_words must be at least 1")
        n = self.max_words + 1
        self._n = n
        self._grams: set[tuple[str, ...]] = set()
        for text in self.passages:
            found = words(text)
            for i in range(len(found) - n + 1):
                self._grams.add(tuple(found[i : i + n]))
        self._text = ""
        self._scan = 0  # where the next word may start
        self._spans: list[tuple[int, int]] = []  # each complete word's characters
        self._norm: list[str] = []
        self._covered: list[bool] = []
        self._pos = 0  # characters of the text handled (sent or redacted)
        self._sent = 0  # words handled
        self._redacting = False

    @property
    def active(self) -> bool:
        """Whether there is anything to guard (a private passage long enough)."""
        return bool(self._grams)

    def feed(self, piece: str) -> str:
        """Take the next piece of the answer; return the text that may be sent now."""
        self._text += piece
        for match in WORD.finditer(self._text, self._scan):
            if match.end() == len(self._text):
                break  # the word may go on in the next piece
            self._add(match)
        return self._emit(len(self._spans) - self._n + 1)

    def close(self) -> str:
        """The end of the answer: the rest of the text that may be sent."""
        for match in WORD.finditer(self._text, self._scan):
            self._add(match)
        out = self._emit(len(self._spans))
        rest = self._text[self._pos :]
        self._pos = len(self._text)
        return out + rest

    def filter(self, text: str) -> str:
        """A whole answer, redacted."""
        return self.feed(text) + self.close()

    def _add(self, match: re.Match[str]) -> None:
        self._spans.append((match.start(), match.end()))
        self._norm.append(match.group().casefold())
        self._covered.append(False)
        self._scan = match.end()
        end = len(self._norm)
        if self._grams and end >= self._n and tuple(self._norm[end - self._n :]) in self._grams:
            for i in range(end - self._n, end):
                self._covered[i] = True

    def _emit(self, upto: int) -> str:
        """The text of words ``[sent, upto)`` (and the gaps before them), runs of
        covered words each replaced by one marker."""
        out: list[str] = []
        for i in range(self._sent, max(upto, self._sent)):
            start, end = self._spans[i]
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
            self._pos = end
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
