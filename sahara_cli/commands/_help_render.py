"""Typer's help renderer without the parts of Rich that sahara's help never uses.

``typer.rich_utils`` renders every ``--help`` and imports, with the rest, ``rich.markdown``
(for ``rich_markup_mode="markdown"``; sahara uses ``"rich"``) and ``rich.traceback`` (for
pretty exceptions, which sahara turns off): together about half the cost of a ``--help``.
After :func:`install`, importing ``typer.rich_utils`` gives it stand-ins for those two
classes that import the real module when first used, so output is the same either way.
A module already imported is used as it is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import Any

_TARGET = "typer.rich_utils"
#: module -> the class ``typer.rich_utils`` imports from it.
_DEFERRED = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}


def _stand_in(module: str, name: str) -> type:
    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:  # noqa: ARG001  # the stand-in
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    def from_exception(cls: type, *args: Any, **kwargs: Any) -> Any:  # noqa: ARG001
        return getattr(importlib.import_module(module), name).from_exception(*args, **kwargs)

    return type(name, (), {"__new__": __new__, "from_exception": classmethod(from_exception)})


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        placed = []
        for name, attribute in _DEFERRED.items():
            if name not in sys.modules:
                placeholder = types.ModuleType(name)
                setattr(placeholder, attribute, _stand_in(name, attribute))
                sys.modules[name] = placeholder
                placed.append(name)
        try:
            self._loader.exec_module(module)
        finally:
            for name in placed:
                if isinstance(sys.modules.get(name), types.ModuleType) and not hasattr(
                    sys.modules[name], "__file__"
                ):
                    del sys.modules[name]


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Defer the two imports when ``typer.rich_utils`` loads (idempotent)."""
    if _TARGET in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
