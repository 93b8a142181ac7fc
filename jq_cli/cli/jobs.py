"""The job commands: `jq submit`, `show`, `list`, `retry`, `cancel`, `purge` and `stats`."""

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
    state_text,
)
from jq_cli.cli.rows import OutputOpt, ViewOpt

if TYPE_CHECKING:
    from jq_cli.ops import Operations

TRACEBACK_LINES = 6  # of each failed attempt's traceback, `jq show` prints the last ones


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
        str | None, typer.Option(help="The queue to submit to (default: the type's, else default).")
    ] = None,
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
    from jq_cli.jobspec import JobRequest, parse_priority

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


def follow(ops: "Operations", job_id: int, timeout: float | None, quiet: bool) -> dict[str, Any]:
    """Wait for a job to end, showing its state and progress on a terminal (stderr). Ctrl-C and
    a timeout leave the job running and say so; a timeout exits with its own code."""
    import time

    from jq_cli.errors import EXIT_WAIT_TIMEOUT
    from jq_cli.states import TERMINAL_STATES, JobState

    live = sys.stderr.isatty() and not quiet
    if not quiet:
        sys.stderr.write(f"job {job_id} submitted; waiting (Ctrl-C stops waiting, not the job)\n")
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = ""
    try:
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            job = ops.wait(job_id, timeout=0.5 if left is None else min(0.5, left))
            if JobState(job["state"]) in TERMINAL_STATES:
                break
            if live:
                line = _wait_line(job)
                if line != shown:
                    sys.stderr.write("\r\x1b[2K" + line)
                    sys.stderr.flush()
                    shown = line
            if deadline is not None and time.monotonic() >= deadline:
                if shown:
                    sys.stderr.write("\n")
                sys.stderr.write(
                    f"jq: error: gave up waiting after {timeout:g}s: job {job_id} is "
                    f"{job['state']} and goes on (jq show {job_id})\n"
                )
                raise typer.Exit(EXIT_WAIT_TIMEOUT)
    except KeyboardInterrupt:
        if shown:
            sys.stderr.write("\n")
        sys.stderr.write(
            f"jq: interrupted: job {job_id} goes on (jq show {job_id}; jq cancel {job_id} stops it)\n"
        )
        raise typer.Exit(130) from None
    if shown:
        sys.stderr.write("\r\x1b[2K")
    return job


def _wait_line(job: dict[str, Any]) -> str:
    """`job 7 running 40% encoding (attempt 1 of 4)`: one terminal line, rewritten in place."""
    parts = [f"job {job['id']} {job['state']}"]
    if job["state"] == "running" and job.get("progress") is not None:
        parts.append(f"{job['progress']:.0f}%")
        if job.get("progress_message"):
            parts.append(str(job["progress_message"]))
    parts.append(f"(attempt {max(job['attempts'], 1)} of {job['max_retries'] + 1})")
    return " ".join(parts)


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


@handle_errors
def show(
    job_id: Annotated[int, typer.Argument(metavar="ID")],
    output: ViewOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A job: its payload, result, progress, timestamps and every attempt."""
    from jq_cli.cli.rows import resolve_view

    as_json = resolve_view(output, json_out)
    with operations() as ops:
        job = ops.get(job_id)
        timeline = ops.timeline(job)
        graph = ops.workflow(job_id)
    if as_json:  # attempts' tracebacks whole; the workflow's graph when it has one
        print_json({**job, "workflow": graph} if len(graph["jobs"]) > 1 else job)
        return
    render_job(job, timeline, graph)


WAITING_STATES = ("queued", "scheduled", "retrying", "waiting")


def render_job(job: dict[str, Any], timeline: list[dict[str, Any]], graph: dict[str, Any]) -> None:
    """The human view of `jq show`: the job, its workflow's tree (ops.workflow) and its timeline
    (ops.timeline)."""
    import json

    from rich.table import Table
    from rich.text import Text

    from jq_cli.cli.output import age, duration, print_fields

    out = console()
    # Progress belongs to an attempt: a job back in the queue (retrying, requeued by a rescue)
    # has none yet, whatever its last attempt reported.
    progress = (
        "-"
        if job["progress"] is None or job["state"] in WAITING_STATES
        else f"{job['progress']:.0f}%"
        + (f" {job['progress_message']}" if job.get("progress_message") else "")
    )
    state = Text.from_markup(state_text(job["state"]))
    if job["cancel_requested"] and job["state"] == "running":
        state.append(" (cancel requested)")
    if job["state"] == "scheduled" and job.get("limited_by"):  # issue 16
        state.append(f" (limited: {job['limited_by']})")
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
            ("replay of", str(job["replay_of"]) if job.get("replay_of") else "-"),
            ("replays", ", ".join(map(str, job.get("replays") or [])) or "-"),
            ("payload", json.dumps(job["payload"], ensure_ascii=False)),
            (
                "result",
                "-" if job["result"] is None else json.dumps(job["result"], ensure_ascii=False),
            ),
            # A completed job has no current error: earlier failures are in the attempts below.
            ("last error", "-" if job["state"] == "completed" else job["last_error"] or "-"),
        ),
    )
    from jq_cli.cli.workflow_view import workflow_tree

    tree = workflow_tree(graph, job["id"])
    if tree is not None:
        out.print(tree)
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
        # issue 16: every failed attempt's traceback, folded to its last lines.
        for a in job["attempt_history"]:
            if a["traceback"]:
                lines = a["traceback"].rstrip().splitlines()
                folded = len(lines) - TRACEBACK_LINES
                out.print(
                    f"[bold]attempt {a['number']} traceback[/]"
                    + (
                        f" [dim]({folded} lines folded; --json has them all)[/]"
                        if folded > 0
                        else ""
                    )
                )
                out.print("\n".join(lines[-TRACEBACK_LINES:]), markup=False, highlight=False)
    steps = Table(title="timeline", header_style="bold")
    for column in ("AT", "STATE", "EVENT"):
        steps.add_column(column, overflow="fold")
    for step in timeline:
        steps.add_row(
            f"{step['at']:%Y-%m-%d %H:%M:%S.%f}"[:-3],
            Text.from_markup(state_text(step["state"])) if step["state"] else Text(""),
            Text(step["event"]),
        )
    out.print(steps)


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
    from jq_cli.durations import parse_duration

    fmt = resolve(output, json_out)
    since_s = parse_duration(since, "since") if since else None
    # On a terminal, one row more than the page tells whether to say that more exist.
    tell = sys.stdout.isatty() and fmt in (Format.table, Format.wide) and limit < 10_000
    with operations() as ops:
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
        print(f"{'would retry' if dry_run else 'retried'} {done} jobs")


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
        print(f"{'would cancel' if dry_run else 'cancelled'} {len(done)} jobs")


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
    from jq_cli.durations import parse_duration

    age = parse_duration(older_than, "older-than") if older_than else None
    with operations() as ops:
        count = ops.purge(state=state, older_than=age, job_type=job_type, queue=queue, dry_run=True)
        if not dry_run and count:
            confirm(f"delete {count} {state} jobs?", yes)
            count = ops.purge(
                state=state,
                older_than=age,
                job_type=job_type,
                queue=queue,
                on_progress=progress("deleted"),
            )
            end_progress()
    if json_out:
        print_json({"dry_run": dry_run, "state": state, "count": count})
    else:
        print(f"{'would delete' if dry_run else 'deleted'} {count} {state} jobs")


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
