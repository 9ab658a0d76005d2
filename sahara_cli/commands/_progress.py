"""What training commands share: a step progress bar with the loss, and Ctrl-C that asks
a run to checkpoint and stop."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sahara_cli.commands._state import AppState

if TYPE_CHECKING:
    from sahara_cli.compute.train import StepReport


@contextlib.contextmanager
def step_bar(st: AppState, total_hint: str) -> Iterator[Any]:
    """A step progress bar with the loss on stderr (silent for scripts); yields on_step."""
    if st.output.json_mode or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=st.output.err, transient=True) as bar:
        task = bar.add_task(total_hint, total=None, loss="-")

        def on_step(report: StepReport) -> None:
            bar.update(
                task, completed=report.step, total=report.total_steps, loss=f"{report.loss:.3f}"
            )

        yield on_step


@contextlib.contextmanager
def interruptible() -> Iterator[threading.Event]:
    """Ctrl-C (or 'sahara compute cancel') asks the run to checkpoint and stop."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
