"""Command-line values that need no conversion skip Typer's pydantic converter.

Typer 0.29 converts every parameter's value through a pydantic TypeAdapter that it builds on the
parameter's first use, even for an option that was not given: `jq submit noop` built 18 of them,
and the root's --install-completion (default None) alone imported pydantic, about 60 ms of a whole
`jq list`. install() gives each parameter a deferred converter instead: a value that needs no
conversion (an option not given, the text of a str option, an int's default, a plain decimal
id, an empty repeatable option) comes back as Typer's converter would return it, and anything
else goes to Typer's own converter, built at that moment. Errors and their messages are
therefore Typer's.

This reaches below Typer's public API (typer.core._TyperParameter._runtime_param and
typer._coercion); tests/unit/test_plain_params.py compares every parameter of `jq` with Typer's
own conversion, and says at once which internal a new Typer no longer has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, get_origin

from typer._click.core import Command, Context
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer.core import TyperGroup, _TyperParameter

# What pydantic's lax int accepts and int() reads the same way: no sign but a minus, no leading
# zero, no underscores or spaces, and within 64 bits. Anything else goes to Typer's converter.
_PLAIN_INT = re.compile(r"-?[1-9][0-9]{0,17}|0")
_NEEDS_CONVERSION = object()


def plain_value(descriptor: TypeDescriptor, value: Any) -> Any:
    """`value` as Typer's converter for this parameter would return it, or _NEEDS_CONVERSION
    when only that converter can say (a choice, a path, a range, a non-decimal text...)."""
    info = descriptor.parameter_info
    if info.parser is not None or descriptor.file_annotation is not None:
        return _NEEDS_CONVERSION
    annotation: Any = descriptor.annotation
    if annotation is str and type(value) is str:
        return value
    if annotation is int and info.min is None and info.max is None and not info.clamp:
        if type(value) is int:
            return value
        if type(value) is str and _PLAIN_INT.fullmatch(value):
            return int(value)
    if get_origin(annotation) is list and isinstance(value, list | tuple) and not value:
        return []
    return _NEEDS_CONVERSION


@dataclass(frozen=True)
class _Deferred(RuntimeParam):
    """Typer's RuntimeParam contract (None and multi-value handling stay Typer's, in coerce());
    the pydantic converter is built only for a value plain_value cannot answer."""

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        plain = plain_value(param.type_descriptor, value)
        if plain is not _NEEDS_CONVERSION:
            return plain
        real = build_runtime_param(param.type_descriptor)
        param._runtime_param = real  # from now on this parameter is Typer's alone
        return real._coerce_value(value, param=param, ctx=ctx)


def install(command: Command) -> None:
    """Give every parameter of `command` and of its subcommands a deferred converter."""
    # --help is made on first use and kept (get_help_option caches it): make it now, so that it
    # is deferred too. Our commands keep Click's default help names, which this context carries.
    help_option = command.get_help_option(Context(command))
    for param in [*command.params, help_option]:
        if isinstance(param, _TyperParameter) and param._runtime_param is None:
            descriptor = param.type_descriptor
            param._runtime_param = _Deferred(
                parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
            )
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            install(sub)
