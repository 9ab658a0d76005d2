"""Text for the vault's search index: which items are text, their text, and its chunks.

:func:`text_kind` decides from the name and the first bytes whether an item is text:
``.txt``/``.md`` and other plain text, ``.pdf``, ``.html``/``.htm``, ``.csv``/``.tsv`` and
``.json``/``.jsonl`` by extension; a known binary extension (images, archives, weights)
never; any other name when its content looks like a PDF or HTML, or decodes as UTF-8
with no NUL byte.

:func:`extract` turns the bytes into text: pypdf for PDF, the standard library's HTML
parser (``script`` and ``style`` dropped, block elements made into lines and paragraphs),
CSV rows as cells joined by ``", "``, JSON pretty-printed, anything else decoded as UTF-8
(a byte-order mark honoured, bad bytes replaced). Only the first ``limit`` characters
are kept (:data:`DEFAULT_LIMIT`, 8 Mi); :class:`Extracted` says when that cap cut the
text, so the caller can report it. Extraction never holds more than the input, the
capped text and one working copy of it.

:func:`chunk_text` cuts text into overlapping windows of words for embedding; each
:class:`Chunk` carries its character offsets, and ``text[chunk.start:chunk.end]`` is its
text.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath

log = logging.getLogger("sahara.vault")

DEFAULT_LIMIT = 8 * 2**20  # characters of text indexed per item
DEFAULT_WORDS = 200
DEFAULT_OVERLAP = 40
# Longest run of non-space characters that counts as one word: longer runs (a minified
# line, base64) are cut, so that no chunk grows without bound.
MAX_WORD_CHARS = 50
SNIFF_BYTES = 8192
# JSON larger than this is indexed as it is, not parsed (a parse costs ~10x its size).
JSON_PRETTY_MAX = 4 * 2**20

KINDS = ("text", "markdown", "pdf", "html", "csv", "json")

_EXTENSIONS = {
    ".txt": "text",
    ".text": "text",
    ".log": "text",
    ".rst": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".pdf": "pdf",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "text",
    ".ndjson": "text",
}


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_BINARY_EXTENSIONS = _names(
    ".png .jpg .jpeg .gif .webp .bmp .tif .tiff .ico .heic .avif .svgz "
    ".mp3 .wav .flac .ogg .m4a .mp4 .mov .avi .mkv .webm "
    ".zip .gz .tgz .bz2 .xz .zst .7z .rar .tar .car "
    ".bin .safetensors .pt .pth .ckpt .onnx .gguf .npy .npz .pkl .pickle .h5 .parquet "
    ".arrow .feather .tflite .mlmodel .exe .dll .so .dylib .wasm .class .jar .sqlite .db "
    ".doc .docx .xls .xlsx .ppt .pptx .odt .epub"
)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([a-zA-Z0-9_.:-]+)""", re.I)


@dataclass(frozen=True)
class Extracted:
    """The text of one item, and whether the cap cut it."""

    text: str
    kind: str
    truncated: bool
    limit: int  # the cap in characters that applied
    source_bytes: int


@dataclass(frozen=True)
class Chunk:
    """``text == source[start:end]`` of the text it was cut from; ``index`` counts from 0."""

    index: int
    text: str
    start: int
    end: int


# --- what is text -------------------------------------------------------------------


def _extension(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).suffix.lower()


def _bom(data: bytes) -> tuple[str, int] | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def looks_like_utf8(head: bytes) -> bool:
    """No NUL byte, and valid UTF-8 (a character cut at the end of ``head`` allowed when
    ``head`` is :data:`SNIFF_BYTES` long, the start of something longer)."""
    if b"\0" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < SNIFF_BYTES)
    except UnicodeDecodeError:
        return False
    return True


def text_kind(name: str, head: bytes) -> str | None:
    """The kind of text an item holds (see :data:`KINDS`), or None when it is not text.

    ``head`` is the content, or its first :data:`SNIFF_BYTES` (enough to decide).
    """
    head = head[:SNIFF_BYTES]
    ext = _extension(name)
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if ext in _BINARY_EXTENSIONS:
        return None
    kind = _EXTENSIONS.get(ext)
    if kind == "pdf":
        return None  # named .pdf, but not a PDF
    bom = _bom(head)
    if kind is not None:
        # A text extension on binary content is still binary (UTF-16/32 have NULs).
        return kind if bom is not None or b"\0" not in head else None
    if bom is None and not looks_like_utf8(head):
        return None
    if _HTML_START.match(head):
        return "html"
    return "text"


def is_text(name: str, head: bytes) -> bool:
    return text_kind(name, head) is not None


# --- extraction ---------------------------------------------------------------------


def extract_text(data: bytes, name: str, *, limit: int = DEFAULT_LIMIT) -> str | None:
    """The text of ``data`` (named ``name``), or None when it is not text."""
    found = extract(data, name, limit=limit)
    return None if found is None else found.text


def extract(data: bytes, name: str, *, limit: int = DEFAULT_LIMIT) -> Extracted | None:
    """The text of ``data``, at most ``limit`` characters, or None when it is not text.

    A PDF that pypdf cannot read (damaged, or encrypted with a password) gives None.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    kind = text_kind(name, data[:SNIFF_BYTES])
    if kind is None:
        return None
    if kind == "pdf":
        extracted = _pdf_text(data, limit)
        if extracted is None:
            return None
        text, truncated = extracted
    elif kind == "html":
        raw, truncated = _decode(data, limit, encoding=_html_charset(data))
        text = html_to_text(raw)
    elif kind == "csv":
        raw, truncated = _decode(data, limit)
        delimiter = "\t" if _extension(name) == ".tsv" else ","
        text = csv_to_text(raw, delimiter=delimiter)
    elif kind == "json":
        raw, truncated = _decode(data, limit)
        text = raw if truncated or len(raw) > JSON_PRETTY_MAX else json_to_text(raw)
    else:
        text, truncated = _decode(data, limit)
    if len(text) > limit:
        text, truncated = text[:limit], True
    return Extracted(text=text, kind=kind, truncated=truncated, limit=limit, source_bytes=len(data))


def _decode(data: bytes, limit: int, encoding: str = "utf-8") -> tuple[str, bool]:
    """The first ``limit`` characters of ``data``; bad bytes become U+FFFD.

    Decodes in 1 MiB steps, so a 50 MiB file costs the text kept, not the whole file.
    """
    view = memoryview(data)
    bom = _bom(data[:4])
    if bom is not None:
        encoding, skip = bom
        view = view[skip:]
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pieces: list[str] = []
    have = 0
    step = 2**20
    for start in range(0, len(view), step):
        piece = decoder.decode(view[start : start + step], final=start + step >= len(view))
        pieces.append(piece)
        have += len(piece)
        if have > limit:
            text = "".join(pieces)[:limit]
            return text, True
    pieces.append(decoder.decode(b"", final=True))
    return "".join(pieces), False


def _html_charset(data: bytes) -> str:
    found = _META_CHARSET.search(data[:4096])
    if found is None:
        return "utf-8"
    name = found.group(1).decode("ascii", "replace")
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def _pdf_text(data: bytes, limit: int) -> tuple[str, bool] | None:
    from pypdf import PdfReader

    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)  # damaged-but-readable files warn per object
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            log.info("not indexing an encrypted PDF")
            return None
        pages: list[str] = []
        have = 0
        for page in reader.pages:
            text = page.extract_text() or ""
            pages.append(text.strip())
            have += len(text) + 2
            if have > limit:
                return "\n\n".join(pages)[:limit], True
        return "\n\n".join(p for p in pages if p), False
    except Exception as exc:  # pypdf raises many kinds on damaged files
        log.info("cannot read a PDF: %s", exc)
        return None
    finally:
        pypdf_log.setLevel(level)


_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg"})
_BLOCK_TAGS = _names(
    "address article aside blockquote body caption dd details dialog div dl dt fieldset "
    "figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr html legend li main nav ol "
    "p pre section summary table tbody tfoot thead title tr ul"
)
_PARAGRAPH_TAGS = _names("article blockquote h1 h2 h3 h4 h5 h6 p pre section table title ul ol dl")


class _TextParser(HTMLParser):
    """Visible text of an HTML document: lines for block elements, blank lines between
    paragraphs, whitespace runs collapsed as a browser would (but kept in ``pre``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0  # depth inside elements whose text is not shown
        self._pre = 0

    def _open_block(self, tag: str) -> None:
        if tag in _PARAGRAPH_TAGS:
            self.parts.append(_PARAGRAPH)
        elif tag in _BLOCK_TAGS or tag == "br":
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "pre":
            self._pre += 1
        self._open_block(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        self._open_block(tag)  # <br/>, <hr/>: nothing inside to skip or close

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag in _PARAGRAPH_TAGS:
            self.parts.append(_PARAGRAPH)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.parts.append(data if self._pre else _SPACES.sub(" ", data))


_SPACES = re.compile(r"\s+")
# A paragraph break between blocks: a line of its own, so that the breaks of nested and
# adjacent elements merge into one blank line ("</li><li>" is one line break, not two).
_PARAGRAPH = "\n\ue000\n"


def html_to_text(html: str) -> str:
    """The visible text of ``html``: no scripts or styles, one line per block element."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    out: list[str] = []
    paragraph = False
    for raw in "".join(parser.parts).split("\n"):
        line = raw.strip()
        if line == "\ue000":
            paragraph = True
        elif line:
            if paragraph and out:
                out.append("")
            out.append(line.replace("\ue000", ""))
            paragraph = False
    return "\n".join(out)


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` one at a time (``splitlines`` would hold them all at once)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield text[start : end + 1]
        start = end + 1


def csv_to_text(text: str, *, delimiter: str = ",") -> str:
    """One line per row, cells joined by ``", "`` (quoting undone), so cells are words."""
    rows: list[str] = []
    try:
        for row in csv.reader(_lines(text), delimiter=delimiter):
            cells = [cell.strip() for cell in row]
            if any(cells):
                rows.append(", ".join(cells))
    except csv.Error:
        return text  # not really CSV: index it as it is
    return "\n".join(rows)


def json_to_text(text: str) -> str:
    """JSON indented one key per line (easier to cut and match); as it is when invalid."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return json.dumps(value, indent=1, ensure_ascii=False)


# --- chunking -----------------------------------------------------------------------

_WORD = re.compile(rf"\S{{1,{MAX_WORD_CHARS}}}")
_SENTENCE_END = re.compile(r"[.!?;:][\"')\]]*$")


def chunk_text(
    text: str, *, words: int = DEFAULT_WORDS, overlap: int = DEFAULT_OVERLAP
) -> list[Chunk]:
    """Cut ``text`` into chunks of at most ``words`` words, ``overlap`` words shared.

    A chunk ends, by preference, at a paragraph break (a blank line), else at a line
    break or the end of a sentence, found in its second half; else after ``words``
    words. After a paragraph break the next chunk starts afresh; after any other cut
    it repeats the last ``overlap`` words. Same input, same chunks.
    """
    if words < 1:
        raise ValueError("words must be at least 1")
    if not 0 <= overlap < words:
        raise ValueError("overlap must be at least 0 and less than words")
    starts = array("q")
    ends = array("q")
    for match in _WORD.finditer(text):
        starts.append(match.start())
        ends.append(match.end())
    total = len(starts)
    chunks: list[Chunk] = []
    first = 0
    while first < total:
        last = min(first + words, total)  # one past the chunk's last word
        paragraph = False
        if last < total:
            cut, paragraph = _best_cut(text, starts, ends, first, last)
            last = cut
        start, end = starts[first], ends[last - 1]
        chunks.append(Chunk(index=len(chunks), text=text[start:end], start=start, end=end))
        if last >= total:
            break
        first = last if paragraph or overlap == 0 else max(last - overlap, first + 1)
    return chunks


def _best_cut(
    text: str, starts: array[int], ends: array[int], first: int, last: int
) -> tuple[int, bool]:
    """Where to end a chunk of words ``first..last-1``: (one past its last word, at a
    paragraph break)."""
    lowest = first + max(1, (last - first) // 2)
    line_cut = sentence_cut = 0
    for i in range(last - 1, lowest - 1, -1):
        gap = text[ends[i] : starts[i + 1]]  # between word i and word i + 1
        newlines = gap.count("\n")
        if newlines >= 2:
            return i + 1, True
        if newlines == 1 and not line_cut:
            line_cut = i + 1
        if not sentence_cut and _SENTENCE_END.search(text, max(starts[i], ends[i] - 4), ends[i]):
            sentence_cut = i + 1
    if line_cut or sentence_cut:
        return max(line_cut, sentence_cut), False
    return last, False
