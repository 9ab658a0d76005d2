"""How the docs runner reads a page: commands, output, markers; and every page's
blocks are either run or marked with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.blocks import (
    Block,
    BlockSyntaxError,
    Step,
    output_matches,
    page_paths,
    parse_page,
    printed_null,
)

PAGE = """\
# A page

<!-- not run "sahara serve": runs until stopped -->
<!-- set-up: touch a.txt -->
```console
$ sahara init                 # a comment
$ sahara config get node.timeout
10.0
# a comment line
$ sahara serve
$ sahara light balance 0xabc \\
    --rpc http://127.0.0.1:8545
$ cat > mail.json <<'EOF'
{"a": 1}
EOF
```

<!-- life-of-an-asset -->
<!-- not run: starts CometBFT -->

```console
$ sahara localnet up
```

```python
print("hi")
```

```toml
name = "x"
```
"""


def blocks_of(tmp_path: Path, text: str) -> list[Block]:
    path = tmp_path / "page.md"
    path.write_text(text)
    return parse_page(path)


def test_commands_output_and_markers(tmp_path: Path) -> None:
    first, second, third = blocks_of(tmp_path, PAGE)
    assert [b.lang for b in (first, second, third)] == ["console", "console", "python"]
    assert first.set_up == ["touch a.txt"]
    assert first.not_run is None and second.not_run == "starts CometBFT"
    assert second.labels == ["life-of-an-asset"]
    steps = first.steps
    assert [s.line for s in steps] == [6, 7, 10, 11, 13]
    assert steps[0].command.startswith("sahara init") and steps[0].output == []
    assert steps[1].output == ["10.0"] and not steps[1].expects_error
    assert steps[2].skipped == "runs until stopped"
    assert steps[3].command == "sahara light balance 0xabc \\\n    --rpc http://127.0.0.1:8545"
    assert steps[4].command.endswith('{"a": 1}\nEOF') and steps[4].output == []
    assert third.text == 'print("hi")\n' and third.line == 25


def test_output_starting_with_error_means_the_command_fails(tmp_path: Path) -> None:
    text = "```console\n$ sahara config show\nerror: bad file\nhint: fix it\n```\n"
    (block,) = blocks_of(tmp_path, text)
    assert block.steps[0].expects_error
    assert block.steps[0].output == ["error: bad file", "hint: fix it"]


@pytest.mark.parametrize(
    "text",
    [
        "<!-- not run: -->\n```console\n$ sahara x\n```\n",
        '<!-- not run "sahara y": gone -->\n```console\n$ sahara x\n```\n',
        "<!-- not runs: typo -->\n```console\n$ sahara x\n```\n",
        "```console\noutput first\n$ sahara x\n```\n",
        "```console\n$ cat <<EOF\nnever closed\n```\n",
        "```console\n$ sahara x\n",
    ],
)
def test_unreadable_blocks_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(BlockSyntaxError):
        blocks_of(tmp_path, text)


def test_output_comparison() -> None:
    assert output_matches(["10.0"], "10.0\n")
    assert output_matches(["error: bad ... here", ""], "error: bad thing here  \n\n")
    assert not output_matches(["10.0"], "30.0\n")
    assert not output_matches(["a"], "a\nb\n")
    assert not output_matches(["error: x"], "error: xy\n")


def test_every_page_parses_and_every_left_out_block_says_why() -> None:
    blocks: dict[str, str] = {}
    lines: dict[str, str] = {}
    for path in page_paths():
        for block in parse_page(path):
            if block.not_run is not None:
                blocks[block.where] = block.not_run
                continue
            if block.lang == "console":
                assert block.steps, f"{block.where}: a console block without a $ command"
            for step in block.steps:
                if step.skipped is not None:
                    lines[f"{block.page}:{step.line}"] = step.skipped
    # Counted, so that leaving more out is a visible change here (and in the review).
    assert len(blocks) == 11, blocks
    assert len(lines) == 21, lines


@pytest.mark.parametrize(
    ("command", "keys"),
    [
        ('sahara --json init   # {"home", "created", "id"}', {"home", "created", "id"}),
        (
            'sahara --json doctor  # {"ok": true, "checks": [{"name", "status"}, ...]}',
            {"ok", "checks"},
        ),
        ('sahara --json x  # {"a": "b", "c": {"d": 1}}', {"a", "c"}),
        ("sahara --json node status | jq .head.number", None),
        ('sahara init   # {"home"}', None),
    ],
)
def test_keys_listed_in_a_comment(command: str, keys: set[str] | None) -> None:
    assert Step(command, 1).documented_keys == keys


@pytest.mark.parametrize(
    ("stdout", "null"),
    [
        ("null\n", True),
        ('"a"\nnull\n', True),
        ('[\n  {\n    "error": null,\n    "record": {"agent_asset": null}\n  }\n]\n', False),
        ('{\n  "a": 1,\n  "b": null\n}\n', False),
        ("12\n", False),
        ("plain text from jq -r\n", False),
        ("plain text from jq -r\nnull\n", True),
    ],
)
def test_only_a_bare_null_counts_as_a_missing_key(stdout: str, null: bool) -> None:
    assert printed_null(stdout) is null
