"""The runnable blocks of a Markdown page: ```console fences of ``$ `` command lines and
```python fences, with the markers that say what the test leaves out and why.

A marker is an HTML comment on the lines just above a fence (blank lines between are
allowed):

- ``<!-- not run: REASON -->``: the whole block is left out.
- ``<!-- not run "PREFIX": REASON -->``: the command lines that start with PREFIX (after
  ``$ ``) are left out; the rest of the block runs.
- ``<!-- output not compared: REASON -->``: the block runs, but the output it shows
  (times, hashes, addresses, paths that differ per run) is not compared.
- ``<!-- set-up: COMMAND -->``: a shell command run before the block and not shown (to
  put the home into the state the block shows, such as a broken config file).

Any other comment (``<!-- life-of-an-asset -->``) is a label other tests find blocks by.

In a console block a line ``$ CMD`` is a command; a trailing backslash continues it on
the next line, and a here-document (``<<'EOF'``) takes the lines up to its terminator.
A line starting with ``# `` is a comment; a comment ending a ``sahara --json`` command that
lists keys (``# {"ok": true, "checks": [...]}``) names the document's top-level keys,
and they are compared. Any other line is output the command shows:
it is compared with what the command prints (``...`` matches anything within a line),
and output that starts with ``error:`` means the command is meant to fail.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^(\s*)(`{3,})(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*(.*?)\s*-->$")
NOT_RUN_LINE = re.compile(r'^not run "([^"]+)":\s*(\S.*)$')
HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_]+)\1")
ROOT = Path(__file__).resolve().parents[2]


def page_paths() -> list[Path]:
    """The pages whose blocks run: README.md and docs/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass
class Step:
    """One command of a console block: its text (continuations and here-documents
    included), its line in the page, and the output the page shows for it."""

    command: str
    line: int
    output: list[str] = field(default_factory=list)
    skipped: str | None = None  # the reason, when a marker leaves it out

    @property
    def expects_error(self) -> bool:
        return bool(self.output) and self.output[0].startswith("error:")

    @property
    def documented_keys(self) -> set[str] | None:
        """The top-level keys a ``sahara --json`` command's comment lists, as in
        ``# {"ok": true, "checks": [...]}``; None when it lists none."""
        m = re.search(r"#\s*(\{.*\})\s*$", self.command)
        if not m or not self.command.startswith("sahara --json "):
            return None
        keys: set[str] = set()
        text, depth, in_value, i = m.group(1), 0, False, 0
        while i < len(text):
            c = text[i]
            if c in "{[":
                depth += 1
                in_value = False
            elif c in "}]":
                depth -= 1
            elif c in ":,":
                in_value = c == ":"
            elif c == '"':
                end = text.index('"', i + 1)
                if depth == 1 and not in_value:
                    keys.add(text[i + 1 : end])
                i = end
            i += 1
        return keys


@dataclass
class Block:
    """A fenced block of a page: ``lang`` is "console" or "python"."""

    page: str
    line: int  # of the opening fence
    lang: str
    text: str
    labels: list[str] = field(default_factory=list)
    not_run: str | None = None
    output_not_compared: str | None = None
    skip_prefixes: dict[str, str] = field(default_factory=dict)
    set_up: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


class BlockSyntaxError(ValueError):
    """A block the runner cannot read (a marker without a reason, output before any
    command, an unterminated here-document)."""


def _markers(lines: list[str], fence: int) -> list[str]:
    """The HTML comments on the lines just above line index ``fence``."""
    found: list[str] = []
    i = fence - 1
    while i >= 0:
        text = lines[i].strip()
        if not text:
            i -= 1
            continue
        m = MARKER.match(text)
        if not m:
            break
        found.insert(0, m.group(1))
        i -= 1
    return found


def parse_page(path: Path, name: str | None = None) -> list[Block]:
    """The console and python blocks of the Markdown page at ``path``, in order."""
    name = name or path.name
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, lang = m.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() != ticks:
            end += 1
        if end == len(lines):
            raise BlockSyntaxError(f"{name}:{i + 1}: the fence is never closed")
        if lang in ("console", "python"):
            body = [
                line[len(indent) :] if line.startswith(indent) else line
                for line in lines[i + 1 : end]
            ]
            block = Block(name, i + 1, lang, "\n".join(body) + "\n")
            _apply_markers(block, _markers(lines, i))
            if lang == "console":
                block.steps = _steps(block, body)
            blocks.append(block)
        i = end + 1
    return blocks


def _apply_markers(block: Block, markers: list[str]) -> None:
    for marker in markers:
        m = NOT_RUN_LINE.match(marker)
        if m:
            block.skip_prefixes[m.group(1)] = m.group(2)
        elif marker.startswith("not run:"):
            block.not_run = _reason(block, marker, "not run:")
        elif marker.startswith("set-up:"):
            block.set_up.append(_reason(block, marker, "set-up:"))
        elif marker.startswith("output not compared:"):
            block.output_not_compared = _reason(block, marker, "output not compared:")
        elif marker.startswith(("not run", "output not")):
            raise BlockSyntaxError(f"{block.where}: cannot read the marker {marker!r}")
        else:
            block.labels.append(marker)


def _reason(block: Block, marker: str, prefix: str) -> str:
    reason = marker[len(prefix) :].strip()
    if not reason:
        raise BlockSyntaxError(f"{block.where}: the marker {marker!r} gives no reason")
    return reason


def _steps(block: Block, body: list[str]) -> list[Step]:
    steps: list[Step] = []
    i = 0
    while i < len(body):
        line = body[i]
        where = block.line + 1 + i
        if line.startswith("$ "):
            parts = [line[2:]]
            while parts[-1].endswith("\\") and i + 1 < len(body):
                i += 1
                parts.append(body[i])
            heredoc = HEREDOC.search(parts[0])
            if heredoc:
                terminator = heredoc.group(2)
                while True:
                    i += 1
                    if i == len(body):
                        raise BlockSyntaxError(f"{block.page}:{where}: no {terminator} line")
                    parts.append(body[i])
                    if body[i] == terminator:
                        break
            command = "\n".join(parts)
            step = Step(command, where)
            for prefix, reason in block.skip_prefixes.items():
                if command.startswith(prefix):
                    step.skipped = reason
            steps.append(step)
        elif line.startswith("# ") or line == "#" or (not line.strip() and not steps):
            pass
        else:
            if not steps:
                raise BlockSyntaxError(f"{block.page}:{where}: output before any command")
            steps[-1].output.append(line)
        i += 1
    unused = set(block.skip_prefixes) - {
        prefix for prefix in block.skip_prefixes for s in steps if s.command.startswith(prefix)
    }
    if unused:
        raise BlockSyntaxError(f"{block.where}: no command starts with {sorted(unused)}")
    return steps


def output_matches(expected: list[str], actual: str) -> bool:
    """Whether ``actual`` shows the ``expected`` lines (trailing blanks ignored; ``...``
    in an expected line matches any text within that line)."""
    got = [line.rstrip() for line in actual.strip("\n").splitlines()]
    want = [line.rstrip() for line in expected]
    while want and not want[-1]:
        want.pop()
    if len(got) != len(want):
        return False
    for w, g in zip(want, got, strict=True):
        pattern = ".*".join(re.escape(part) for part in w.split("..."))
        if not re.fullmatch(pattern, g):
            return False
    return True


def printed_null(stdout: str) -> bool:
    """Whether a jq filter printed a bare ``null`` (the key it reads is missing).

    jq prints a stream of JSON values; only a value that *is* null counts, not a null
    field inside an object it printed. Raw (``jq -r``) output that is not JSON is read
    line by line.
    """
    decoder = json.JSONDecoder()
    text = stdout.strip()
    at = 0
    while at < len(text):
        try:
            value, end = decoder.raw_decode(text, at)
        except ValueError:
            return any(line.strip() == "null" for line in text[at:].splitlines())
        if value is None:
            return True
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    return False
