"""The long-running commands: `jq worker`, `scheduler`, `serve` and the `top` dashboard.

Only their options live here; cli/boot.py starts the worker and scheduler processes.
"""

# No `from __future__ import annotations` here: Typer reads every command's annotations on
# each run, and as strings each one is compiled and evaluated again (about 30 ms of `jq --help`).

import sys
from typing import Annotated

import typer

from jq_cli.cli.options import operations
from jq_cli.cli.output import fail, handle_errors

ConfigOpt = Annotated[
    str | None, typer.Option(help="An env-format settings file, re-read on SIGHUP.")
]
LogFormatOpt = Annotated[str, typer.Option(help="text (journald-aware) or json.")]
MetricsPortOpt = Annotated[
    int | None, typer.Option(min=1, max=65535, help="Serve Prometheus /metrics here.")
]


@handle_errors
def top(
    refresh: Annotated[
        float, typer.Option(min=0.1, max=60, help="Seconds between refreshes.")
    ] = 1.0,
    once: Annotated[
        bool, typer.Option("--once", help="Print one plain-text snapshot and exit.")
    ] = False,
    web: Annotated[
        bool, typer.Option("--web", help="Serve this dashboard to a browser (the web extra).")
    ] = False,
    host: Annotated[
        str | None,
        typer.Option(help="With --web: address (default 127.0.0.1; others need an API key)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="With --web: port (default 8001).")
    ] = None,
) -> None:
    """The live dashboard: counts, rates, workers, recent jobs, dead letters (q quits, ? helps)."""
    if not web and (host is not None or port is not None):
        fail("--host and --port go with --web", 2)
    if web:
        if once:
            fail("--web and --once do not go together", 2)
        from jq_cli.tui.web import serve_dashboard

        raise typer.Exit(serve_dashboard(host, port, refresh))
    with operations("tui") as ops:
        if once:  # plain text, no Textual: for scripts and a quick look over ssh
            from jq_cli.errors import DatabaseUnavailable
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
                raise DatabaseUnavailable(ops.settings.database_url, "see above")
            return
        from jq_cli.tui.app import run

        run(ops, refresh)


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
    from jq_cli.cli.boot import run_worker

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


@handle_errors
def scheduler(
    config: ConfigOpt = None, log_format: LogFormatOpt = "text", metrics_port: MetricsPortOpt = None
) -> None:
    """Run the scheduler: cron schedules, delayed and retrying jobs, lease rescue, lost-message sweeps, retention."""
    from jq_cli.cli.boot import run_scheduler

    raise typer.Exit(run_scheduler(config=config, log_format=log_format, metrics_port=metrics_port))


@handle_errors
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default 127.0.0.1; others need an API key)."),
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="A Host name to answer besides loopback and the bind address (repeatable; "
            "also JQ_SERVE_ALLOWED_HOSTS, comma-separated; * for any).",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (the `http` extra): the same operations as these commands, as JSON."""
    import importlib.util

    if not all(importlib.util.find_spec(m) for m in ("fastapi", "uvicorn")):
        fail("jq serve needs the http extra: pip install 'jq-cli[http]'", 2)
    from jq_cli.http.serve import serve as run_serve

    raise typer.Exit(run_serve(host, port, allowed_host or ()))
