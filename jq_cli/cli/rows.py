"""Listings in every output format: `-o table|wide|json|jsonl|name` (`--json` is short for json).

On a terminal, table and wide are Rich tables; when stdout is not a terminal they become plain
tab-separated lines with a header, exact ISO timestamps and no colour, so that scripts can cut,
sort and join them. Rich honours NO_COLOR by itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import typer

from jq_cli.cli.output import age, console, print_json, state_text


class Format(str, Enum):
    table = "table"
    wide = "wide"
    json = "json"
    jsonl = "jsonl"
    name = "name"


OutputOpt = Annotated[
    Format | None,
    typer.Option(
        "--output", "-o", help="table, wide, json, jsonl, or name (the ids alone, one a line)."
    ),
]


class View(str, Enum):
    table = "table"
    json = "json"


ViewOpt = Annotated[
    View | None,
    typer.Option("--output", "-o", help="table (the default) or json (exactly one document)."),
]


def resolve_view(output: View | None, json_out: bool) -> bool:
    """True when a one-object view (`jq show`, `jq stats`) is to print JSON."""
    if json_out and output is View.table:
        from jq_cli.errors import InvalidInput

        raise InvalidInput("--json and -o table disagree: give one of them")
    return json_out or output is View.json


def resolve(output: Format | None, json_out: bool) -> Format:
    if json_out and output not in (None, Format.json):
        from jq_cli.errors import InvalidInput

        raise InvalidInput(f"--json and -o {output.value} disagree: give one of them")
    return Format.json if json_out else (output or Format.table)


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[dict[str, Any]], Any]
    kind: str = "text"  # text | time | state | number
    wide: bool = False  # shown by -o wide only
    width: int | None = None  # a cap on a terminal; plain output is never cut
    keep: bool = False  # a name the table must show whole, however narrow the terminal


def _cell(column: Column, row: dict[str, Any], plain: bool) -> str:
    """The cell as text; on a terminal, markup only where we put it (the state's colour)."""
    value = column.value(row)
    if value is None:
        return "-"
    if column.kind == "time" and isinstance(value, datetime):
        return value.isoformat() if plain else age(value)
    if column.kind == "state" and not plain:
        return state_text(str(value))
    text = str(value)
    if plain:
        return text.replace("\t", " ").replace("\n", " ")
    return (
        text
        if column.width is None or len(text) <= column.width
        else text[: column.width - 1] + "…"
    )


def emit(
    rows: list[dict[str, Any]],
    columns: list[Column],
    fmt: Format,
    *,
    key: str = "id",
    title: str | None = None,
) -> None:
    """Print `rows` in `fmt`. An empty list prints nothing but the header (and exits 0)."""
    if fmt is Format.json:
        print_json(rows)
        return
    if fmt is Format.jsonl:
        from jq_cli.cli.output import json_default

        for row in rows:
            sys.stdout.write(json.dumps(row, default=json_default, ensure_ascii=False) + "\n")
        return
    if fmt is Format.name:
        for row in rows:
            sys.stdout.write(f"{row[key]}\n")
        return
    shown = [c for c in columns if fmt is Format.wide or not c.wide]
    if not sys.stdout.isatty():
        sys.stdout.write("\t".join(c.header for c in shown) + "\n")
        for row in rows:
            sys.stdout.write("\t".join(_cell(c, row, plain=True) for c in shown) + "\n")
        return
    from rich.table import Table
    from rich.text import Text  # an error text holding "[/b]" is text, not Rich markup

    cells = [
        [
            Text.from_markup(_cell(c, row, plain=False))
            if c.kind == "state"
            else Text(_cell(c, row, plain=False))
            for c in shown
        ]
        for row in rows
    ]
    table = Table(title=title, header_style="bold")
    for i, c in enumerate(shown):
        # Ids, states and names (type, queue) are never cut: a narrow terminal squeezes the
        # free text (errors) and the times instead. A cut name is a wrong name.
        whole = c.keep or c.kind in ("number", "state")
        table.add_column(
            c.header,
            no_wrap=whole or c.kind != "text",
            overflow="ellipsis",
            justify="right" if c.kind == "number" else "left",
            min_width=max([len(c.header), *(r[i].cell_len for r in cells)]) if whole else None,
        )
    for r in cells:
        table.add_row(*r)
    console().print(table)


def _progress(job: dict[str, Any]) -> str | None:
    # A job back in the queue has no progress yet, whatever its last attempt reported.
    if job.get("progress") is None or job["state"] in (
        "queued",
        "scheduled",
        "retrying",
        "waiting",
    ):
        return None
    return f"{job['progress']:.0f}%"


def _error(job: dict[str, Any]) -> str | None:
    return job.get("last_error") if job["state"] in ("dead", "retrying", "cancelled") else None


JOB_COLUMNS = [
    Column("ID", lambda j: j["id"], "number"),
    Column("TYPE", lambda j: j["job_type"], keep=True),
    Column("QUEUE", lambda j: j["queue"], keep=True),
    Column("PRIORITY", lambda j: j["priority"], keep=True),
    Column("STATE", lambda j: j["state"], "state"),
    Column("ATTEMPTS", lambda j: f"{j['attempts']}/{j['max_retries'] + 1}", "number"),
    Column("PROGRESS", _progress, "number"),
    Column("CREATED", lambda j: j["created_at"], "time"),
    Column("RUN AT", lambda j: j.get("run_at"), "time", wide=True),
    Column("STARTED", lambda j: j.get("started_at"), "time", wide=True),
    Column("FINISHED", lambda j: j.get("finished_at"), "time", wide=True),
    Column("WORKER", lambda j: j.get("worker"), wide=True),
    Column("ERROR", _error, width=60),
]

SCHEDULE_COLUMNS = [
    Column("NAME", lambda s: s["name"], keep=True),
    Column("TYPE", lambda s: s["job_type"], keep=True),
    Column("CRON", lambda s: s["cron"]),
    Column("TIMEZONE", lambda s: s["timezone"]),
    Column("STATUS", lambda s: "enabled" if s["enabled"] else "paused"),
    Column("MISFIRE", lambda s: s["misfire"]),
    Column("LAST FIRE", lambda s: s.get("last_fire_at"), "time"),
    Column("NEXT FIRE", lambda s: s.get("next_fire_at") if s["enabled"] else None, "time"),
    Column("PRIORITY", lambda s: s["priority"], wide=True),
    Column("QUEUE", lambda s: s["queue"], wide=True, keep=True),
    Column("MAX RETRIES", lambda s: s.get("max_retries"), "number", wide=True),
    Column("PAYLOAD", lambda s: json.dumps(s.get("payload") or {}, ensure_ascii=False), wide=True),
]
