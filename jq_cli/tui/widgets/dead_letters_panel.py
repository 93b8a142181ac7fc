"""The dead-letter queue: dead jobs with their last error."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from jq_cli.tui.plain import DEAD_COLUMNS, dead_cells
from jq_cli.tui.widgets.row_table import RowTable


class DeadLettersPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Static("loading…", classes="note")
        yield RowTable(DEAD_COLUMNS, id="dead-table")

    def on_mount(self) -> None:
        self.border_title = "dead letters"

    def show(self, dead: list[dict], error: str | None, total: int | None, now: datetime) -> None:
        note = self.query_one(".note", Static)
        note.update(Text(error, "yellow") if error else Text("no dead jobs", "dim"))
        note.display = bool(error or not dead)
        rows = []
        for job in dead:
            cells: list = list(dead_cells(job, now))
            cells[-1] = Text(cells[-1], "red")
            rows.append((str(job["id"]), cells))
        self.query_one(RowTable).replace_rows(rows)
        self.border_subtitle = "" if total is None else f"{total} dead"
