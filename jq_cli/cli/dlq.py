"""`jq dlq ...`: the dead-letter queue (list, retry, purge)."""

# No `from __future__ import annotations` here: Typer reads every command's annotations on
# each run, and as strings each one is compiled and evaluated again (about 30 ms of `jq --help`).

from typing import Annotated

import typer

from jq_cli.cli.options import JsonOpt, YesOpt, confirm, operations
from jq_cli.cli.output import end_progress, handle_errors, print_json, print_report, progress
from jq_cli.cli.rows import OutputOpt

dlq_app = typer.Typer(
    help="The dead-letter queue: jobs that exhausted their attempts.", no_args_is_help=True
)


@dlq_app.command("list")
@handle_errors
def dlq_list(
    job_type: Annotated[str | None, typer.Option("--type")] = None,
    limit: Annotated[int, typer.Option()] = 100,
    before: Annotated[int | None, typer.Option(help="Only jobs older than this id.")] = None,
    output: OutputOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Dead jobs with their last error."""
    from jq_cli.cli.rows import JOB_COLUMNS, emit, resolve

    fmt = resolve(output, json_out)
    with operations() as ops:
        jobs = ops.dead_letters(job_type=job_type, limit=limit, before_id=before)
    emit(jobs, JOB_COLUMNS, fmt, title=f"dead-letter queue ({len(jobs)} shown)")


@dlq_app.command("retry")
@handle_errors
def dlq_retry(
    ids: Annotated[list[int] | None, typer.Argument(metavar="[ID...]")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retry every dead job.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Retry dead jobs: the ones named, or --all."""
    from jq_cli.errors import InvalidInput

    if bool(ids) == all_:
        raise InvalidInput("give dead job IDs or --all")
    with operations() as ops:
        if ids:
            print_report(ops.retry(ids), json_out)
            return
        done = ops.retry_matching(state="dead", on_progress=progress("retried"))
        end_progress()
    if json_out:
        print_json({"count": done})
    else:
        print(f"retried {done} dead jobs")


@dlq_app.command("purge")
@handle_errors
def dlq_purge(yes: YesOpt = False, json_out: JsonOpt = False) -> None:
    """Delete every dead job."""
    with operations() as ops:
        count = ops.purge(state="dead", dry_run=True)
        if count:
            confirm(f"delete {count} dead jobs?", yes)
            count = ops.purge(state="dead", on_progress=progress("deleted"))
            end_progress()
    if json_out:
        print_json({"count": count})
    else:
        print(f"deleted {count} dead jobs")
