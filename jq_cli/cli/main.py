"""The `jq` command: the Typer app, the table of its commands, and `main()`.

Each command lives in the module of its noun (jobs, dlq, admin, daemons, schedules); shared
options and input readers are in options.py, and output.handle_errors is the one place a
JqError becomes `jq: error: ...` and its exit code. Every action goes through jq_cli.client.
Heavy imports (psycopg, pika, rich tables, textual, fastapi) happen inside the commands that
need them, so that `jq --help` and `jq submit` start fast.
"""

import difflib
import os
import re
import sys
from typing import Annotated

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, NoSuchOption, UsageError

# Typer 0.29 carries its own copy of Click; its exceptions are only importable from there.
from typer.core import TyperGroup

from jq_cli.cli import admin, audit, daemons, jobs, show
from jq_cli.cli.admin import db_app, help_app
from jq_cli.cli.dlq import dlq_app
from jq_cli.cli.json_processor import pass_to_json_processor_if_asked
from jq_cli.cli.queues import queue_app
from jq_cli.cli.schedules import schedule_app

app = typer.Typer(
    name="jq",
    help="jq: a job queue with PostgreSQL as the truth and RabbitMQ as the transport.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Registered here, in the order `jq --help` lists them.
app.command()(jobs.submit)
app.command()(show.show)
app.command("list")(jobs.list_)
app.command()(jobs.retry)
app.command()(jobs.cancel)
app.command()(jobs.replay)
app.command()(jobs.purge)
app.command()(jobs.stats)
app.command()(audit.audit)
app.command()(daemons.top)
app.command()(admin.doctor)
app.command()(daemons.worker)
app.command()(daemons.scheduler)
app.command()(daemons.serve)
app.command()(admin.demo)
app.add_typer(db_app, name="db")
app.add_typer(help_app, name="help")
app.add_typer(dlq_app, name="dlq")
app.add_typer(schedule_app, name="schedule")  # jq schedule ...
app.add_typer(queue_app, name="queue")  # jq queue ...

COMMANDS = (
    "submit", "show", "list", "retry", "cancel", "purge", "stats", "top", "doctor", "worker",
    "scheduler", "serve", "demo", "db", "help", "dlq", "schedule", "queue", "audit", "replay",
)  # fmt: skip


def _print_version(value: bool) -> None:
    if value:
        from jq_cli import __version__

        print(f"jq (jq-cli) {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="Read settings from this KEY=VALUE file (e.g. /etc/jq/jq.env; # comments "
            "allowed); its values win over the environment's. Same as JQ_CONFIG=FILE.",
        ),
    ] = None,
) -> None:
    """jq: a job queue with PostgreSQL as the truth and RabbitMQ as the transport."""
    if config is not None:
        use_config_file(config)


def use_config_file(path: str) -> None:
    """Make every setting this command (and any process it starts) reads come from `path` too:
    JQ_CONFIG, read by jq_cli.config.load_settings. The file is checked now, so that a bad one
    is one `jq: error:` line and exit 2 before anything runs."""
    from jq_cli.cli.output import fail
    from jq_cli.config import CONFIG_VARIABLE, read_config_file
    from jq_cli.errors import JqError

    try:
        read_config_file(path)
    except JqError as exc:
        fail(exc.message, exc.exit_code)
    os.environ[CONFIG_VARIABLE] = os.path.abspath(path)


def usage_line(exc: UsageError, prog: str) -> str:
    """A Click or Typer usage error as our one line, with a "did you mean" where a close match
    exists (Typer suggests close commands itself; close options are listed by the parser)."""
    if isinstance(exc, NoSuchOption):
        message = exc.message.rstrip(".")
        if exc.possibilities:
            message += f". Did you mean {' or '.join(sorted(exc.possibilities))}?"
    else:
        message = exc.format_message()
    message = " ".join(message.replace("Value error, ", "").split())
    unknown = re.match(r"No such command '(.+?)'\.", message)
    if unknown and exc.ctx is not None and isinstance(exc.ctx.command, TyperGroup):
        # Typer lists every close command; one suggestion, the closest, reads as an answer.
        name = unknown.group(1)
        close = difflib.get_close_matches(name, exc.ctx.command.list_commands(exc.ctx), n=1)
        message = f"No such command '{name}'." + (f" Did you mean '{close[0]}'?" if close else "")
    ctx = exc.ctx
    path = ctx.command_path.split(" ", 1)[1] if ctx is not None and " " in ctx.command_path else ""
    where = f"{path}: " if path else ""
    return f"jq: error: {where}{message} (see `{prog} {path + ' ' if path else ''}--help`)"


def main() -> None:
    """The entry point of `jq` and `jobq`."""
    import logging

    from jq_cli.redaction import RedactingFilter

    # Commands other than the daemons log only warnings, as one `jq: warning:` line each (for
    # example a publish deferred while RabbitMQ is down); the daemons install their own logging.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("jq: warning: %(message)s"))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("pika").setLevel(
        logging.CRITICAL
    )  # jq says what failed, once, in its own words
    pass_to_json_processor_if_asked(sys.argv, COMMANDS)
    raise SystemExit(run(sys.argv[1:], os.path.basename(sys.argv[0]) or "jq"))


def run(args: list[str], prog: str = "jq") -> int:
    """Run one command line; returns its exit code. Every usage error (Click's and Typer's too)
    becomes one line `jq: error: ...` and exit 2: the style of every other error of jq."""
    from jq_cli.cli.plain_params import install

    command = typer.main.get_command(app)
    install(command)  # values that need no conversion skip Typer's pydantic converter
    try:
        code = command.main(args=args, prog_name=prog, standalone_mode=False)
    except NoArgsIsHelpError as exc:  # `jq` alone, `jq schedule`: the help is the answer
        sys.stdout.write(exc.format_message() + "\n")
        return 0
    except UsageError as exc:
        sys.stderr.write(usage_line(exc, prog) + "\n")
        return 2
    except ClickException as exc:  # e.g. a file Click could not open
        sys.stderr.write(f"jq: error: {' '.join(exc.format_message().split())}\n")
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("jq: interrupted\n")
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    main()
