"""Typer's value coercion without pydantic for the plain values of the command line.

Typer converts every option and argument value through a pydantic ``TypeAdapter``, built
when the parameter is first processed; importing pydantic and building the adapters costs
more than the rest of a command's start-up (the root's ``--home`` and ``--verbose`` are
processed on every command, ``--help`` included). After :func:`install`, each parameter
of a plain type (``str``, ``int``, ``float``, ``bool``, ``Path``, an ``Enum``, a list of
``str`` or ``Path``) a coercion that returns what Typer's would for a well-formed value,
and hands any other value (a malformed number, a path that fails its checks) to Typer's
own coercion, so errors and their messages are Typer's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

from typer import _click
from typer._coercion import RuntimeParam, build_runtime_param
from typer._param_types import coerce_cli_choice, coerce_cli_path
from typer.core import _TyperParameter
from typer.models import ParameterInfo

_INT = re.compile(r"-?(0|[1-9][0-9]{0,30})")
_FLOAT = re.compile(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?")

#: (value, parameter, context) -> the coerced value; raises for anything it leaves to Typer.
Coerce = Callable[[Any, _TyperParameter, _click.Context], Any]


class _Unsure(Exception):
    """The value is not one the fast coercion decides; Typer's own coercion takes it."""


@dataclass(frozen=True)
class _FastRuntimeParam(RuntimeParam):
    fast: Coerce

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
        try:
            return self.fast(value, param, ctx)
        except Exception:  # noqa: S110  # Typer's coercion decides, and says why
            pass
        typer_own = build_runtime_param(param.type_descriptor)
        param._runtime_param = typer_own  # the parameter's coercion, cached
        return typer_own._coerce_value(value, param=param, ctx=ctx)


def _str(value: Any, _param: _TyperParameter, _ctx: _click.Context) -> Any:
    if isinstance(value, str):
        return value
    raise _Unsure


def _bool(value: Any, _param: _TyperParameter, _ctx: _click.Context) -> Any:
    if isinstance(value, bool):
        return value
    raise _Unsure


def _number(kind: type[int] | type[float], info: ParameterInfo) -> Coerce:
    pattern = _INT if kind is int else _FLOAT

    def coerce(value: Any, _param: _TyperParameter, _ctx: _click.Context) -> Any:
        if isinstance(value, str) and pattern.fullmatch(value):
            number: int | float = kind(value)
        elif type(value) is kind or (kind is float and type(value) is int):
            number = kind(value)
        else:
            raise _Unsure
        if (info.min is not None and number < info.min) or (
            info.max is not None and number > info.max
        ):
            raise _Unsure
        return number

    return coerce


def _path(info: ParameterInfo) -> Coerce:
    def coerce(value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
        if isinstance(value, str) and value:
            value = Path(value)
        if not isinstance(value, Path):
            raise _Unsure
        return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)

    return coerce


def _choice(kind: type[Enum], info: ParameterInfo) -> Coerce:
    choices = tuple(kind)

    def coerce(value: Any, _param: _TyperParameter, ctx: _click.Context) -> Any:
        return coerce_cli_choice(
            value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx
        )

    return coerce


def _list(item: Coerce) -> Coerce:
    def coerce(value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
        if not isinstance(value, list | tuple):
            raise _Unsure
        return [item(v, param, ctx) for v in value]

    return coerce


def _leaf(annotation: Any, info: ParameterInfo) -> Coerce | None:
    if info.parser is not None or info.clamp:
        return None
    if annotation is str and not (info.allow_dash or info.path_type or info.resolve_path):
        return _str
    if annotation is bool:
        return _bool
    if annotation in (int, float):
        return _number(annotation, info)
    if annotation is Path and info.path_type is None and not info.allow_dash:
        return _path(info)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _choice(annotation, info)
    return None


def fast_coercion(annotation: Any, info: ParameterInfo) -> Coerce | None:
    """The fast coercion of a parameter of ``annotation``, or None to keep Typer's."""
    if get_origin(annotation) is list:
        (item_type,) = get_args(annotation)
        item = _leaf(item_type, info) if item_type in (str, Path) else None
        return None if item is None else _list(item)
    return _leaf(annotation, info)


def _fast_or_typer_own(self: _TyperParameter) -> RuntimeParam:
    if self._runtime_param is None:
        descriptor = self.type_descriptor
        fast = fast_coercion(descriptor.annotation, descriptor.parameter_info)
        if fast is not None:
            self._runtime_param = _FastRuntimeParam(
                parameter_info=descriptor.parameter_info,
                annotation=descriptor.annotation,
                fast=fast,
            )
    return _typer_own_runtime_param(self)


_typer_own_runtime_param = _TyperParameter.get_runtime_param


def install() -> None:
    """Make every Typer parameter try the fast coercion first (idempotent)."""
    _TyperParameter.get_runtime_param = _fast_or_typer_own  # type: ignore[method-assign]
