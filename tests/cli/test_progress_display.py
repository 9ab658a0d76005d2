"""The shared progress bar: on a terminal's stderr it shows bytes, rate and time left;
with --json, or when stderr is not a terminal, it draws nothing."""

from __future__ import annotations

import re
import sys
import time

import pytest

from sahara_cli.commands._output import Output


def run_bar(output: Output) -> None:
    with output.progress("Adding", 4 << 20) as advance:
        for _ in range(4):
            advance(1 << 20)
            time.sleep(0.05)  # let the bar measure a rate


def test_the_bar_shows_rate_and_time_left_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("COLUMNS", "100")
    run_bar(Output())
    out, err = capsys.readouterr()
    assert out == ""
    assert "Adding" in err
    assert "4.2/4.2 MB" in err  # bytes done of the total
    assert re.search(r"\d+(\.\d+)? [kMG]?B/s", err), err  # transfer rate
    assert re.search(r"\d:\d\d:\d\d", err), err  # time left


@pytest.mark.parametrize("json_mode", [True, False])
def test_no_bar_for_json_or_a_pipe(
    json_mode: bool, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: json_mode)
    run_bar(Output(json_mode=json_mode))
    assert capsys.readouterr() == ("", "")
