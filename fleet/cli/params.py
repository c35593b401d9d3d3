"""Typer commands whose parameters convert without pydantic, and typer's usage errors as fleet errors.

Typer converts every non-flag parameter through a pydantic `TypeAdapter`; building the first one
imports pydantic, ~100 ms, on every CLI call, for converting a few strings into `int`, `float` or
`list[str]`. `PlainCommand` / `PlainGroup` install a small converter on each of their parameters
instead, at construction, before typer builds its own. Only the annotations fleet's CLI uses are
supported (`str`, `int`, `float`, `bool`, `list[str]`); any other raises `TypeError` when the command
is built, which the CLI's tests do for every command. The converter is typer's own `RuntimeParam`
contract (`typer._coercion`, internal to typer 0.29, hence the pin in pyproject.toml).

Range checks stay with the operation schemas: the CLI converts types, the registry judges values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import typer
from typer._click import Command
from typer._coercion import RuntimeParam
from typer.core import TyperCommand, TyperGroup, _TyperParameter

from fleet.errors import InvalidInput

_INT: Final = re.compile(r"[+-]?[0-9]+")
_TRUE: Final = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE: Final = frozenset({"0", "false", "f", "no", "n", "off", ""})


def _to_int(text: str) -> int:
    if not _INT.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a valid integer.")
    return int(text)


def _to_float(text: str) -> float:
    """`float(text)`; "nan" and "inf" convert too, and the registry refuses them (`number_not_finite`),
    as it does the same values from MCP: one gate for both surfaces."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid number.") from None


def _to_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a valid boolean.")


_CONVERTERS: Final[dict[Any, tuple[type, Callable[[str], Any]]]] = {
    str: (str, str),
    int: (int, _to_int),
    float: (float, _to_float),
    bool: (bool, _to_bool),
}


@dataclass(frozen=True)
class PlainParam(RuntimeParam):
    """Converts one parameter's command-line strings; `many` for `list[...]` (nargs=-1)."""

    kind: type
    convert: Callable[[str], Any]
    many: bool

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Any) -> Any:
        if self.many:
            items = value if isinstance(value, list | tuple) else [value]
            return [self._one(item, param, ctx) for item in items]
        return self._one(value, param, ctx)

    def _one(self, value: Any, param: _TyperParameter, ctx: Any) -> Any:
        if isinstance(value, self.kind) and not (self.kind is int and isinstance(value, bool)):
            return value  # a default, already of the right type
        if not isinstance(value, str):
            raise typer.BadParameter(f"{value!r} is not a valid {self.kind.__name__}.", ctx=ctx, param=param)
        try:
            return self.convert(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), ctx=ctx, param=param) from None


def plain_param(param: _TyperParameter) -> PlainParam:
    """The converter for `param`; `TypeError` for an annotation fleet's CLI does not use."""
    annotation = param.type_descriptor.annotation
    many = getattr(annotation, "__origin__", None) is list
    leaf = annotation.__args__[0] if many else annotation
    if leaf not in _CONVERTERS:
        raise TypeError(f"fleet.cli.params: no converter for parameter {param.name!r} of type {annotation!r}.")
    kind, convert = _CONVERTERS[leaf]
    return PlainParam(param.type_descriptor.parameter_info, annotation, kind, convert, many)


def _install(params: Sequence[Any]) -> None:
    for param in params:
        if isinstance(param, _TyperParameter) and not isinstance(param._runtime_param, PlainParam):
            param._runtime_param = plain_param(param)


class _PlainParams(Command):
    """Installs the converters, first in the MRO before `TyperCommand` or `TyperGroup` (both click `Command`s)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _install(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # built on first use, like the others it is a typer param
        _install([option])
        return option


class PlainCommand(_PlainParams, TyperCommand):
    """A typer command whose parameters convert without pydantic (see the module doc)."""


class PlainGroup(_PlainParams, TyperGroup):
    """The top-level group: its own options (`--config`, `--version`) convert without pydantic."""


def usage_error(exc: Exception) -> InvalidInput:
    """A typer/click usage error (bad value, missing argument, unknown option or command) as the
    `invalid_input` fleet error every surface prints the same way."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(message.split())
    if not message.endswith((".", "?", "!")):
        message += "."
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", "") or "fleet"
    data: dict[str, Any] = {"usage": True}
    param = getattr(exc, "param", None)
    if param is not None:
        data["param"] = (param.opts or [param.name])[0] if hasattr(param, "opts") else param.name
    return InvalidInput(message, hint=f"See `{path} --help` for the arguments.", **data)
