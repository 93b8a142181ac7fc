"""The `jq` command: argument parsing and output only; every action goes through jq_cli.ops.

Heavy imports (psycopg, pika, rich tables, textual) happen inside the commands that need them,
so that `jq --help` and `jq submit` start fast.
"""

# No `from __future__ import annotations` here: Typer reads every command's annotations on
# each run, and as strings each one is compiled and evaluated again (about 30 ms of `jq --help`).

import sys
from typing import Annotated

import typer

from jq_cli.cli.output import console, fail, handle_errors, print_json, state_text
from jq_cli.cli.rows import OutputOpt
from jq_cli.cli.schedules import schedule_app

app = typer.Typer(
    name="jq",
    help="jq: a job queue with PostgreSQL as the truth and RabbitMQ as the transport.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="The database schema: migrate and status.", no_args_is_help=True)
help_app = typer.Typer(help="Reference pages: exit-codes.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="The dead-letter queue: jobs that exhausted their attempts.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(help_app, name="help")
app.add_typer(dlq_app, name="dlq")
app.add_typer(schedule_app, name="schedule")  # issue 4: jq schedule ...

JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
]
ConfigOpt = Annotated[
    str | None, typer.Option(help="An env-format settings file, re-read on SIGHUP.")
]
LogFormatOpt = Annotated[str, typer.Option(help="text (journald-aware) or json.")]
MetricsPortOpt = Annotated[
    int | None, typer.Option(min=1, max=65535, help="Serve Prometheus /metrics here.")
]


def _ops():
    from jq_cli.ops import Operations

    return Operations()


def _confirm(question: str, yes: bool) -> None:
    from jq_cli.errors import Refused

    # Only --yes skips the question: --json chooses an output format, not consent to delete.
    if yes:
        return
    if not sys.stdin.isatty():  # never hang waiting for an answer no one can give
        raise Refused("refusing to delete without confirmation: pass --yes")
    # The question goes to stderr so that stdout stays one JSON document under --json.
    if not typer.confirm(question, default=False, err=True):
        raise Refused("aborted: nothing was deleted")


def _read_payload(value: str | None) -> dict:
    from jq_cli.jobspec import parse_payload_text

    if value is None:
        return {}
    if value == "-":
        return parse_payload_text(sys.stdin.read(), "payload from stdin")
    if value.startswith("@"):
        from jq_cli.userfiles import read_user_text

        path = value[1:]
        return parse_payload_text(read_user_text(path, "payload file"), f"payload file {path}")
    return parse_payload_text(value)


def _read_jobs_file(value: str) -> list[tuple[int, dict]]:
    """Parse a JSONL file of job objects; a bad line rejects the whole file, naming the line.
    Returns (line number, job) pairs: blank lines are skipped, so the numbers are kept beside
    the jobs rather than recounted (or stored in the job, where they would hide a user's field)."""
    import json

    from jq_cli.errors import InvalidInput

    if value == "-":
        lines = sys.stdin.read().splitlines()
    else:
        from jq_cli.userfiles import read_user_text

        lines = read_user_text(value, "jobs file").splitlines()
    jobs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"line {number}: not valid JSON: {exc.msg}") from None
        if not isinstance(job, dict):
            raise InvalidInput(f"line {number}: a job must be a JSON object")
        jobs.append((number, job))
    if not jobs:
        raise InvalidInput("the jobs file holds no jobs")
    return jobs


# -- jobs ---------------------------------------------------------------------------------------


@app.command()
@handle_errors
def submit(
    job_type: Annotated[
        str | None, typer.Argument(metavar="TYPE", help="The job type, e.g. send_email.")
    ] = None,
    payload: Annotated[str | None, typer.Option(help="JSON object, @FILE, or - for stdin.")] = None,
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
    time_limit: Annotated[
        str | None,
        typer.Option(help="Each attempt may run this long (30s, 5m); over it, it ends timeout."),
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
        numbered = _read_jobs_file(file)
        with _ops() as ops:
            inserted = ops.submit_many_detailed(
                [job for _, job in numbered], where="line", numbers=[n for n, _ in numbered]
            )
        ids = [i.id for i in inserted]
        if json_out:
            print_json({"count": len(ids), "created": sum(i.created for i in inserted), "ids": ids})
        else:
            print(
                f"submitted {len(ids)} jobs ({sum(i.created for i in inserted)} new): "
                f"{ids[0]}..{ids[-1]}"
                if ids
                else "submitted 0 jobs"
            )
        return
    if job_type is None:
        raise InvalidInput("give a job TYPE, or --file JOBS.jsonl")
    if delay is not None and at is not None:
        raise InvalidInput("give either --delay or --at, not both")
    given = {
        "priority": priority,
        "max_retries": max_retries,
        "queue": queue,
        "delay": delay,
        "run_at": at,
        "idempotency_key": idempotency_key,
        "time_limit": time_limit,
    }
    # Options left out fall to the type's @job defaults, then jq's.
    request = JobRequest.parse(
        {
            "job_type": job_type,
            "payload": _read_payload(payload),
            **{k: v for k, v in given.items() if v is not None},
        }
    )
    with _ops() as ops:
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


@app.command()
@handle_errors
def show(job_id: Annotated[int, typer.Argument(metavar="ID")], json_out: JsonOpt = False) -> None:
    """A job: its payload, result, progress, timestamps and every attempt."""
    import json

    from rich.table import Table
    from rich.text import Text

    from jq_cli.cli.output import age, duration, print_fields

    with _ops() as ops:
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


@app.command("list")
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
    with _ops() as ops:
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


def _report(report, verb: str, json_out: bool) -> None:
    if json_out:
        print_json(report.as_dict())
    else:
        for job_id, state in report.changed.items():
            print(f"{job_id} {state}")
        for err in report.refused.values():
            sys.stderr.write(f"jq: error: {err.message}\n")
    if report.refused:
        raise typer.Exit(max(e.exit_code for e in report.refused.values()))


@app.command()
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
    with _ops() as ops:
        if ids:
            _report(ops.retry(ids), "retried", json_out)
            return
        done = ops.retry_matching(state=state, job_type=job_type, dry_run=dry_run)
    if json_out:
        print_json({"dry_run": dry_run, "count": len(done), "ids": done})
    else:
        print(f"{'would retry' if dry_run else 'retried'} {len(done)} jobs")


@app.command()
@handle_errors
def cancel(
    ids: Annotated[list[int], typer.Argument(metavar="ID...")], json_out: JsonOpt = False
) -> None:
    """Cancel jobs: not started ones never run; running ones are asked to stop."""
    with _ops() as ops:
        _report(ops.cancel(ids), "cancelled", json_out)


@app.command()
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
    with _ops() as ops:
        count = ops.purge(state=state, older_than=age, job_type=job_type, dry_run=True)
        if not dry_run and count:
            _confirm(f"delete {count} {state} jobs?", yes)
            count = ops.purge(state=state, older_than=age, job_type=job_type)
    if json_out:
        print_json({"dry_run": dry_run, "state": state, "count": count})
    else:
        print(f"{'would delete' if dry_run else 'deleted'} {count} {state} jobs")


# -- dead-letter queue --------------------------------------------------------------------------


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
    with _ops() as ops:
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
    with _ops() as ops:
        if ids:
            _report(ops.retry(ids), "retried", json_out)
            return
        done = ops.retry_matching(state="dead")
    if json_out:
        print_json({"count": len(done), "ids": done})
    else:
        print(f"retried {len(done)} dead jobs")


@dlq_app.command("purge")
@handle_errors
def dlq_purge(yes: YesOpt = False, json_out: JsonOpt = False) -> None:
    """Delete every dead job."""
    with _ops() as ops:
        count = ops.purge(state="dead", dry_run=True)
        if count:
            _confirm(f"delete {count} dead jobs?", yes)
            count = ops.purge(state="dead")
    if json_out:
        print_json({"count": count})
    else:
        print(f"deleted {count} dead jobs")


# -- health -------------------------------------------------------------------------------------


@app.command()
@handle_errors
def stats(json_out: JsonOpt = False) -> None:
    """Counts by state, queued by priority and queue (Postgres and broker), and live workers."""
    from jq_cli.cli.stats_view import render_stats

    with _ops() as ops:
        data = ops.stats()
    if json_out:
        print_json(data)
    else:
        render_stats(console(), data)


@app.command()
@handle_errors
def top(
    refresh: Annotated[
        float, typer.Option(min=0.1, max=60, help="Seconds between refreshes.")
    ] = 1.0,
    once: Annotated[
        bool, typer.Option("--once", help="Print one plain-text snapshot and exit.")
    ] = False,
) -> None:
    """The live dashboard: counts, rates, workers, recent jobs, dead letters (q quits, ? helps)."""
    from jq_cli.ops import Operations

    with Operations() as ops:
        if once:  # plain text, no Textual: for scripts and a quick look over ssh
            from jq_cli.errors import ServiceUnavailable
            from jq_cli.tui.plain import snapshot_text
            from jq_cli.tui.source import Filter, collect

            snap = collect(ops, Filter())
            sys.stdout.write(
                snapshot_text(
                    snap,
                    namespace=ops.settings.namespace,
                    heartbeat_interval=ops.settings.heartbeat_interval,
                )
            )
            if snap.database_error:
                raise ServiceUnavailable("PostgreSQL", ops.settings.database_url, "see above")
            return
        from jq_cli.tui.app import run

        run(ops, refresh)


@app.command()
@handle_errors
def doctor(json_out: JsonOpt = False) -> None:
    """Check PostgreSQL, RabbitMQ, Redis and the schema version."""
    from jq_cli.ops import Operations

    checks = Operations().doctor()
    if json_out:
        print_json([c.__dict__ for c in checks])
    else:
        for c in checks:
            mark = "OK  " if c.ok else "FAIL"
            print(
                f"{mark} {c.name:<10} {c.detail}"
                + (f"  -> {c.hint}" if c.hint and not c.ok else "")
            )
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@db_app.command("migrate")
@handle_errors
def db_migrate(json_out: JsonOpt = False) -> None:
    """Create the database if needed and apply pending migrations (safe to run twice)."""
    from jq_cli.ops import Operations

    created, applied, version = Operations().migrate()
    if json_out:
        print_json({"database_created": created, "applied": applied, "version": version})
        return
    if created:
        print("created the database")
    for name in applied:
        print(f"applied {name}")
    print(f"schema at version {version}" + ("" if applied else " (nothing to apply)"))


@db_app.command("status")
@handle_errors
def db_status(json_out: JsonOpt = False) -> None:
    """The schema version applied and the one this jq needs."""
    from jq_cli.ops import Operations

    have, want = Operations().schema_status()
    if json_out:
        print_json({"version": have, "latest": want, "up_to_date": have >= want})
    else:
        print(
            f"schema version {have} of {want}" + ("" if have >= want else ": run `jq db migrate`")
        )
    if have < want:
        raise typer.Exit(1)


@help_app.command("exit-codes")
def help_exit_codes(json_out: JsonOpt = False) -> None:
    """The exit codes of every jq command."""
    from jq_cli.errors import EXIT_CODES

    if json_out:
        print_json({str(code): meaning for code, meaning in EXIT_CODES.items()})
        return
    for code, meaning in EXIT_CODES.items():
        print(f"{code}  {meaning}")


# -- daemons ------------------------------------------------------------------------------------


@app.command()
@handle_errors
def worker(
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues to consume.")] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=1024, help="Handler threads.")
    ] = None,
    prefetch: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Unacknowledged deliveries held.")
    ] = None,
    import_: Annotated[
        list[str] | None,
        typer.Option("--import", help="Module of handlers to load (repeatable)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Worker name (default host:pid:random).")] = None,
    config: ConfigOpt = None,
    log_format: LogFormatOpt = "text",
    metrics_port: MetricsPortOpt = None,
    pool: Annotated[
        str,
        typer.Option(
            help="Where sync handlers run: thread, or process (time limits and cancels kill the job's process)."
        ),
    ] = "thread",
) -> None:
    """Run a worker until SIGTERM/SIGINT (then drain, hand back, exit 0). SIGHUP re-reads the settings."""
    from jq_cli.cli.daemon import run_worker

    raise typer.Exit(
        run_worker(
            queues=queues,
            concurrency=concurrency,
            prefetch=prefetch,
            imports=import_ or [],
            name=name,
            config=config,
            log_format=log_format,
            metrics_port=metrics_port,
            pool=_pool_choice(pool),
        )
    )


def _pool_choice(pool: str) -> str:
    from jq_cli.errors import InvalidInput

    if pool not in ("thread", "process"):
        raise InvalidInput(f"--pool must be thread or process, got {pool!r}")
    return pool


@app.command()
@handle_errors
def scheduler(
    config: ConfigOpt = None, log_format: LogFormatOpt = "text", metrics_port: MetricsPortOpt = None
) -> None:
    """Run the scheduler: cron schedules, delayed and retrying jobs, lease rescue, lost-message sweeps, retention."""
    from jq_cli.cli.daemon import run_scheduler

    raise typer.Exit(run_scheduler(config=config, log_format=log_format, metrics_port=metrics_port))


@app.command()
@handle_errors
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default 127.0.0.1; others need an API key)."),
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Serve the HTTP API (the `http` extra): the same operations as these commands, as JSON."""
    import importlib.util

    if not all(importlib.util.find_spec(m) for m in ("fastapi", "uvicorn")):
        fail("jq serve needs the http extra: pip install 'jq-cli[http]'", 2)
    from jq_cli.http.serve import serve as run_serve

    raise typer.Exit(run_serve(host, port))


@app.command()
@handle_errors
def demo(
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 120.0,
) -> None:
    """Start a worker and a scheduler, submit sample jobs of every type and priority, follow them."""
    from jq_cli.cli.demo import run_demo

    raise typer.Exit(run_demo(timeout=timeout))


def main() -> None:
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
