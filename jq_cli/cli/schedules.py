"""`jq schedule ...`: cron schedules from the shell (parsing and output only; jq_cli.client does the work)."""

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
    read_payload,
)
from jq_cli.cli.output import console, handle_errors, print_fields, print_json, state_text
from jq_cli.cli.rows import OutputOpt
from jq_cli.model.words import plural

if TYPE_CHECKING:
    from jq_cli.client import Client

schedule_app = typer.Typer(
    help="Cron schedules: recurring jobs that fire once per tick.", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name.")]
PriorityOpt = Annotated[str | None, typer.Option(help="high, medium or low.")]
RetriesOpt = Annotated[
    int | None, typer.Option(help="Retries after the first attempt of each job.")
]
QueueOpt = Annotated[str | None, typer.Option(help="The queue its jobs go to.")]
ZoneOpt = Annotated[
    str | None, typer.Option(help="IANA time zone of the expression, e.g. Europe/Berlin.")
]
MisfireOpt = Annotated[
    str | None,
    typer.Option(help="After downtime: once (one job for the missed ticks) or skip (none)."),
]


def _payload(value: str | None) -> dict[str, Any] | None:
    # No --payload means "unchanged" (edit) or the default (add), not an empty payload.
    return None if value is None else read_payload(value)


def _when(value: Any) -> str:
    from jq_cli.cli.output import age

    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S%z} ({age(value)})"


def _local(value: Any, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return f"{value.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M:%S %Z}"


def _print_schedule(schedule: dict[str, Any], json_out: bool, verb: str) -> None:
    if json_out:
        print_json(schedule)
    else:
        print(
            f"{verb} schedule {schedule['name']}: next fire {_when(schedule['next_fire_at'])}"
            if schedule["enabled"]
            else f"{verb} schedule {schedule['name']} (paused)"
        )


def _print_changed(ops: "Client", name: str, json_out: bool, verb: str) -> None:
    """After add and edit: the next three fire times, so that an expression that does not mean
    what was meant shows at once (and a warning for seconds written first)."""
    from jq_cli.model.cron import seconds_hint

    s = ops.schedule_get(name, next_n=3)
    s.pop("recent_jobs", None)
    if json_out:
        print_json(s)
        return
    hint = seconds_hint(s["cron"])
    if hint:
        sys.stderr.write(f"jq: warning: {hint}\n")
    paused = "" if s["enabled"] else " (paused; if resumed now)"
    print(f"{verb} schedule {s['name']}: {s['cron']} in {s['timezone']}; next fire times{paused}:")
    for when in s["next_fire_times"]:
        utc = "" if s["timezone"] == "UTC" else f"  ({when:%Y-%m-%d %H:%M:%S} UTC)"
        print(f"  {_local(when, s['timezone'])}{utc}")


@schedule_app.command("add")
@handle_errors
def add(
    name: NameArg,
    job_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="The job type each tick submits.")
    ],
    cron: Annotated[
        str,
        typer.Option(
            "--cron",
            help='Cron expression, e.g. "0 9 * * *"; a 6th field, last, is the seconds '
            '("* * * * * */10": every ten seconds).',
        ),
    ],
    payload: PayloadOpt = None,
    priority: PriorityOpt = None,
    max_retries: RetriesOpt = None,
    queue: QueueOpt = None,
    timezone: ZoneOpt = None,
    misfire: MisfireOpt = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Add a schedule. Validates the expression, zone, type and payload; writes nothing if one is bad."""
    given = {"priority": priority, "queue": queue, "timezone": timezone, "misfire": misfire}
    with operations() as ops:
        schedule = ops.schedule_add(
            name,
            job_type,
            cron,
            payload=_payload(payload),
            max_retries=max_retries,
            enabled=not paused,
            **{k: v for k, v in given.items() if v is not None},
        )
        _print_changed(ops, schedule["name"], json_out, "added")


@schedule_app.command("list")
@handle_errors
def list_(output: OutputOpt = None, json_out: JsonOpt = False) -> None:
    """Every schedule: expression, zone, enabled or paused, last fire, next fire."""
    from jq_cli.cli.rows import SCHEDULE_COLUMNS, emit, resolve

    fmt = resolve(output, json_out)
    with operations() as ops:
        schedules = ops.schedule_list()
    emit(schedules, SCHEDULE_COLUMNS, fmt, key="name")


@schedule_app.command("show")
@handle_errors
def show(
    name: NameArg,
    next_n: Annotated[
        int, typer.Option("--next", help="How many upcoming fire times to show.")
    ] = 5,
    json_out: JsonOpt = False,
) -> None:
    """A schedule, its next fire times and the jobs it created most recently."""
    import json

    from rich.table import Table

    with operations() as ops:
        s = ops.schedule_get(name, next_n=next_n)
    if json_out:
        print_json(s)
        return
    out = console()
    print_fields(
        out,
        (
            ("name", s["name"]),
            ("type", s["job_type"]),
            ("cron", s["cron"]),
            ("timezone", s["timezone"]),
            ("status", "enabled" if s["enabled"] else "paused"),
            ("misfire", s["misfire"]),
            ("queue", s["queue"]),
            ("priority", s["priority"]),
            ("max retries", "default" if s["max_retries"] is None else str(s["max_retries"])),
            ("payload", json.dumps(s["payload"], ensure_ascii=False)),
            ("last fire", _when(s["last_fire_at"])),
        ),
    )
    if s["next_fire_times"]:
        out.print("[bold]next fire times[/]" + ("" if s["enabled"] else " (if resumed now)"))
        for when in s["next_fire_times"]:
            out.print(
                f"  {_local(when, s['timezone'])}  ({when:%Y-%m-%d %H:%M:%S} UTC)", highlight=False
            )
    table = Table(title="recent jobs", header_style="bold")
    for column in ("ID", "STATE", "FIRE TIME", "CREATED"):
        table.add_column(column)
    for job in s["recent_jobs"]:
        table.add_row(
            str(job["id"]),
            state_text(job["state"]),
            "run-now" if job["fire_time"] is None else _local(job["fire_time"], s["timezone"]),
            _when(job["created_at"]),
        )
    out.print(table)


@schedule_app.command("pause")
@handle_errors
def pause(name: NameArg, json_out: JsonOpt = False) -> None:
    """Stop firing until resumed."""
    with operations() as ops:
        schedule = ops.schedule_set_enabled(name, False)
    _print_schedule(schedule, json_out, "paused")


@schedule_app.command("resume")
@handle_errors
def resume(name: NameArg, json_out: JsonOpt = False) -> None:
    """Fire again from the next tick (the ticks of the pause fire nothing)."""
    with operations() as ops:
        schedule = ops.schedule_set_enabled(name, True)
    _print_schedule(schedule, json_out, "resumed")


@schedule_app.command("rm")
@handle_errors
def rm(
    name: NameArg,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete a schedule (the jobs it created stay)."""
    with operations() as ops:
        ops.schedule_get(name, next_n=0)  # NotFound before asking
        confirm(f"delete schedule {name}?", yes)
        ops.schedule_remove(name)
    if json_out:
        print_json({"removed": name})
    else:
        print(f"removed schedule {name}")


@schedule_app.command("run-now")
@handle_errors
def run_now(name: NameArg, json_out: JsonOpt = False) -> None:
    """Submit one job from the schedule now, outside its ticks. Prints the job id."""
    with operations() as ops:
        job_id = ops.schedule_run_now(name)
    if json_out:
        print_json({"schedule": name, "id": job_id})
    else:
        print(job_id)


@schedule_app.command("edit")
@handle_errors
def edit(
    name: NameArg,
    job_type: Annotated[
        str | None, typer.Option("--type", help="The job type each tick submits.")
    ] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="A new cron expression.")] = None,
    payload: PayloadOpt = None,
    priority: PriorityOpt = None,
    max_retries: RetriesOpt = None,
    queue: QueueOpt = None,
    timezone: ZoneOpt = None,
    misfire: MisfireOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Change a schedule; a new --cron or --timezone restarts its timer from now."""
    from jq_cli.errors import InvalidInput

    changes = {
        "job_type": job_type,
        "cron": cron,
        "payload": _payload(payload),
        "priority": priority,
        "max_retries": max_retries,
        "queue": queue,
        "timezone": timezone,
        "misfire": misfire,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise InvalidInput(
            "nothing to change: give at least one option (see jq schedule edit --help)"
        )
    with operations() as ops:
        schedule = ops.schedule_edit(name, **changes)
        _print_changed(ops, schedule["name"], json_out, "edited")


@schedule_app.command("apply")
@handle_errors
def apply(
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="A .toml, .yaml or .yml file of schedules.")
    ],
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove schedules the file does not declare.")
    ] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Make the database's schedules match FILE: add, update and (with --prune) remove; a removal
    is asked first, as `jq schedule rm` asks (--yes does not ask; no terminal and no --yes:
    exit 5, nothing changed)."""
    from jq_cli.model.schedulespec import load_schedule_file

    specs = load_schedule_file(file)
    with operations() as ops:
        if prune and not dry_run:
            doomed = ops.schedule_apply(specs, prune=True, dry_run=True)["removed"]
            if doomed:
                confirm(f"delete {plural(len(doomed), 'schedule')} ({', '.join(doomed)})?", yes)
        result = ops.schedule_apply(specs, prune=prune, dry_run=dry_run)
    if json_out:
        print_json({"dry_run": dry_run, **result})
        return
    prefix = "would be " if dry_run else ""
    for key, mark in (("added", "+"), ("updated", "~"), ("removed", "-")):
        for name in result[key]:
            print(f"{mark} {name} ({prefix}{key})")
    counts = ", ".join(
        f"{len(result[k])} {k}" for k in ("added", "updated", "removed", "unchanged")
    )
    print(("dry run: " if dry_run else "") + counts)
