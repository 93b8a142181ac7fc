"""`jq submit`, `jq show` and `jq list` import only what they need: each whole process is measured
against `python -c pass` (W4), and a module imported by accident costs milliseconds of
every command. Each command runs here in a fresh interpreter, against services that refuse the
connection at once (the imports that matter happen before it), and this test lists what it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Run a command line in-process, then print the names of every module loaded.
PROBE = """
import json, sys
sys.argv = ["jq", *json.loads(sys.argv[1])]
try:
    from jq_cli.cli.main import main
    main()
except SystemExit:
    pass
finally:
    sys.stdout.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
"""

NOWHERE = {  # ports that refuse: the command fails with exit 3 once it has imported its way there
    "JQ_DATABASE_URL": "postgresql://127.0.0.1:1/jq",
    "JQ_RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/",
    "JQ_REDIS_URL": "redis://127.0.0.1:1/0",
    "JQ_NAMESPACE": "importcheck",
}

# What no one of these commands needs: the daemons, the other front ends, telemetry, schedules'
# cron, the web scraper's libraries, and Typer's pydantic converters (jq_cli.cli.plain_params
# keeps them for values that need them).
NEVER = {
    "typer._adapters",
    "textual",
    "fastapi",
    "uvicorn",
    "redis",
    "requests",
    "bs4",
    "croniter",
    "prometheus_client",
    "yaml",
    "jq_cli.tui",
    "jq_cli.http",
    "jq_cli.worker.daemon",
    "jq_cli.worker.dispatcher",
    "jq_cli.worker.executor",
    "jq_cli.worker.pools",
    "jq_cli.worker.intake",
    "jq_cli.worker.handoff",
    "jq_cli.worker.leases",
    "jq_cli.scheduler.daemon",
    "jq_cli.observe.telemetry",
    "jq_cli.broker.consumer",
}
NOT_FOR = {
    ("submit", "noop"): NEVER | {"rich"},  # prints an id
    # Reading jobs validates no payload: no handler registry, no job models.
    ("show", "1"): NEVER | {"pika", "jq_cli.handlers", "jq_cli.model.jobspec"},
    ("list",): NEVER | {"pika", "rich", "jq_cli.handlers"},  # plain lines, not on a terminal
}


def modules_after(args: list[str], tmp_path, *, refused: bool = True) -> set[str]:
    """The modules loaded by `jq ARGS` (run in a fresh interpreter, in an empty folder)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("JQ_")} | NOWHERE
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # no .env file
        timeout=60,
    )
    if refused:  # it did run as far as the (refused) connection
        assert "jq: error:" in done.stderr and "unavailable" in done.stderr, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def _loaded(modules: set[str], names: set[str]) -> set[str]:
    return {n for n in names if n in modules or any(m.startswith(n + ".") for m in modules)}


@pytest.mark.parametrize("args", list(NOT_FOR), ids=" ".join)
def test_a_command_imports_only_what_it_needs(args, tmp_path):
    modules = modules_after(list(args), tmp_path)
    assert "psycopg" in modules  # the command did get as far as the database
    assert not _loaded(modules, NOT_FOR[args]), sorted(_loaded(modules, NOT_FOR[args]))


def test_publishing_imports_the_publisher_side_only(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from jq_cli.broker import Message, Publisher; print(sorted(sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert "'jq_cli.broker.publisher'" in done.stdout
    assert "'jq_cli.broker.consumer'" not in done.stdout


def test_help_loads_no_driver_and_no_pydantic(tmp_path):
    modules = modules_after(["--help"], tmp_path, refused=False)
    assert "typer" in modules
    assert not _loaded(modules, {"psycopg", "pika", "pydantic", "rich", "jq_cli.client"})
