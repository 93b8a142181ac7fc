"""Live workers from their Redis heartbeats; a stale heartbeat is marked."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from jq_cli.tui.plain import BEAT_COLUMN, WORKER_COLUMNS, is_stale, worker_cells
from jq_cli.tui.widgets.row_table import RowTable

NAME_WIDTH = 16  # a long host name gives way in the middle, so the other key columns stay seen


class WorkersPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Static("loading…", classes="note")
        yield RowTable(WORKER_COLUMNS, id="workers-table")

    def on_mount(self) -> None:
        self.border_title = "workers"

    def show(
        self, workers: list[dict] | None, error: str | None, heartbeat_interval: float
    ) -> None:
        note = self.query_one(".note", Static)
        table = self.query_one(RowTable)
        if workers is None:
            note.update(
                Text.assemble(("telemetry unavailable\n", "bold yellow"), (error or "", "dim"))
            )
        elif not workers:
            note.update(Text("no live workers", "dim"))
        note.display = not workers
        table.display = workers is not None and bool(workers)
        rows = []
        for w in sorted(workers or [], key=lambda w: w["name"]):
            cells: list = list(worker_cells(w, heartbeat_interval))
            name = cells[0]
            if len(name) > NAME_WIDTH:  # host:pid:id keeps its head and its unique tail
                cells[0] = name[: NAME_WIDTH // 2 - 1] + "…" + name[-(NAME_WIDTH // 2) :]
            if is_stale(w, heartbeat_interval):
                cells[BEAT_COLUMN] = Text(cells[BEAT_COLUMN], "bold red")
            rows.append((w["name"], cells))
        table.replace_rows(rows)
        stale = sum(is_stale(w, heartbeat_interval) for w in workers or [])
        self.border_subtitle = (
            ""
            if workers is None
            else f"{len(workers)} alive" + (f", {stale} stale" if stale else "")
        )
