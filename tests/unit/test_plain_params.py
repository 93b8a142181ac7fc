"""jq_cli.cli.plain_params answers only what Typer's own converter would answer the same way, and
the Typer internals it reaches below the public API are still there (typer is pinned in
pyproject.toml; this says at once what a new Typer changed)."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main
from jq_cli.cli.main import app
from jq_cli.cli.plain_params import _NEEDS_CONVERSION, install, plain_value
from typer._click.core import Command, Context
from typer._coercion import build_runtime_param
from typer.core import TyperGroup, _TyperParameter

SAMPLES: list[Any] = [
    "", "abc", "0", "7", "-3", "42", "007", "+5", " 5", "5 ", "1_000", "-0", "1e3", "3.5",
    "123456789012345678", "99999999999999999999", 0, 5, -2, 2.5, True, (), [], ("a",), ["1", "2"],
]  # fmt: skip


def _parameters(command: Command, path: str = "jq") -> list[tuple[str, Command, _TyperParameter]]:
    found = [(path, command, p) for p in command.params if isinstance(p, _TyperParameter)]
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            found += _parameters(sub, f"{path} {name}")
    return found


PARAMETERS = _parameters(typer.main.get_command(app))


def _typer_converts(command: Command, param: _TyperParameter, value: Any) -> Any:
    """Typer's own answer: the converted value, or the exception it raises."""
    try:
        real = build_runtime_param(param.type_descriptor)
        return real._coerce_value(value, param=param, ctx=Context(command))
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    ("path", "command", "param"), PARAMETERS, ids=[f"{p} {q.name}" for p, _, q in PARAMETERS]
)
def test_a_plain_value_is_what_typers_converter_returns(path, command, param):
    answered = 0
    for value in SAMPLES:
        plain = plain_value(param.type_descriptor, value)
        if plain is _NEEDS_CONVERSION:
            continue
        answered += 1
        real = _typer_converts(command, param, value)
        assert not isinstance(real, Exception), (value, real)
        assert (type(plain), plain) == (type(real), real), value


def test_common_values_need_no_conversion():
    """What `jq submit noop`, `jq show 12` and `jq list` pass, answered without pydantic."""
    by_name = {(path, p.name): p for path, _, p in PARAMETERS}
    assert plain_value(by_name["jq submit", "job_type"].type_descriptor, "noop") == "noop"
    assert plain_value(by_name["jq show", "job_id"].type_descriptor, "12") == 12
    assert plain_value(by_name["jq list", "limit"].type_descriptor, 50) == 50
    assert plain_value(by_name["jq list", "state"].type_descriptor, ()) == []
    assert plain_value(by_name["jq show", "job_id"].type_descriptor, "012") is _NEEDS_CONVERSION
    assert plain_value(by_name["jq list", "output"].type_descriptor, "json") is _NEEDS_CONVERSION


def test_install_defers_every_parameter_and_the_help_option():
    command = typer.main.get_command(app)
    install(command)
    for _, cmd, param in _parameters(command):
        assert type(param._runtime_param).__name__ == "_Deferred", param.name
        helper = cmd.get_help_option(Context(cmd))
        assert helper is not None and type(helper._runtime_param).__name__ == "_Deferred"


def test_a_value_that_needs_typers_converter_still_gets_it(capsys):
    """An invalid id or choice is Typer's error, with Typer's message, before any connection."""
    from jq_cli.cli.main import run

    assert run(["show", "twelve"]) == 2
    assert "Invalid value for 'ID': Input should be a valid integer" in capsys.readouterr().err
    assert run(["list", "-o", "bogus"]) == 2
    assert "'bogus' is not one of 'table', 'wide'" in capsys.readouterr().err
