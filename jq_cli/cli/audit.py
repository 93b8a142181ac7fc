"""`jq audit`: the operator actions recorded in PostgreSQL, newest first."""

# No `from __future__ import annotations` here: Typer reads every command's annotations on
# each run, and as strings each one is compiled and evaluated again (about 30 ms of `jq --help`).

import json
from typing import Annotated, Any

import typer

from jq_cli.cli.options import JsonOpt, operations
from jq_cli.cli.output import handle_errors
from jq_cli.cli.rows import Column, OutputOpt


def _who(row: dict[str, Any]) -> str:
    return f"{row['actor']}@{row['host']}" if row.get("host") else row["actor"]


def _scope(row: dict[str, Any]) -> str | None:
    parts = [row["target"]] if row.get("target") else []
    if row.get("filter"):
        parts.append(json.dumps(row["filter"], ensure_ascii=False, default=str))
    return " ".join(parts) or None


AUDIT_COLUMNS = [
    Column("ID", lambda r: r["id"], "number"),
    Column("AT", lambda r: r["at"], "time"),
    Column("BY", lambda r: r["actor_kind"]),
    Column("WHO", _who),
    Column("ACTION", lambda r: r["action"]),
    Column("JOBS", lambda r: r["jobs"], "number"),
    Column("TARGET / FILTER", _scope, width=60),
    Column(
        "DETAIL", lambda r: json.dumps(r["detail"], default=str) if r["detail"] else None, wide=True
    ),
]


@handle_errors
def audit(
    since: Annotated[
        str | None, typer.Option(help="Only actions within this duration, e.g. 1d.")
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(help="Only this action (job.purge, queue.pause...) or group (job, schedule)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    output: OutputOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Who did what and when: every retry, cancel, purge, dead-letter, schedule and queue action."""
    from jq_cli.cli.rows import emit, resolve
    from jq_cli.model.durations import parse_duration

    fmt = resolve(output, json_out)
    since_s = parse_duration(since, "since") if since else None
    with operations() as ops:
        rows = ops.audit(since=since_s, action=action, limit=limit)
    emit(rows, AUDIT_COLUMNS, fmt)
