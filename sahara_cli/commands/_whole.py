"""The render hook that keeps hashes, addresses, CIDs and URLs whole in tables.

Apart from :mod:`sahara_cli.commands._output` so that rich loads only when something is
printed.
"""

from __future__ import annotations

from rich.console import Console, ConsoleRenderable, Group, RenderableType, RenderHook


class WholeValues(RenderHook):
    """Tables never fold or cut a word: hashes, addresses, CIDs and URLs stay whole.

    A table whose columns cannot all fit the terminal at their longest word (a 64-hex
    hash beside a 40-hex address does not fit 80 columns) is laid out wider than the
    terminal instead of breaking values, so each value stays on one line to copy; prose
    still wraps between words.
    """

    def __init__(self, console: Console) -> None:
        self.console = console

    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        for renderable in renderables:
            self._widen(renderable)
        return renderables

    def _widen(self, renderable: RenderableType) -> None:
        from rich.padding import Padding
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        if isinstance(renderable, Group):
            for inner in renderable.renderables:
                self._widen(inner)
        elif isinstance(renderable, Panel | Padding):
            self._widen(renderable.renderable)
        elif isinstance(renderable, Table):
            for column in renderable.columns:
                for cell in column.cells:
                    self._widen(cell)
                    text = self.console.render_str(cell) if isinstance(cell, str) else cell
                    words = text.plain.split() if isinstance(text, Text) else []
                    longest = max((len(word) for word in words), default=0)
                    column.min_width = max(column.min_width or 0, longest)
            if renderable.width is None:
                wide = self.console.options.update(max_width=1_000_000)
                needed = self.console.measure(renderable, options=wide).minimum
                if needed > self.console.width:
                    renderable.width = needed
