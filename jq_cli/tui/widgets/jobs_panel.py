"""Recent jobs, newest first, narrowed by the filter typed after `/`."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static

from jq_cli.tui.plain import JOB_COLUMNS, job_cells
from jq_cli.tui.source import Filter
from jq_cli.tui.widgets.counts_panel import STATE_STYLES
from jq_cli.tui.widgets.row_table import Cell, RowTable


class FilterInput(Input):
    """Where `/` puts the cursor: `state:dead type:send_email priority:high queue:q`, or an id or type."""


class JobsPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield FilterInput(
            placeholder="filter: state:dead type:T priority:high queue:Q, or an id or type "
            "(Enter applies, Escape closes)",
            id="filter-input",
        )
        yield Static("", classes="note")
        yield RowTable(JOB_COLUMNS, id="jobs-table")

    def on_mount(self) -> None:
        self.show_filter(Filter())

    def show_filter(self, flt: Filter) -> None:
        self.border_title = "recent jobs" + (f" · {flt.describe()}" if not flt.empty else "")

    def show(self, jobs: list[dict], error: str | None, now: datetime, flt: Filter) -> None:
        note = self.query_one(".note", Static)
        table = self.query_one(RowTable)
        if error or not jobs:
            note.update(
                Text(error, "yellow")
                if error
                else Text(
                    "no jobs match " + flt.describe() if not flt.empty else "no jobs yet", "dim"
                )
            )
        note.display = bool(error or not jobs)
        rows: list[tuple[str, list[Cell]]] = []
        for job in jobs:
            plain = job_cells(job, now)
            cells: list[Cell] = list(plain)
            cells[3] = Text(plain[3], STATE_STYLES.get(job["state"], ""))
            rows.append((str(job["id"]), cells))
        table.replace_rows(rows)
        self.border_subtitle = f"{len(jobs)} shown"
