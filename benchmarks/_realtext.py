"""Top-1 agreement on real text: the project's own README and docs, chunked as the vault does.

The synthetic corpus of ``vault.py`` is random topic words, so many of its queries have
two chunks within a few thousandths of cosine of each other: it is a strict test of
whether two embedders give the same vectors. This corpus is prose: each Markdown file is
cut by ``chunk_text`` (the vault's chunker) and the queries are its headings and the
first sentence of every third chunk. Both embedders embed the chunks and the queries;
the best chunk of each query is found exactly (a dot product over all chunks), so the
figure measures the embedders and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLOSE_GAP = 0.0036  # a top-1/top-2 cosine gap under this is a close call
_SENTENCE = re.compile(r"(?s)(.+?[.!?])(?:\s|$)")


def docs_corpus(root: Path = ROOT) -> tuple[list[str], list[str]]:
    """The chunks of README.md and docs/*.md, and the queries made from them."""
    from sahara_cli.vault.text import chunk_text

    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    chunks: list[str] = []
    queries: list[str] = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            heading = line.lstrip("#").strip(" `")
            if line.startswith("#") and len(heading.split()) >= 2:
                queries.append(heading)
        for number, chunk in enumerate(chunk_text(text)):
            chunks.append(chunk.text)
            if number % 3 == 0:
                prose = "\n".join(
                    line for line in chunk.text.splitlines() if not line.startswith("#")
                )
                found = _SENTENCE.match(prose.lstrip("> -*|"))
                sentence = " ".join(found.group(1).split()) if found else ""
                if 5 <= len(sentence.split()) <= 40:
                    queries.append(sentence)
    return chunks, sorted(set(queries), key=queries.index)


def agreement(
    ours: Callable[[Sequence[str]], Any], peer: Callable[[list[str]], Any]
) -> dict[str, Any]:
    """Top-1 agreement of ``ours`` against ``peer`` (the float model) on the docs corpus."""
    import numpy as np

    chunks, queries = docs_corpus()
    ours_scores = np.asarray(ours(queries)) @ np.asarray(ours(chunks)).T
    peer_scores = np.asarray(peer(queries)) @ np.asarray(peer(chunks)).T
    peer_top2 = np.sort(peer_scores, axis=1)[:, -2:]
    close = peer_top2[:, 1] - peer_top2[:, 0] < CLOSE_GAP
    same = ours_scores.argmax(axis=1) == peer_scores.argmax(axis=1)
    return {
        "chunks": len(chunks),
        "queries": len(queries),
        "top1_agreement": round(float(same.mean()), 3),
        "close_calls": round(float(close.mean()), 3),
    }
