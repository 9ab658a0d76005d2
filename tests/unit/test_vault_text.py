"""Which vault items are text, how their text is extracted, and how it is cut into chunks."""

from __future__ import annotations

import codecs
import json
import re
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sahara_cli.vault.text import (
    DEFAULT_LIMIT,
    MAX_WORD_CHARS,
    Chunk,
    chunk_text,
    extract,
    extract_text,
    html_to_text,
    text_kind,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: one Helvetica text line per string, one page per list."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below, once the page tree's number is known
    pages_obj = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for lines in pages:
        ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] "
                b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
                % (pages_obj, font, content)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_obj
    kid_refs = b" ".join(b"%d 0 R" % kid for kid in kids)
    objects[pages_obj - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kid_refs, len(kids))

    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        xref,
    )
    return bytes(out)


# --- what is text -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "head", "kind"),
    [
        ("notes.txt", b"plain words", "text"),
        ("README.md", b"# Title\n\nbody", "markdown"),
        ("table.csv", b"a,b\n1,2\n", "csv"),
        ("table.tsv", b"a\tb\n1\t2\n", "csv"),
        ("data.json", b'{"a": 1}', "json"),
        ("page.html", b"<p>hi</p>", "html"),
        ("page.HTM", b"<p>hi</p>", "html"),
        ("paper.pdf", b"%PDF-1.7\n...", "pdf"),
        ("paper", b"%PDF-1.7\n...", "pdf"),  # by content
        ("LICENSE", b"Apache License\nVersion 2.0", "text"),  # no extension, UTF-8
        ("notes", "naïve café ✓".encode(), "text"),
        ("index", b"<!DOCTYPE html><html><body>x</body></html>", "html"),
        ("script.py", b"print('hello')\n", "text"),  # unknown extension, UTF-8
        ("blob", b"\x00\x01\x02\x03", None),  # NUL bytes
        ("latin1", "café".encode("latin-1"), None),  # not UTF-8, no text extension
        ("image.png", PNG, None),
        ("photo.jpg", b"\xff\xd8\xff\xe0", None),
        ("weights.safetensors", b'{"__metadata__": {}}', None),  # binary by extension
        ("fake.pdf", b"not a pdf at all", None),
        ("binary.txt", b"abc\x00\x00def", None),  # a text name on binary content
        ("utf16.txt", codecs.BOM_UTF16_LE + "hi".encode("utf-16-le"), "text"),
    ],
)
def test_text_kind(name: str, head: bytes, kind: str | None) -> None:
    assert text_kind(name, head) == kind


# --- extraction ---------------------------------------------------------------------


def test_plain_text_decodes_utf8_with_bom_and_bad_bytes() -> None:
    assert extract_text(codecs.BOM_UTF8 + "héllo".encode(), "a.txt") == "héllo"
    assert extract_text(b"ok \xff bad", "a.txt") == "ok \ufffd bad"
    assert extract_text(codecs.BOM_UTF16_BE + "wide".encode("utf-16-be"), "w.txt") == "wide"
    assert extract_text(b"# Heading\n\nText.", "r.md") == "# Heading\n\nText."


def test_non_text_gives_none() -> None:
    assert extract_text(PNG, "image.png") is None
    assert extract_text(PNG, "image") is None
    assert extract(b"\x00" * 64, "zeros.bin") is None


def test_csv_rows_become_lines_of_cells() -> None:
    data = b'name,comment,score\nalice,"likes cats, dogs",3\n\n  bob ,plain,4\n'
    assert extract_text(data, "t.csv") == (
        "name, comment, score\nalice, likes cats, dogs, 3\nbob, plain, 4"
    )
    assert extract_text(b"a\tb\n1\t2\n", "t.tsv") == "a, b\n1, 2"


def test_json_is_pretty_printed_and_invalid_json_kept() -> None:
    data = json.dumps({"model": "mini", "tags": ["nlp", "small"], "nested": {"k": "v"}})
    text = extract_text(data.encode(), "meta.json")
    assert text is not None
    assert '"model": "mini"' in text and "\n" in text
    assert json.loads(text) == json.loads(data)
    assert extract_text(b"{not json", "bad.json") == "{not json"
    assert extract_text('{"name": "ünï"}'.encode(), "u.json") == '{\n "name": "ünï"\n}'


def test_html_drops_script_and_style_and_keeps_structure() -> None:
    html = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>The Title</title>
<style>body { color: red } .SECRET_STYLE {}</style>
<script>var hidden = "SECRET_SCRIPT";</script></head>
<body><h1>Heading</h1>
<p>First   paragraph
spans lines &amp; has an entity.</p>
<div>Block one<br>line two</div>
<ul><li>item a</li><li>item b</li></ul>
<table><tr><td>cell 1</td><td>cell 2</td></tr></table>
<noscript>enable js</noscript><script type="module">SECRET_MODULE()</script>
</body></html>"""
    text = extract_text(html, "page.html")
    assert text is not None
    assert "SECRET" not in text and "color" not in text and "enable js" not in text
    assert text.split("\n\n") == [
        "The Title",
        "Heading",
        "First paragraph spans lines & has an entity.",
        "Block one\nline two",
        "item a\nitem b",
        "cell 1 cell 2",
    ]


def test_html_charset_from_meta() -> None:
    html = '<html><head><meta charset="iso-8859-1"></head><body><p>café</p></body></html>'
    assert extract_text(html.encode("latin-1"), "old.htm") == "café"


def test_html_pre_keeps_lines() -> None:
    assert html_to_text("<pre>line 1\nline 2</pre><p>a   b</p>") == "line 1\nline 2\n\na b"


def test_pdf_text_extracted_per_page() -> None:
    data = make_pdf([["Sahara vault PDF", "second line (with parens)"], ["Page two words"]])
    found = extract(data, "paper.pdf")
    assert found is not None and found.kind == "pdf" and not found.truncated
    assert found.text == "Sahara vault PDF\nsecond line (with parens)\n\nPage two words"
    assert extract_text(data, "paper") == found.text  # found by content, no extension


def test_damaged_pdf_gives_none() -> None:
    data = make_pdf([["x"]])
    assert extract(data[:60], "cut.pdf") is None
    assert extract(b"%PDF-1.4\n" + b"\xff" * 200, "junk.pdf") is None


def test_pdf_limit() -> None:
    data = make_pdf([[f"page {n} " + "word " * 40] for n in range(5)])
    found = extract(data, "long.pdf", limit=300)
    assert found is not None and found.truncated and len(found.text) == 300
    assert found.text.startswith("page 0 word")


def test_limit_caps_text_and_says_so() -> None:
    data = ("é" * 10_000).encode()
    found = extract(data, "long.txt", limit=1000)
    assert found is not None
    assert found.text == "é" * 1000 and found.truncated
    assert found.limit == 1000 and found.source_bytes == 20_000
    whole = extract(data, "long.txt", limit=10_000)
    assert whole is not None and not whole.truncated and len(whole.text) == 10_000
    assert extract(b"x", "a.txt") == extract(b"x", "a.txt", limit=DEFAULT_LIMIT)
    with pytest.raises(ValueError, match="limit"):
        extract(b"x", "a.txt", limit=0)


def test_limit_across_decode_steps() -> None:
    # A multi-byte character cut at every 1 MiB step boundary still decodes whole.
    data = ("a" + "€" * 700_000).encode()  # 2.1 MB: three decode steps
    found = extract(data, "euro.txt")
    assert found is not None and found.text == "a" + "€" * 700_000 and not found.truncated


def test_big_csv_memory_stays_bounded() -> None:
    row = b'12345,"a name, quoted",0.123456,"free text comment here",99999\n'
    data = b"id,name,value,comment,n\n" + row * (50 * 2**20 // len(row))
    assert len(data) >= 50 * 2**20 - len(row)
    limit = 4 * 2**20
    tracemalloc.start()
    try:
        found = extract(data, "big.csv", limit=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found is not None and found.truncated and len(found.text) == limit
    assert found.source_bytes == len(data)
    assert found.text.startswith("id, name, value, comment, n\n12345, a name, quoted, 0.123456")
    # Beyond the input itself: the capped text and its working copies, not the file.
    assert peak < 6 * limit, f"peak {peak / 2**20:.1f} MiB"


# --- chunking -----------------------------------------------------------------------


def assert_chunks_map_back(text: str, chunks: list[Chunk]) -> None:
    for number, chunk in enumerate(chunks):
        assert chunk.index == number
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
    # Every word of the text is in some chunk, and chunks move forward.
    covered = [False] * len(text)
    for chunk in chunks:
        for i in range(chunk.start, chunk.end):
            covered[i] = True
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())
    starts = [chunk.start for chunk in chunks]
    assert starts == sorted(set(starts))


def test_chunks_of_plain_words_overlap() -> None:
    text = " ".join(f"w{i}" for i in range(500))
    chunks = chunk_text(text, words=200, overlap=40)
    assert_chunks_map_back(text, chunks)
    assert [len(c.text.split()) for c in chunks] == [200, 200, 180]
    assert chunks[1].text.split()[0] == "w160"  # 40 words repeated
    assert chunks[2].text.split()[0] == "w320"
    assert chunks == chunk_text(text, words=200, overlap=40)  # deterministic


def test_chunks_end_at_paragraphs_then_sentences() -> None:
    para1 = " ".join(f"a{i}" for i in range(150))
    para2 = " ".join(f"b{i}" for i in range(150))
    text = f"{para1}\n\n{para2}"
    chunks = chunk_text(text, words=200, overlap=40)
    assert_chunks_map_back(text, chunks)
    assert chunks[0].text == para1  # cut at the paragraph break
    assert chunks[1].text == para2  # and the next starts afresh, no overlap

    sentences = " ".join(f"s{i}." if i % 30 == 29 else f"s{i}" for i in range(300))
    chunks = chunk_text(sentences, words=100, overlap=10)
    assert_chunks_map_back(sentences, chunks)
    assert chunks[0].text.endswith("s89.")  # the last sentence end in the second half


def test_chunk_edge_cases() -> None:
    assert chunk_text("") == []
    assert chunk_text(" \n\t \n") == []
    assert chunk_text("  one  ") == [Chunk(index=0, text="one", start=2, end=5)]
    long_token = "x" * 1000
    chunks = chunk_text(long_token, words=5, overlap=0)
    assert_chunks_map_back(long_token, chunks)
    assert all(len(c.text) <= 5 * MAX_WORD_CHARS for c in chunks)
    with pytest.raises(ValueError):
        chunk_text("a b", words=0)
    with pytest.raises(ValueError):
        chunk_text("a b", words=10, overlap=10)


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab c.\n\t é!")) | st.characters(), max_size=600),
    words=st.integers(min_value=1, max_value=30),
    overlap=st.integers(min_value=0, max_value=29),
)
def test_chunks_always_map_back(text: str, words: int, overlap: int) -> None:
    overlap = min(overlap, words - 1)
    chunks = chunk_text(text, words=words, overlap=overlap)
    assert_chunks_map_back(text, chunks)
    for chunk in chunks:
        assert len(re.findall(rf"\S{{1,{MAX_WORD_CHARS}}}", chunk.text)) <= words
