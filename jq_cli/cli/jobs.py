"""The job commands: `jq submit`, `show`, `list`, `retry`, `cancel`, `purge` and `stats`."""

# No `from __future__ import annotations` here: Typer reads every command's annotations on
# each run, and as strings each one is compiled and evaluated again (about 30 ms of `jq --help`).

import sys
from typing import Annotated

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
    state_text,
)
from jq_cli.cli.rows import OutputOpt


@handle_errors
def submit(
    job_type: Annotated[
        str | None, typer.Argument(metavar="TYPE", help="The job type, e.g. send_email.")
    ] = None,
    payload: PayloadOpt = None,
    priority: Annotated[str, typer.Option(help="high, medium or low.")] = "medium",
    max_retries: Annotated[
        int | None, typer.Option(help="Retries after the first attempt.")
    ] = None,
    queue: Annotated[str, typer.Option(help="The queue to submit to.")] = "default",
    delay: Annotated[str | None, typer.Option(help="Run later: 30s, 5m, 2h, 1d.")] = None,
    at: Annotated[str | None, typer.Option(help="Run at an ISO 8601 time.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="A second submit with it returns the first job.")
    ] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", "-f", help="Bulk: a JSONL file of jobs (- for stdin)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Follow the job until it ends; exit 0 only if completed.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Submit a job (or, with --file, many in one transaction). Prints the new job's id."""
    from jq_cli.errors import InvalidInput
    from jq_cli.jobspec import JobRequest

    if file is not None:
        if job_type is not None or payload is not None or wait:
            raise InvalidInput(
                "--file takes the jobs from the file: give no TYPE, --payload or --wait with it"
            )
        numbered = read_jobs_file(file)
        with operations() as ops:
            batch = ops.submit_many_detailed(
                [job for _, job in numbered], where="line", numbers=[n for n, _ in numbered]
            )
        ids = [i.id for i in batch]
        if json_out:
            print_json({"count": len(ids), "created": sum(i.created for i in batch), "ids": ids})
        else:
            print(
                f"submitted {len(ids)} jobs ({sum(i.created for i in batch)} new): "
                f"{ids[0]}..{ids[-1]}"
                if ids
                else "submitted 0 jobs"
            )
        return
    if job_type is None:
        raise InvalidInput("give a job TYPE, or --file JOBS.jsonl")
    if delay is not None and at is not None:
        raise InvalidInput("give either --delay or --at, not both")
    request = JobRequest.parse(
        {
            "job_type": job_type,
            "payload": read_payload(payload),
            "priority": priority,
            "max_retries": max_retries,
            "queue": queue,
            "delay": delay,
            "run_at": at,
            "idempotency_key": idempotency_key,
        }
    )
    with operations() as ops:
        inserted = ops.submit_request(request)
        if not wait:
            if json_out:
                print_json(ops.get(inserted.id))
            else:
                print(inserted.id)
            return
        if not json_out:
            sys.stderr.write(f"job {inserted.id} submitted; waiting...\n")
        job = ops.wait(inserted.id, timeout=timeout)
    if json_out:
        print_json(job)
    else:
        print(
            f"{job['id']} {job['state']}"
            + (
                f": {job['last_error']}"
                if job["state"] != "completed" and job.get("last_error")
                else ""
            )
        )
    raise typer.Exit(0 if job["state"] == "completed" else 1)


@handle_errors
def show(job_id: Annotated[int, typer.Argument(metavar="ID")], json_out: JsonOpt = False) -> None:
    """A job: its payload, result, progress, timestamps and every attempt."""
    import json

    from rich.table import Table
    from rich.text import Text

    from jq_cli.cli.output import age, duration, print_fields

    with operations() as ops:
        job = ops.get(job_id)
    if json_out:
        print_json(job)
        return
    out = console()
    progress = (
        "-"
        if job["progress"] is None
        else f"{job['progress']:.0f}%"
        + (f" {job['progress_message']}" if job.get("progress_message") else "")
    )
    state = Text.from_markup(state_text(job["state"]))
    if job["cancel_requested"] and job["state"] == "running":
        state.append(" (cancel requested)")
    print_fields(
        out,
        (
            ("id", str(job["id"])),
            ("type", job["job_type"]),
            ("queue", job["queue"]),
            ("priority", job["priority"]),
            ("state", state),
            ("attempts", f"{job['attempts']} of {job['max_retries'] + 1}"),
            ("progress", progress),
            ("created", f"{job['created_at']:%Y-%m-%d %H:%M:%S%z} ({age(job['created_at'])})"),
            (
                "run at",
                "-"
                if job["run_at"] is None
                else f"{job['run_at']:%Y-%m-%d %H:%M:%S%z} ({age(job['run_at'])})",
            ),
            (
                "started",
                "-" if job["started_at"] is None else f"{job['started_at']:%Y-%m-%d %H:%M:%S%z}",
            ),
            (
                "finished",
                "-" if job["finished_at"] is None else f"{job['finished_at']:%Y-%m-%d %H:%M:%S%z}",
            ),
            ("worker", job["worker"] or "-"),
            ("idempotency key", job["idempotency_key"] or "-"),
            ("payload", json.dumps(job["payload"], ensure_ascii=False)),
            (
                "result",
                "-" if job["result"] is None else json.dumps(job["result"], ensure_ascii=False),
            ),
            ("last error", job["last_error"] or "-"),
        ),
    )
    if job["attempt_history"]:
        table = Table(title="attempts", header_style="bold")
        for column in ("#", "WORKER", "STARTED", "DURATION", "OUTCOME", "ERROR"):
            table.add_column(column, overflow="fold")
        for a in job["attempt_history"]:
            table.add_row(
                str(a["number"]),
                Text(a["worker"]),
                f"{a['started_at']:%H:%M:%S.%f}"[:-3],
                duration(a["started_at"], a["finished_at"]),
                a["outcome"],
                Text(a["error"] or ""),
            )
        out.print(table)
        last_tb = next(
            (a["traceback"] for a in reversed(job["attempt_history"]) if a["traceback"]), None
        )
        if last_tb:
            out.print("[bold]last traceback[/]")
            out.print(last_tb.rstrip(), markup=False, highlight=False)


@handle_errors
def list_(
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only jobs of this type.")] = None,
    priority: Annotated[str | None, typer.Option(help="high, medium or low.")] = None,
    queue: Annotated[str | None, typer.Option(help="Only jobs of this queue.")] = None,
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
    from jq_cli.cli.rows import JOB_COLUMNS, emit, resolve
    from jq_cli.durations import parse_duration

    fmt = resolve(output, json_out)
    since_s = parse_duration(since, "since") if since else None
    with operations() as ops:
        jobs = ops.list_jobs(
            state=state,
            job_type=job_type,
            priority=priority,
            queue=queue,
            since=since_s,
            limit=limit,
            before_id=before,
        )
    emit(jobs, JOB_COLUMNS, fmt)


@handle_errors
def retry(
    ids: Annotated[list[int] | None, typer.Argument(metavar="ID...", help="Jobs to retry.")] = None,
    state: Annotated[str | None, typer.Option(help="Retry every job in this state (dead).")] = None,
    job_type: Annotated[
        str | None, typer.Option("--type", help="With --state: only this type.")
    ] = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Put dead jobs back in the queue with a fresh set of attempts (their history is kept)."""
    from jq_cli.errors import InvalidInput

    if bool(ids) == bool(state):
        raise InvalidInput("give job IDs or --state dead, not both and not neither")
    with operations() as ops:
        if ids:
            print_report(ops.retry(ids), json_out)
            return
        assert state is not None  # one of ids and --state was given: checked above
        done = ops.retry_matching(
            state=state, job_type=job_type, dry_run=dry_run, on_progress=progress("retried")
        )
        end_progress()
    if json_out:
        print_json({"dry_run": dry_run, "count": done})
    else:
        print(f"{'would retry' if dry_run else 'retried'} {done} jobs")


@handle_errors
def cancel(
    ids: Annotated[list[int], typer.Argument(metavar="ID...")], json_out: JsonOpt = False
) -> None:
    """Cancel jobs: not started ones never run; running ones are asked to stop."""
    with operations() as ops:
        print_report(ops.cancel(ids), json_out)


@handle_errors
def purge(
    state: Annotated[str, typer.Option(help="completed, dead or cancelled.")],
    older_than: Annotated[
        str | None, typer.Option(help="Only jobs finished longer ago, e.g. 7d.")
    ] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only this type.")] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete finished jobs and their attempts. Never deletes a job that is not terminal."""
    from jq_cli.durations import parse_duration

    age = parse_duration(older_than, "older-than") if older_than else None
    with operations() as ops:
        count = ops.purge(state=state, older_than=age, job_type=job_type, dry_run=True)
        if not dry_run and count:
            confirm(f"delete {count} {state} jobs?", yes)
            count = ops.purge(
                state=state, older_than=age, job_type=job_type, on_progress=progress("deleted")
            )
            end_progress()
    if json_out:
        print_json({"dry_run": dry_run, "state": state, "count": count})
    else:
        print(f"{'would delete' if dry_run else 'deleted'} {count} {state} jobs")


@handle_errors
def stats(json_out: JsonOpt = False) -> None:
    """Counts by state, queued by priority and queue (Postgres and broker), and live workers."""
    from jq_cli.cli.stats_view import render_stats

    with operations() as ops:
        data = ops.stats()
    if json_out:
        print_json(data)
    else:
        render_stats(console(), data)
