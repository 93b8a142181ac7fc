"""Rich rendering of `jq stats`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from jq_cli.cli.output import state_text
from jq_cli.model.words import plural


def render_stats(out: Console, data: dict[str, Any]) -> None:
    states = Table(title="jobs by state", header_style="bold")
    states.add_column("STATE")
    states.add_column("COUNT", justify="right")
    for state, n in data["by_state"].items():
        states.add_row(state_text(state), str(n))
    out.print(states)

    queued = Table(title="queued", header_style="bold")
    queued.add_column("QUEUE")
    queued.add_column("POSTGRES", justify="right")
    queued.add_column("BROKER READY", justify="right")
    for queue, q in sorted(data["queues"].items()):
        ready = "?" if q["broker_ready"] is None else str(q["broker_ready"])
        queued.add_row(queue + (" (paused)" if q.get("paused") else ""), str(q["queued"]), ready)
    out.print(queued)
    out.print(
        "queued by priority: "
        + ", ".join(f"{p} {n}" for p, n in data["queued_by_priority"].items())
    )
    if data.get("limited"):
        waiting = plural(data["limited"], "job waits", "jobs wait")
        out.print(f"limited: {waiting} for a concurrency or rate limit")
    if data["broker_error"]:
        out.print(f"[yellow]broker: {data['broker_error']}[/]")

    if data["workers"] is None:
        out.print(f"[yellow]workers: telemetry unavailable ({data['telemetry_error']})[/]")
        return
    workers = Table(title=f"workers ({len(data['workers'])} alive)", header_style="bold")
    for column in ("NAME", "QUEUES", "RUNNING", "PROCESSED", "FAILED", "HEARTBEAT", "JOBS"):
        workers.add_column(column)
    for w in data["workers"]:
        workers.add_row(
            Text(w["name"]),
            ",".join(w["queues"]),
            f"{w['running']}/{w['concurrency']}",
            str(w["processed"]),
            str(w["failed"]),
            f"{w['heartbeat_age']}s ago" + (" draining" if w.get("draining") else ""),
            ",".join(str(j) for j in w["jobs"][:5]),
        )
    out.print(workers)
