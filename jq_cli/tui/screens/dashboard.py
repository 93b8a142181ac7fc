"""The main screen: summary on top, recent jobs in the middle, workers and dead letters below."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Input

from jq_cli.tui.source import RATE_SECONDS, Snapshot
from jq_cli.tui.widgets.counts_panel import CountsPanel
from jq_cli.tui.widgets.dead_letters_panel import DeadLettersPanel
from jq_cli.tui.widgets.jobs_panel import FilterInput, JobsPanel
from jq_cli.tui.widgets.rates_panel import RatesPanel
from jq_cli.tui.widgets.row_table import RowTable
from jq_cli.tui.widgets.status_bar import StatusBar
from jq_cli.tui.widgets.workers_panel import WorkersPanel

if TYPE_CHECKING:
    from jq_cli.tui.app import TopApp


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("slash", "open_filter", "Filter"),
        Binding("tab", "app.focus_next", "Panel"),
        Binding("shift+tab", "app.focus_previous", "Panel", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, namespace: str, interval: float, heartbeat_interval: float) -> None:
        super().__init__()
        self.namespace, self.interval, self.heartbeat_interval = (
            namespace,
            interval,
            heartbeat_interval,
        )

    @property
    def top(self) -> TopApp:
        """The app this screen belongs to, typed (Screen.app is any App)."""
        return cast("TopApp", self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar(self.namespace, self.interval, id="status")
        with Horizontal(id="summary"):
            yield CountsPanel(id="counts", classes="box")
            yield RatesPanel(RATE_SECONDS, id="rates", classes="box")
        yield JobsPanel(id="jobs", classes="box panel")
        with Horizontal(id="lower"):
            yield WorkersPanel(id="workers", classes="box panel")
            yield DeadLettersPanel(id="dead", classes="box panel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#jobs-table").focus()
        self.top.start_refreshing()

    def show(self, snap: Snapshot) -> None:
        self.query_one(StatusBar).show(snap)
        if snap.database_error:
            return  # keep the last data on screen; the status bar says why it is not moving
        now = snap.taken_at
        stats = snap.stats or {}
        self.query_one(CountsPanel).show(stats)
        self.query_one(RatesPanel).show(
            snap.rates, None if snap.rates is not None else snap.rates_error
        )
        self.query_one(JobsPanel).show(snap.jobs, snap.jobs_error, now, snap.filter)
        self.query_one(WorkersPanel).show(
            snap.workers, snap.telemetry_error, self.heartbeat_interval
        )
        total = stats.get("by_state", {}).get("dead") if stats else None
        self.query_one(DeadLettersPanel).show(snap.dead, snap.dead_error, total, now)

    def selected_table(self) -> RowTable:
        """The focused job table, or the recent jobs when the focus is elsewhere."""
        focused = self.focused
        if isinstance(focused, RowTable) and focused.id in ("jobs-table", "dead-table"):
            return focused
        return self.query_one("#jobs-table", RowTable)

    def action_open_filter(self) -> None:
        box = self.query_one(FilterInput)
        box.display = True
        box.value = self.top.filter.describe()
        box.focus()

    def _close_filter(self) -> None:
        box = self.query_one(FilterInput)
        box.display = False
        self.query_one("#jobs-table").focus()

    def action_back(self) -> None:
        if self.query_one(FilterInput).display:
            self._close_filter()
        elif not self.top.filter.empty:
            self.top.set_filter("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.top.set_filter(event.value):
            self._close_filter()

    def on_data_table_row_selected(self, event: RowTable.RowSelected) -> None:
        if event.data_table.id in ("jobs-table", "dead-table"):
            self.top.open_job(int(str(event.row_key.value)))
