"""The `jq top` application: refreshes a Snapshot off the UI thread, shows it, and runs operator
actions through the operations layer, reporting each result or error as a notification."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App
from textual.binding import Binding

from jq_cli.errors import InvalidInput, JqError
from jq_cli.model.words import confirmed_notice, plural
from jq_cli.tui.messages import ActionDone, ConfirmNeeded, JobLoaded, SnapshotReady
from jq_cli.tui.screens.confirm import ConfirmScreen
from jq_cli.tui.screens.dashboard import DashboardScreen
from jq_cli.tui.screens.help import HelpScreen
from jq_cli.tui.screens.job_detail import JobDetailScreen
from jq_cli.tui.source import DashboardOps, Filter, Snapshot, collect, utc_now
from jq_cli.tui.widgets.jobs_panel import JobsPanel

if TYPE_CHECKING:
    from jq_cli.ops.actions import ActionReport

PURGEABLE = ("completed", "dead", "cancelled")
BULK_LIMIT = 10_000  # R retries at most this many dead jobs per confirmation


class TopApp(App[None]):
    CSS_PATH = "top.tcss"
    TITLE = "jq top"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("r", "retry", "Retry"),
        Binding("R", "retry_all", "Retry all", show=False),
        Binding("c", "cancel_job", "Cancel"),
        Binding("p", "purge", "Purge"),
        Binding("P", "toggle_pause", "Pause queue", show=False),
    ]

    def __init__(
        self, ops: DashboardOps, *, refresh: float = 1.0, clock: Callable[[], datetime] = utc_now
    ) -> None:
        """`ops` is used from worker threads, one call at a time; `clock` gives the time ages are
        measured against (tests freeze it)."""
        super().__init__()
        self.ops = ops
        self.interval = refresh
        self.clock = clock
        self.filter = Filter()
        self.snapshot: Snapshot | None = None
        self.snapshots = 0  # refreshes shown so far (tests wait on it)
        self.outages = 0  # times Postgres went away while the app ran
        self._ops_lock = threading.Lock()  # Client is not thread-safe
        self._fetching = False
        self._dashboard: DashboardScreen | None = None

    # -- refresh ------------------------------------------------------------------------------

    def on_mount(self) -> None:
        settings = self.ops.settings
        self._dashboard = DashboardScreen(
            settings.namespace, self.interval, settings.heartbeat_interval
        )
        self.push_screen(self._dashboard)

    def start_refreshing(self) -> None:
        """Called by the dashboard once it is mounted, so that no data arrives before its panels."""
        self.set_interval(self.interval, self.request_refresh)
        self.request_refresh()

    def request_refresh(self) -> None:
        # One refresh at a time: while Postgres is away a call can block for its connect timeout,
        # and ticks must not pile up behind it.
        if not self._fetching:
            self._fetching = True
            self._fetch(self.filter)

    @work(thread=True, group="refresh", exit_on_error=False)
    def _fetch(self, flt: Filter) -> None:
        try:
            with self._ops_lock:
                snap = collect(self.ops, flt, now=self.clock())
        except Exception as exc:  # never leave the refresh loop stuck on a bug
            snap = Snapshot(
                taken_at=self.clock(), filter=flt, database_error=f"{type(exc).__name__}: {exc}"
            )
        self.post_message(SnapshotReady(snap))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self._fetching = False
        if self._dashboard is None or not self._dashboard.is_attached:  # the app is closing
            return
        snap = message.snapshot
        if snap.database_error and (self.snapshot is None or not self.snapshot.database_error):
            self.outages += 1
            self.notify(
                snap.database_error, title="PostgreSQL unavailable, reconnecting", severity="error"
            )
        elif not snap.database_error and self.snapshot is not None and self.snapshot.database_error:
            self.notify("PostgreSQL is back", title="reconnected")
        self.snapshot = snap
        self.snapshots += 1
        self.dashboard.show(snap)
        if snap.filter != self.filter:  # the filter changed while this refresh ran
            self.request_refresh()

    @property
    def dashboard(self) -> DashboardScreen:
        if self._dashboard is None:
            raise RuntimeError("the dashboard exists once the app is mounted")
        return self._dashboard

    def set_filter(self, text: str) -> bool:
        """Apply a filter typed after `/`; False (with a notification) when it does not parse."""
        try:
            self.filter = Filter.parse(text)
        except InvalidInput as exc:
            self.notify(exc.message, severity="error")
            return False
        self.dashboard.query_one("#jobs", JobsPanel).show_filter(self.filter)
        self.request_refresh()
        return True

    # -- actions --------------------------------------------------------------------------------

    def selected_job_id(self) -> int | None:
        if isinstance(self.screen, JobDetailScreen):
            return self.screen.job_id
        if self.screen is not self.dashboard:
            return None
        key = self.dashboard.selected_table().selected_key()
        return None if key is None else int(key)

    @work(thread=True, group="action", exit_on_error=False)
    def _run(self, what: Callable[[], str]) -> None:
        """Run one action on a worker thread and report its outcome."""
        try:
            with self._ops_lock:
                self.post_message(ActionDone(what()))
        except JqError as exc:
            self.post_message(ActionDone(exc.message, ok=False))
        except Exception as exc:  # an unexpected failure is shown, not fatal to the dashboard
            self.post_message(ActionDone(f"{type(exc).__name__}: {exc}", ok=False))

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity="information" if message.ok else "error")
        if isinstance(self.screen, JobDetailScreen):
            self.open_job(self.screen.job_id)
        self.request_refresh()

    def on_confirm_needed(self, message: ConfirmNeeded) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._run(message.run)
            else:
                self.notify(f"{message.label}: not done")

        self.push_screen(ConfirmScreen(message.question), answered)

    def _one_job(self, verb: str, call: Callable[[list[int]], ActionReport]) -> None:
        job_id = self.selected_job_id()
        if job_id is None:
            self.notify(f"select a job to {verb} first", severity="warning")
            return

        def run() -> str:
            report = call([job_id])
            if report.refused:
                raise report.refused[job_id]
            return f"job {job_id}: {report.changed[job_id]}"

        self._run(run)

    def action_retry(self) -> None:
        self._one_job("retry", self.ops.retry)

    def action_cancel_job(self) -> None:
        # A cancel cannot be undone (a cancelled job is never retried by itself): it asks first,
        # as R and p do.
        job_id = self.selected_job_id()
        if job_id is None:
            self.notify("select a job to cancel first", severity="warning")
            return

        def run() -> str:
            report = self.ops.cancel([job_id])
            if report.refused:
                raise report.refused[job_id]
            return f"job {job_id}: {report.changed[job_id]}"

        self.post_message(
            ConfirmNeeded(
                f"Cancel job {job_id}? One not started never runs; a running one is asked to stop.",
                "cancel",
                run,
            )
        )

    def action_retry_all(self) -> None:
        flt = self.filter.without_id()
        self._prepare_retry_all(flt)

    @work(thread=True, group="action", exit_on_error=False)
    def _prepare_retry_all(self, flt: Filter) -> None:
        try:
            with self._ops_lock:
                ids = [
                    j["id"]
                    for j in self.ops.list_jobs(
                        state="dead",
                        job_type=flt.job_type,
                        priority=flt.priority,
                        queue=flt.queue,
                        limit=BULK_LIMIT,
                    )
                ]
        except JqError as exc:
            self.post_message(ActionDone(exc.message, ok=False))
            return
        scope = (
            " ".join(p for p in flt.describe().split() if not p.startswith("state:"))
            or "every type"
        )
        if not ids:
            self.post_message(ActionDone(f"no dead jobs to retry ({scope})"))
            return

        def run() -> str:
            report = self.ops.retry(ids)
            return f"retried {plural(len(report.changed), 'dead job')}" + (
                f", {len(report.refused)} had changed meanwhile" if report.refused else ""
            )

        more = " (the newest ones)" if len(ids) == BULK_LIMIT else ""
        self.post_message(
            ConfirmNeeded(
                f"Retry {plural(len(ids), 'dead job')}{more} ({scope})?", "retry all", run
            )
        )

    def action_purge(self) -> None:
        state = self.filter.state
        if (
            self.screen is self.dashboard
            and self.dashboard.focused is not None
            and self.dashboard.focused.id == "dead-table"
        ):
            state = "dead"
        if state not in PURGEABLE:
            self.notify(
                "purge deletes finished jobs: filter by state:completed, state:dead or state:cancelled "
                "(/), or Tab to the dead letters",
                severity="warning",
            )
            return
        # exactly what the filter shows (its type, queue, priority and id too). From
        # the dead letters panel, which no filter narrows but the type, as before.
        flt = self.filter
        if state != flt.state:
            flt = Filter(job_type=flt.job_type)
        self._prepare_purge(state, flt)

    @work(thread=True, group="action", exit_on_error=False)
    def _prepare_purge(self, state: str, flt: Filter) -> None:
        extra = [
            f"{label}:{value}"
            for label, value in (
                ("queue", flt.queue),
                ("priority", flt.priority),
                ("id", flt.job_id),
            )
            if value is not None
        ]
        scope = " ".join([state, *([flt.job_type] if flt.job_type else []), *extra])

        narrow: dict[str, Any] = {
            "job_type": flt.job_type,
            "queue": flt.queue,
            "priority": flt.priority,
            "job_id": flt.job_id,
        }
        try:
            with self._ops_lock:
                count, cutoff = self.ops.purge_count(state=state, **narrow)
        except JqError as exc:
            self.post_message(ActionDone(exc.message, ok=False))
            return
        if not count:
            self.post_message(ActionDone(f"no {scope} jobs to purge"))
            return

        def run() -> str:
            # Exactly the jobs confirmed: those counted, finished by the count's time, at most
            # that many (a job that finished since is not deleted unasked).
            deleted = self.ops.purge(state=state, finished_by=cutoff, at_most=count, **narrow)
            return confirmed_notice("deleted", deleted, count, f"{scope} job")

        self.post_message(
            ConfirmNeeded(
                f"Delete {plural(count, f'{scope} job')} and their attempts? This cannot be undone.",
                "purge",
                run,
            )
        )

    def action_toggle_pause(self) -> None:
        """Pause the queue of the filter (or of the selected job), or resume it if paused."""
        queue = self.filter.queue
        if queue is None:
            job_id = self.selected_job_id()
            shown = self.snapshot.jobs + self.snapshot.dead if self.snapshot else []
            queue = next((j["queue"] for j in shown if j["id"] == job_id), None)
        if queue is None:
            self.notify(
                "pause takes a queue: filter by queue:NAME (/) or select a job", severity="warning"
            )
            return
        stats = self.snapshot.stats if self.snapshot else None
        paused = bool(stats and stats["queues"].get(queue, {}).get("paused"))
        name: str = queue

        def run() -> str:
            if paused:
                done = self.ops.queue_resume(name)
                return f"queue {name} resumed, {plural(done['published'], 'job')} published"
            self.ops.queue_pause(name)
            return f"queue {name} paused: no worker starts its jobs until it is resumed"

        question = (
            f"Resume queue {name}?"
            if paused
            else f"Pause queue {name}? Its jobs stay queued; no worker starts one until resumed."
        )
        self.post_message(ConfirmNeeded(question, "resume" if paused else "pause", run))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # -- detail ---------------------------------------------------------------------------------

    def open_job(self, job_id: int) -> None:
        self._load_job(job_id)

    @work(thread=True, group="detail", exit_on_error=False)
    def _load_job(self, job_id: int) -> None:
        try:
            with self._ops_lock:
                self.post_message(JobLoaded(self.ops.get(job_id)))
        except JqError as exc:
            self.post_message(ActionDone(exc.message, ok=False))

    def on_job_loaded(self, message: JobLoaded) -> None:
        if isinstance(self.screen, JobDetailScreen):
            if self.screen.job_id == message.job["id"]:
                self.screen.show(message.job, self.clock())
            return
        self.push_screen(JobDetailScreen(message.job, self.clock()))


def run(ops: DashboardOps, refresh: float) -> None:
    TopApp(ops, refresh=refresh).run()
