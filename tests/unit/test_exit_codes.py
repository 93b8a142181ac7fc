"""The exit-code table (`jq help exit-codes`) and the one place the CLI turns an error into a line
and a code; the HTTP status of each error kind beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from jq_cli import errors
from jq_cli.cli.output import handle_errors

JQ = str(Path(sys.executable).parent / "jq")  # by path: `jq` on PATH may be the JSON tool

KINDS = [
    (errors.JqError("x"), 1, 500),
    (errors.InvalidInput("x"), 2, 422),
    (errors.NotFound("x"), 4, 404),
    (errors.InvalidTransition("x"), 1, 409),
    (errors.Conflict("x"), 1, 409),
    (errors.Refused("x"), 5, 409),
    (errors.ServiceUnavailable("RabbitMQ", "amqp://u:secret@mq:5672/", "refused"), 3, 503),
    (errors.SchemaNotMigrated("x"), 3, 503),
]


def test_the_table_has_one_line_per_code_from_0_to_6():
    assert sorted(errors.EXIT_CODES) == [0, 1, 2, 3, 4, 5, 6]
    # 6 is no error kind: --wait exits with it when its --timeout passes (the job goes on).
    assert {code for _, code, _ in KINDS} | {0, errors.EXIT_WAIT_TIMEOUT} == set(errors.EXIT_CODES)


@pytest.mark.parametrize(("error", "code", "status"), KINDS, ids=lambda v: type(v).__name__)
def test_each_error_exits_with_its_code_as_one_stderr_line(error, code, status, capsys):
    @handle_errors
    def command() -> None:
        raise error

    with pytest.raises(typer.Exit) as caught:
        command()
    assert caught.value.exit_code == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"jq: error: {error.message}"]
    assert error.http_status == status


def test_a_service_error_names_the_service_and_url_without_the_password():
    error = errors.ServiceUnavailable("RabbitMQ", "amqp://u:secret@mq:5672/", "refused")
    assert error.message == "RabbitMQ unavailable at amqp://u:***@mq:5672/: refused"
    assert error.service == "RabbitMQ" and "secret" not in error.url


def test_an_interrupt_exits_130(capsys):
    @handle_errors
    def command() -> None:
        raise KeyboardInterrupt

    with pytest.raises(typer.Exit) as caught:
        command()
    assert caught.value.exit_code == 130 and capsys.readouterr().err == "jq: interrupted\n"


def test_jq_help_exit_codes_prints_the_table():
    # No service is needed to print help: the services named here are closed ports.
    env = {
        "PATH": "/usr/bin:/bin",
        "JQ_DATABASE_URL": "postgresql://127.0.0.1:1/none",
        "JQ_RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/",
        "JQ_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    run = subprocess.run(
        [JQ, "help", "exit-codes"], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert [int(line.split()[0]) for line in run.stdout.splitlines()] == sorted(errors.EXIT_CODES)
    run = subprocess.run(
        [JQ, "help", "exit-codes", "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert json.loads(run.stdout) == {str(k): v for k, v in errors.EXIT_CODES.items()}
