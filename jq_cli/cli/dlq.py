"""`jq dlq ...`: the dead-letter queue (list, retry, purge, edit)."""

# No `from __future__ import annotations` here: Typer reads every command's annotations on
# each run, and as strings each one is compiled and evaluated again (about 30 ms of `jq --help`).

from typing import Annotated

import typer

from jq_cli.cli.options import DryRunOpt, JsonOpt, YesOpt, confirm, operations
from jq_cli.cli.output import end_progress, handle_errors, print_json, print_report, progress
from jq_cli.cli.rows import OutputOpt
from jq_cli.model.words import confirmed_notice, plural

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


TypeOpt = Annotated[str | None, typer.Option("--type", help="Only dead jobs of this type.")]
QueueOpt = Annotated[str | None, typer.Option(help="Only dead jobs of this queue.")]


@dlq_app.command("retry")
@handle_errors
def dlq_retry(
    ids: Annotated[list[int] | None, typer.Argument(metavar="[ID...]")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Retry every dead job (of the filters).")
    ] = False,
    job_type: TypeOpt = None,
    queue: QueueOpt = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Retry dead jobs: the ones named, or --all (narrowed by --type and --queue)."""
    from jq_cli.errors import InvalidInput

    if bool(ids) == all_:
        raise InvalidInput("give dead job IDs or --all")
    if ids and (job_type or queue or dry_run):
        raise InvalidInput("--type, --queue and --dry-run go with --all, not with IDs")
    with operations() as ops:
        if ids:
            print_report(ops.retry(ids), json_out)
            return
        done = ops.retry_matching(
            state="dead",
            job_type=job_type,
            queue=queue,
            dry_run=dry_run,
            on_progress=progress("retried"),
        )
        end_progress()
    if json_out:  # dry_run only when asked: the document's shape before --dry-run existed
        print_json({**({"dry_run": True} if dry_run else {}), "count": done})
    else:
        print(f"{'would retry' if dry_run else 'retried'} {plural(done, 'dead job')}")


@dlq_app.command("purge")
@handle_errors
def dlq_purge(
    job_type: TypeOpt = None,
    queue: QueueOpt = None,
    older_than: Annotated[
        str | None, typer.Option(help="Only jobs that died longer ago, e.g. 7d.")
    ] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete dead jobs (every one, or those of the filters)."""
    from jq_cli.model.durations import parse_duration

    age = parse_duration(older_than, "older-than") if older_than else None
    with operations() as ops:
        confirmed, cutoff = ops.purge_count(
            state="dead", job_type=job_type, queue=queue, older_than=age
        )
        count = confirmed
        if confirmed and not dry_run:
            confirm(f"delete {plural(confirmed, 'dead job')}?", yes)
            # The jobs confirmed, no more: finished by the count's time, at most that many.
            count = ops.purge(
                state="dead",
                job_type=job_type,
                queue=queue,
                older_than=age,
                on_progress=progress("deleted"),
                finished_by=cutoff,
                at_most=confirmed,
            )
            end_progress()
    if json_out:
        print_json({**({"dry_run": True} if dry_run else {}), "count": count})
    elif dry_run:
        print(f"would delete {plural(count, 'dead job')}")
    else:
        print(confirmed_notice("deleted", count, confirmed, "dead job"))


@dlq_app.command("edit")
@handle_errors
def dlq_edit(
    job_id: Annotated[int, typer.Argument(metavar="ID")], json_out: JsonOpt = False
) -> None:
    """Edit a dead job's payload in $VISUAL or $EDITOR, then retry it with the new payload (an
    editor closed without saving, or no change, retries nothing)."""
    import json

    from jq_cli.cli.editor import edit_text, resolve_editor
    from jq_cli.errors import InvalidTransition
    from jq_cli.model.jobspec import parse_payload_text

    editor = resolve_editor()  # before any service is asked: a bad $EDITOR is a usage error
    with operations() as ops:
        job = ops.get(job_id)
        if job["state"] != "dead":
            raise InvalidTransition(
                f"job {job_id} is {job['state']}: only a dead job is edited and retried",
                state=job["state"],
            )
        before = json.dumps(job["payload"], indent=2, ensure_ascii=False) + "\n"
        after = edit_text(before, editor)
        edited = None if after is None else parse_payload_text(after, "the edited payload")
        if edited is None or edited == job["payload"]:
            print(f"job {job_id}: payload unchanged, not retried")
            return
        done = ops.retry_edited(job_id, edited)
    if json_out:
        print_json(done)
    else:
        print(f"job {job_id}: queued with the edited payload")
