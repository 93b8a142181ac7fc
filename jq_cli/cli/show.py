"""`jq show`: one job, its workflow's tree, its attempts and its timeline."""

# No `from __future__ import annotations` here: Typer reads every command's annotations on
# each run, and as strings each one is compiled and evaluated again (about 30 ms of `jq --help`).

from typing import Annotated, Any

import typer

from jq_cli.cli.options import JsonOpt, operations
from jq_cli.cli.output import console, handle_errors, print_json, state_text
from jq_cli.cli.rows import ViewOpt
from jq_cli.model.words import plural

TRACEBACK_LINES = 6  # of each failed attempt's traceback, `jq show` prints the last ones


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
    if job["state"] == "scheduled" and job.get("limited_by"):
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
        # Every failed attempt's traceback, folded to its last lines.
        for a in job["attempt_history"]:
            if a["traceback"]:
                lines = a["traceback"].rstrip().splitlines()
                folded = len(lines) - TRACEBACK_LINES
                out.print(
                    f"[bold]attempt {a['number']} traceback[/]"
                    + (
                        f" [dim]({plural(folded, 'line')} folded; --json has them all)[/]"
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
