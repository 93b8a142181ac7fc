"""The job commands: `jq submit`, `list`, `retry`, `cancel`, `replay`, `purge` and `stats`.

`jq show` is in show.py, and following a job for `submit --wait` in wait.py."""

# No `from __future__ import annotations` here: Typer reads every command's annotations on
# each run, and as strings each one is compiled and evaluated again (about 30 ms of `jq --help`).

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jq_cli.cli.options import (
    DryRunOpt,
    JsonOpt,
    PayloadOpt,
    YesOpt,
    confirm,
    operations,
    read_jobs_file,
    read_payload,
)
from jq_cli.cli.output import (
    console,
    end_progress,
    handle_errors,
    print_json,
    print_report,
    progress,
)
from jq_cli.cli.rows import OutputOpt, ViewOpt
from jq_cli.cli.wait import follow
from jq_cli.model.words import confirmed_notice, plural

if TYPE_CHECKING:
    from jq_cli.client import Client


@handle_errors
def submit(
    job_type: Annotated[
        str | None, typer.Argument(metavar="TYPE", help="The job type, e.g. send_email.")
    ] = None,
    payload: PayloadOpt = None,
    priority: Annotated[
        str | None, typer.Option(help="high, medium or low (default: the type's, else medium).")
    ] = None,
    max_retries: Annotated[
        int | None, typer.Option(help="Retries after the first attempt.")
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            help="The queue to submit to (default: the type's, else default); it must exist "
            "(have jobs, a worker, a pause or a limit) unless --new-queue is given."
        ),
    ] = None,
    new_queue: Annotated[
        bool,
        typer.Option(
            "--new-queue",
            help="Allow a queue that does not exist yet (on purpose: no worker may read it).",
        ),
    ] = False,
    delay: Annotated[str | None, typer.Option(help="Run later: 30s, 5m, 2h, 1d.")] = None,
    at: Annotated[str | None, typer.Option(help="Run at an ISO 8601 time.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="A second submit with it returns the first job.")
    ] = None,
    after: Annotated[
        str | None,
        typer.Option(
            "--after", metavar="ID[,ID]", help="Wait (state waiting) until these jobs completed."
        ),
    ] = None,
    on_parent_failure: Annotated[
        str, typer.Option(help="With --after, when a parent ends dead or cancelled: cancel or run.")
    ] = "cancel",
    unique_for: Annotated[
        str | None,
        typer.Option(help="A same submit (type and payload) within this period returns this job."),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", "-f", help="Bulk: a JSONL file of jobs (- for stdin)."),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            help="Follow the job until it ends; exit 0 only if completed "
            "(6 if --timeout passes first; the job goes on)."
        ),
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds.")
    ] = None,
    time_limit: Annotated[
        str | None,
        typer.Option(help="Each attempt may run this long (30s, 5m); over it, it ends timeout."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Submit a job (or, with --file, many in one transaction). Prints the new job's id."""
    from jq_cli.errors import InvalidInput
    from jq_cli.model.jobspec import JobRequest, parse_priority

    if file is not None:
        if job_type is not None or payload is not None or wait:
            raise InvalidInput(
                "--file takes the jobs from the file: give no TYPE, --payload or --wait with it"
            )
        numbered = read_jobs_file(file)
        with operations() as ops:
            if not new_queue:
                _check_file_queues(ops, numbered)
            batch = ops.submit_many_detailed(
                [job for _, job in numbered], where="line", numbers=[n for n, _ in numbered]
            )
        ids = [i.id for i in batch]
        if json_out:
            print_json({"count": len(ids), "created": sum(i.created for i in batch), "ids": ids})
        else:
            print(
                f"submitted {plural(len(ids), 'job')} ({sum(i.created for i in batch)} new): "
                f"{ids[0]}..{ids[-1]}"
                if ids
                else "submitted 0 jobs"
            )
        return
    if job_type is None:
        raise InvalidInput("give a job TYPE, or --file JOBS.jsonl")
    if delay is not None and at is not None:
        raise InvalidInput("give either --delay or --at, not both")
    if priority is not None:
        parse_priority(priority)  # its own message, with a "did you mean", before the model's
    given = {
        "priority": priority,
        "max_retries": max_retries,
        "queue": queue,
        "delay": delay,
        "run_at": at,
        "idempotency_key": idempotency_key,
        "time_limit": time_limit,
        "unique_for": unique_for,
        "depends_on": _parent_ids(after) or None,
        "on_parent_failure": on_parent_failure,
    }
    # Options left out fall to the type's @job defaults, then jq's.
    request = JobRequest.parse(
        {
            "job_type": job_type,
            "payload": read_payload(payload),
            **{k: v for k, v in given.items() if v is not None},
        }
    )
    with operations() as ops:
        from jq_cli.ops.names import check_queues

        if queue is not None and not new_queue:
            # A misspelt queue would take the job where no worker reads it (docs/design.md,
            # Invariants 1: accepted means it ends terminal), so it is refused before the insert.
            check_queues(ops, [queue], new_queue_flag="--new-queue")
        inserted = ops.submit_request(request)
        if not wait:
            if json_out:
                print_json(ops.get(inserted.id))
            else:
                print(inserted.id)
            return
        job = follow(ops, inserted.id, timeout, quiet=json_out)
    if json_out:
        print_json(job)
    else:
        print(
            f"{job['id']} {job['state']}"
            + (
                f": {job['last_error']}"
                if job["state"] not in ("completed", "cancelled") and job.get("last_error")
                else ""
            )
        )
    raise typer.Exit(0 if job["state"] == "completed" else 1)


def _check_file_queues(ops: "Client", numbered: list[tuple[int, dict[str, Any]]]) -> None:
    """Refuse a jobs file whose queue is unknown, naming its first line; a queue that is not a
    valid name is left to the submit, which names the line too. Raises UnknownName."""
    from jq_cli.errors import InvalidInput
    from jq_cli.model.jobspec import check_name
    from jq_cli.ops.names import UnknownName, new_queue_escape, unknown_name_error, unknown_queues

    lines: dict[str, int] = {}
    for number, job in numbered:
        queue = job.get("queue")
        if not isinstance(queue, str) or queue in lines:
            continue
        try:
            check_name(queue, "queue")
        except InvalidInput:
            continue
        lines[queue] = number
    unknown, known = unknown_queues(ops, lines)
    if unknown:
        first = min(unknown, key=lines.__getitem__)
        error = unknown_name_error("queue", first, known, new_queue_escape("--new-queue"))
        raise UnknownName(f"line {lines[first]}: {error.message}")


def _parent_ids(after: str | None) -> list[int]:
    """The ids of `--after 12,13`. Raises InvalidInput."""
    from jq_cli.errors import InvalidInput

    if after is None:
        return []
    try:
        ids = [int(part) for part in after.split(",") if part.strip()]
    except ValueError:
        raise InvalidInput(f"--after takes job ids separated by commas, got {after!r}") from None
    if not ids or any(i < 1 for i in ids):
        raise InvalidInput(f"--after takes job ids (1 or more), got {after!r}")
    return ids


def _each(values: list[str] | None) -> list[str]:
    """The names of a repeatable, comma-separated option (`--queue a,b --queue c`)."""
    from jq_cli.config import split_names

    return [name for value in values or [] for name in split_names(value)]


AnyOf = "; repeat it or separate values with commas for any of them."


@handle_errors
def list_(
    state: Annotated[list[str] | None, typer.Option(help="Only jobs in this state" + AnyOf)] = None,
    job_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only jobs of this type" + AnyOf)
    ] = None,
    priority: Annotated[list[str] | None, typer.Option(help="high, medium or low" + AnyOf)] = None,
    queue: Annotated[list[str] | None, typer.Option(help="Only jobs of this queue" + AnyOf)] = None,
    since: Annotated[str | None, typer.Option(help="Only jobs created within, e.g. 1h.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    before: Annotated[
        int | None,
        typer.Option(help="Only jobs older than this id: the next page after the last id shown."),
    ] = None,
    output: OutputOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Jobs, newest first."""
    from jq_cli.cli.rows import JOB_COLUMNS, Format, emit, resolve
    from jq_cli.model.durations import parse_duration

    fmt = resolve(output, json_out)
    since_s = parse_duration(since, "since") if since else None
    # On a terminal, one row more than the page tells whether to say that more exist.
    tell = sys.stdout.isatty() and fmt in (Format.table, Format.wide) and limit < 10_000
    with operations() as ops:
        from jq_cli.ops.names import check_queues, check_types

        # A misspelt filter would answer with nothing, which reads as "no such jobs".
        check_queues(ops, _each(queue))
        check_types(ops, _each(job_type))
        jobs = ops.list_jobs(
            state=state,
            job_type=job_type,
            priority=priority,
            queue=queue,
            since=since_s,
            limit=limit + 1 if tell else limit,
            before_id=before,
        )
    more = tell and len(jobs) > limit
    jobs = jobs[:limit]
    emit(jobs, JOB_COLUMNS, fmt)
    if more:
        sys.stderr.write(
            f"showing the newest {limit}; more exist: add --before {jobs[-1]['id']} for the next page\n"
        )


@handle_errors
def retry(
    ids: Annotated[list[int] | None, typer.Argument(metavar="ID...", help="Jobs to retry.")] = None,
    state: Annotated[str | None, typer.Option(help="Retry every job in this state (dead).")] = None,
    job_type: Annotated[
        str | None, typer.Option("--type", help="With --state: only this type.")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="With --state: only this queue.")] = None,
    payload: Annotated[
        str | None,
        typer.Option(help="With one dead job's ID: retry it with this payload (JSON, @FILE, -)."),
    ] = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Put dead jobs back in the queue with a fresh set of attempts (their history is kept)."""
    from jq_cli.errors import InvalidInput

    if bool(ids) == bool(state):
        raise InvalidInput("give job IDs or --state dead, not both and not neither")
    if payload is not None and (not ids or len(ids) != 1 or dry_run):
        raise InvalidInput("--payload goes with exactly one job ID (and no --dry-run)")
    if ids and (job_type or queue or dry_run):
        raise InvalidInput("--type, --queue and --dry-run go with --state, not with IDs")
    with operations() as ops:
        if ids and payload is not None:
            done_one = ops.retry_edited(ids[0], read_payload(payload))
            if json_out:
                print_json(done_one)
            else:
                print(f"job {ids[0]}: queued with the new payload")
            return
        if ids:
            print_report(ops.retry(ids), json_out)
            return
        assert state is not None  # one of ids and --state was given: checked above
        done = ops.retry_matching(
            state=state,
            job_type=job_type,
            queue=queue,
            dry_run=dry_run,
            on_progress=progress("retried"),
        )
        end_progress()
    if json_out:
        print_json({"dry_run": dry_run, "count": done})
    else:
        print(f"{'would retry' if dry_run else 'retried'} {plural(done, 'job')}")


@handle_errors
def cancel(
    ids: Annotated[list[int] | None, typer.Argument(metavar="[ID...]")] = None,
    state: Annotated[
        str | None,
        typer.Option(help="Cancel every job in this state (scheduled, queued, running, retrying)."),
    ] = None,
    job_type: Annotated[
        str | None, typer.Option("--type", help="With --state: only this type.")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="With --state: only this queue.")] = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Cancel jobs: not started ones never run; running ones are asked to stop."""
    from jq_cli.errors import InvalidInput

    if bool(ids) == bool(state):
        raise InvalidInput("give job IDs or --state S, not both and not neither")
    if ids and (job_type or queue or dry_run):
        raise InvalidInput("--type, --queue and --dry-run go with --state, not with IDs")
    with operations() as ops:
        if ids:
            print_report(ops.cancel(ids), json_out)
            return
        assert state is not None
        done = ops.cancel_matching(state=state, job_type=job_type, queue=queue, dry_run=dry_run)
    if json_out:
        print_json({"dry_run": dry_run, "count": len(done), "ids": done})
    else:
        print(f"{'would cancel' if dry_run else 'cancelled'} {plural(len(done), 'job')}")


@handle_errors
def replay(job_id: Annotated[int, typer.Argument(metavar="ID")], json_out: JsonOpt = False) -> None:
    """Run a finished job again as a new job linked to it (jq show lists the link on both)."""
    with operations() as ops:
        new_id = ops.replay(job_id)
    if json_out:
        print_json({"id": new_id, "replay_of": job_id})
    else:
        print(new_id)


@handle_errors
def purge(
    state: Annotated[str, typer.Option(help="completed, dead or cancelled.")],
    older_than: Annotated[
        str | None, typer.Option(help="Only jobs finished longer ago, e.g. 7d.")
    ] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only this type.")] = None,
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete finished jobs and their attempts. Never deletes a job that is not terminal."""
    from jq_cli.model.durations import parse_duration

    age = parse_duration(older_than, "older-than") if older_than else None
    with operations() as ops:
        confirmed, cutoff = ops.purge_count(
            state=state, older_than=age, job_type=job_type, queue=queue
        )
        count = confirmed
        if not dry_run and confirmed:
            confirm(f"delete {plural(confirmed, f'{state} job')}?", yes)
            # The jobs confirmed, no more: finished by the count's time, at most that many.
            count = ops.purge(
                state=state,
                older_than=age,
                job_type=job_type,
                queue=queue,
                on_progress=progress("deleted"),
                finished_by=cutoff,
                at_most=confirmed,
            )
            end_progress()
    if json_out:
        print_json({"dry_run": dry_run, "state": state, "count": count})
    elif dry_run:
        print(f"would delete {plural(count, f'{state} job')}")
    else:
        print(confirmed_notice("deleted", count, confirmed, f"{state} job"))


@handle_errors
def stats(output: ViewOpt = None, json_out: JsonOpt = False) -> None:
    """Counts by state, queued by priority and queue (Postgres and broker), and live workers."""
    from jq_cli.cli.rows import resolve_view
    from jq_cli.cli.stats_view import render_stats

    as_json = resolve_view(output, json_out)
    with operations() as ops:
        data = ops.stats()
    if as_json:
        print_json(data)
    else:
        render_stats(console(), data)
