"""`jq queue ...`: the queues, their depth and rate, pause and resume."""

# No `from __future__ import annotations` here: Typer reads every command's annotations on
# each run, and as strings each one is compiled and evaluated again (about 30 ms of `jq --help`).

import sys
from typing import Annotated

import typer

from jq_cli.cli.options import JsonOpt, operations
from jq_cli.cli.output import handle_errors, print_json
from jq_cli.cli.rows import Column, OutputOpt

queue_app = typer.Typer(
    help="Queues: depth, workers and rate; pause and resume.", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The queue's name.")]
NewQueueOpt = Annotated[
    bool,
    typer.Option(
        "--new-queue",
        help="Allow a queue that does not exist yet (e.g. to set it up before its first job); "
        "without it a name no queue has is refused with a did-you-mean.",
    ),
]

QUEUE_COLUMNS = [
    Column("QUEUE", lambda q: q["name"]),
    Column("STATUS", lambda q: "paused" if q["paused"] else "running"),
    Column("QUEUED", lambda q: q["queued"], "number"),
    Column("BROKER", lambda q: q["broker_ready"], "number"),
    Column("RUNNING", lambda q: q["running"], "number"),
    Column("WORKERS", lambda q: q["workers"], "number"),
    Column("DONE/S", lambda q: q["completed_per_second"], "number"),
    Column("LIMIT", lambda q: q["limit"]),
    Column("PAUSED BY", lambda q: q["paused_by"], wide=True),
    Column("PAUSED AT", lambda q: q["paused_at"], "time", wide=True),
]


@queue_app.command("list")
@handle_errors
def queue_list(output: OutputOpt = None, json_out: JsonOpt = False) -> None:
    """Each queue: queued in PostgreSQL and ready in the broker, running, paused or not, workers
    consuming it and jobs completed per second (the last 10 s)."""
    from jq_cli.cli.rows import Format, emit, resolve

    fmt = resolve(output, json_out)
    with operations() as ops:
        data = ops.queue_list()
    if fmt is Format.json:
        print_json(data)
        return
    emit(data["queues"], QUEUE_COLUMNS, fmt, key="name")
    for service in ("broker_error", "telemetry_error"):
        if data[service]:
            sys.stderr.write(f"jq: warning: {data[service]}\n")


@queue_app.command("pause")
@handle_errors
def queue_pause(name: NameArg, new_queue: NewQueueOpt = False, json_out: JsonOpt = False) -> None:
    """Stop starting jobs of this queue on every worker; its jobs stay queued."""
    from jq_cli.ops.names import check_queues

    with operations() as ops:
        if not new_queue:
            check_queues(ops, [name], new_queue_flag="--new-queue")
        done = ops.queue_pause(name)
    if json_out:
        print_json(done)
    else:
        print(f"queue {name} paused" + ("" if done["changed"] else " (it was already)"))


@queue_app.command("resume")
@handle_errors
def queue_resume(name: NameArg, json_out: JsonOpt = False) -> None:
    """Start this queue's jobs again."""
    from jq_cli.ops.names import check_queues

    with operations() as ops:
        check_queues(ops, [name])
        done = ops.queue_resume(name)
    if json_out:
        print_json(done)
    else:
        print(f"queue {name} resumed" + ("" if done["changed"] else " (it was not paused)"))


@queue_app.command("limit")
@handle_errors
def queue_limit(
    name: NameArg,
    concurrency: Annotated[
        int | None, typer.Option(help="At most this many of its jobs running at once.")
    ] = None,
    rate: Annotated[str | None, typer.Option(help="At most this many starts: 10/s, 100/m.")] = None,
    key: Annotated[
        str | None, typer.Option(help="Count per value of this payload field (e.g. host).")
    ] = None,
    new_queue: NewQueueOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Limit a queue across every worker (neither --concurrency nor --rate: no limit)."""
    from jq_cli.ops.names import check_queues

    with operations() as ops:
        if not new_queue:
            check_queues(ops, [name], new_queue_flag="--new-queue")
        done = ops.queue_limit(name, concurrency=concurrency, rate=rate, key=key)
    if json_out:
        print_json(done)
    elif done["concurrency"] is None and done["rate_count"] is None:
        print(f"queue {name}: no limit")
    else:
        print(f"queue {name} limited")
