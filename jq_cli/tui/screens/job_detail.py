"""A job's detail: fields, payload, result, and every attempt with its error and traceback."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from jq_cli.tui.plain import age, attempts, duration, short_seconds
from jq_cli.tui.widgets.counts_panel import STATE_STYLES


def _when(value: datetime | None, now: datetime) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S} ({age(value, now)} ago)"


def _json(value: Any) -> str:
    return "-" if value is None else json.dumps(value, indent=2, ensure_ascii=False, default=str)


WAITING = ("queued", "scheduled", "retrying", "waiting")


def job_renderable(job: dict[str, Any], now: datetime) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    state = Text(job["state"], STATE_STYLES.get(job["state"], ""))
    if job.get("cancel_requested") and job["state"] == "running":
        state.append(" (cancel requested)")
    # Progress belongs to an attempt: a job back in the queue has none yet; a completed job has
    # no current error (earlier failures are in the attempts below).
    progress = (
        "-"
        if job.get("progress") is None or job["state"] in WAITING
        else f"{job['progress']:.0f}%"
        + (f" {job['progress_message']}" if job.get("progress_message") else "")
    )
    error = None if job["state"] == "completed" else job.get("last_error")
    for label, value in (
        ("type", job["job_type"]),
        ("queue", job["queue"]),
        ("priority", job["priority"]),
        ("state", state),
        ("attempts", attempts(job)),
        ("progress", progress),
        ("created", _when(job.get("created_at"), now)),
        ("run at", _when(job.get("run_at"), now)),
        ("started", _when(job.get("started_at"), now)),
        ("finished", _when(job.get("finished_at"), now)),
        ("took", duration(job, now)),
        ("worker", job.get("worker") or "-"),
        ("idempotency key", job.get("idempotency_key") or "-"),
        ("payload", _json(job.get("payload"))),
        ("result", _json(job.get("result"))),
        ("last error", Text(error or "-", "red" if error else "")),
    ):
        grid.add_row(label, value)
    parts: list[RenderableType] = [grid, Text()]
    history = job.get("attempt_history") or []
    parts.append(Text(f"attempts ({len(history)})", "bold underline"))
    for a in history:
        took = (
            "-"
            if a.get("finished_at") is None
            else short_seconds((a["finished_at"] - a["started_at"]).total_seconds())
        )
        style = (
            "green"
            if a["outcome"] == "completed"
            else "red"
            if a["outcome"] in ("failed", "lost")
            else ""
        )
        parts.append(
            Text.assemble(
                f"#{a['number']} ",
                (a["outcome"], style),
                f"  {a['worker']}  started {a['started_at']:%H:%M:%S}  took {took}",
            )
        )
        if a.get("error"):
            parts.append(Text("   " + a["error"], "red"))
        if a.get("traceback"):
            parts.append(
                Text(
                    "\n".join("   " + line for line in a["traceback"].rstrip().splitlines()), "dim"
                )
            )
    return Group(*parts)


class JobDetailScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("j", "scroll(1)", "Scroll", key_display="j/k/↑↓"),
        Binding("k", "scroll(-1)", "Up", show=False),
    ]

    def __init__(self, job: dict[str, Any], now: datetime) -> None:
        super().__init__()
        self.job, self.now = job, now

    @property
    def job_id(self) -> int:
        return int(self.job["id"])

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail", classes="box"):
            yield Static(job_renderable(self.job, self.now), id="detail-body")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#detail").border_title = f"job {self.job['id']}"
        self.query_one("#detail").focus()

    def action_scroll(self, lines: int) -> None:
        self.query_one("#detail", VerticalScroll).scroll_relative(y=lines, animate=False)

    def show(self, job: dict[str, Any], now: datetime) -> None:
        self.job, self.now = job, now
        self.query_one("#detail-body", Static).update(job_renderable(job, now))
