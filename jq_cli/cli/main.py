"""The `jq` command: the Typer app, the table of its commands, and `main()`.

Each command lives in the module of its noun (jobs, dlq, admin, daemons, schedules); shared
options and input readers are in options.py, and output.handle_errors is the one place a
JqError becomes `jq: error: ...` and its exit code. Every action goes through jq_cli.ops.
Heavy imports (psycopg, pika, rich tables, textual, fastapi) happen inside the commands that
need them, so that `jq --help` and `jq submit` start fast.
"""

import typer

from jq_cli.cli import admin, audit, daemons, jobs
from jq_cli.cli.admin import db_app, help_app
from jq_cli.cli.dlq import dlq_app
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
app.command()(jobs.show)
app.command("list")(jobs.list_)
app.command()(jobs.retry)
app.command()(jobs.cancel)
app.command()(jobs.replay)  # issue 16
app.command()(jobs.purge)
app.command()(jobs.stats)
app.command()(audit.audit)  # issue 16
app.command()(daemons.top)
app.command()(admin.doctor)
app.command()(daemons.worker)
app.command()(daemons.scheduler)
app.command()(daemons.serve)
app.command()(admin.demo)
app.add_typer(db_app, name="db")
app.add_typer(help_app, name="help")
app.add_typer(dlq_app, name="dlq")
app.add_typer(schedule_app, name="schedule")  # issue 4: jq schedule ...
app.add_typer(queue_app, name="queue")  # issue 16: jq queue ...


def main() -> None:
    """The entry point of `jq` and `jobq`."""
    import logging

    # Commands other than the daemons log only warnings, as one `jq: warning:` line each (for
    # example a publish deferred while RabbitMQ is down); the daemons install their own logging.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("jq: warning: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("pika").setLevel(
        logging.CRITICAL
    )  # jq says what failed, once, in its own words
    app()


if __name__ == "__main__":
    main()
