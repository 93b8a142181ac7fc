"""The `jq scheduler` daemon, the owner of time: it fires cron schedules, publishes delayed and
retrying jobs when due, rescues jobs whose worker lost its lease, re-publishes queued jobs whose
message went missing, and prunes old finished jobs (retention).

Several may run; one leads, through a lease in PostgreSQL's time (store.leader_acquire): the leader
renews it on every pass and stops leading as soon as it cannot show a live lease, a standby takes
it once it has expired. No session state is involved, so a half-open connection, a blackholed route
or a connection pooler cannot keep a dead leader in place. Each duty is a run_*() step that
returns counts, so it can be tested on its own; run() is a loop around run_once(). The duties that
publish (promote, rescue, sweep, cron) are in jq_cli.scheduler.duties; retention, the gauges, leadership and
the loop are here.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jq_cli.broker import Publisher
from jq_cli.config import Settings, mask_url
from jq_cli.errors import (
    BrokerUnavailable,
    Conflict,
    JqError,
    SchemaNotMigrated,
    ServiceUnavailable,
    StoreError,
    TelemetryUnavailable,
)
from jq_cli.model.states import PRIORITY_NAMES
from jq_cli.observe import sdnotify
from jq_cli.scheduler.duties import Duties
from jq_cli.store import Store, hostname

if TYPE_CHECKING:
    from jq_cli.observe.metrics import DaemonMetrics
    from jq_cli.observe.telemetry import Telemetry

log = logging.getLogger("jq.scheduler")
PRUNE_BATCH = 1000  # jobs deleted per statement: each batch is its own short transaction
PRUNE_BATCHES = 10  # per state per pass; a longer backlog goes on at the next pass
GAUGE_EVERY = 5.0  # seconds between queue-depth computations for Prometheus
PRUNE_EVERY = 60.0  # seconds between prunes once the backlog is gone


# Settings a reload cannot change in a running scheduler: its connections were made with them.
FIXED_ON_RELOAD = ("database_url", "rabbitmq_url", "redis_url", "namespace")


class Scheduler(Duties):
    def __init__(
        self,
        settings: Settings,
        name: str | None = None,
        reload_settings: Callable[[], Settings] | None = None,
    ) -> None:
        import os

        self.settings = settings
        self._reload_settings = reload_settings
        self.reload_requested = threading.Event()
        self.name = name or f"{hostname()}:{os.getpid()}"
        self.store = Store(
            settings.database_url,
            settings.namespace,
            application_name=f"jq-scheduler {self.name}",
            # A statement with no answer for two leases is abandoned: by then a standby leads, and
            # this scheduler must find out rather than wait on a route that may never come back.
            timeouts=settings.db_timeouts(deadline=2 * settings.leader_lease),
        )
        self.publisher = Publisher(settings.rabbitmq_url, settings.namespace)
        self.leader = False
        self._lease_until = 0.0  # monotonic time until which this scheduler's lease surely holds
        self.stopping = threading.Event()
        self._next_sweep = 0.0
        self._next_prune = 0.0
        self._next_gauges = 0.0
        self._down_since: float | None = None
        self.metrics: DaemonMetrics | None = None  # set by `jq scheduler --metrics-port`
        self._telemetry: Telemetry | None = None

    # -- duties -------------------------------------------------------------------------------

    def run_prune(self) -> dict[str, int]:
        """Delete terminal jobs older than their retention (JQ_RETENTION_*), PRUNE_BATCH rows per
        statement and at most PRUNE_BATCHES statements per state, so a large backlog is worked off over
        several passes without starving the other duties. Returns the count deleted per state."""
        s = self.settings
        counts: dict[str, int] = {}
        for state, age in (
            ("completed", s.retention_completed),
            ("dead", s.retention_dead),
            ("cancelled", s.retention_cancelled),
        ):
            if age <= 0:
                continue  # 0 keeps that state forever
            deleted = 0
            for _ in range(PRUNE_BATCHES):
                n = self.store.job_prune(state, age, PRUNE_BATCH)
                deleted += n
                if n < PRUNE_BATCH:
                    break
            if deleted:
                counts[state] = deleted
                log.info("event=jobs_pruned state=%s count=%d older_than=%ss", state, deleted, age)
        # issue 16: the audit log's own retention (JQ_AUDIT_RETENTION), in the same pass.
        if s.audit_retention > 0:
            audited = self.store.audit_prune(s.audit_retention, PRUNE_BATCH)
            if audited:
                counts["audit"] = audited
                log.info("event=audit_pruned count=%d older_than=%ss", audited, s.audit_retention)
        return counts

    def run_gauges(self) -> None:
        """Queue depth by state and priority, and workers alive, for Prometheus. Only the leader
        computes them, so that a dashboard summing over schedulers does not count twice."""
        metrics = self.metrics
        if metrics is None:
            return
        counts = self.store.job_counts()
        depth = metrics.depth
        depth.clear()
        for state, n in counts["by_state"].items():
            depth.labels(state, "all").set(n)
        for row in counts["queued"]:
            depth.labels("queued", PRIORITY_NAMES.get(row["priority"], "?")).inc(row["n"])
        try:
            if self._telemetry is None:
                from jq_cli.observe.telemetry import Telemetry

                self._telemetry = Telemetry(self.settings.redis_url, self.settings.namespace)
            metrics.workers.set(len(self._telemetry.workers()))
        except TelemetryUnavailable:
            pass  # telemetry is optional: the gauge keeps its last value

    def _campaign(self) -> bool:
        """Take or renew the lease. The lease is counted from before the statement was sent, so
        this scheduler's idea of it always ends before the database's."""
        sent = time.monotonic()
        left = self.store.leader_acquire(self.name, self.settings.leader_lease)
        if left is None:
            if self.leader:
                log.warning("event=leadership_lost scheduler=%s reason=lease_taken", self.name)
            self.leader = False
            return False
        if not self.leader:
            log.info("event=leadership_acquired scheduler=%s", self.name)
        self.leader = True
        self._lease_until = sent + left
        return True

    def _leading(self) -> bool:
        """True while the lease surely holds; checked before each duty, so a leader whose pass
        stalled past its lease stops there instead of working beside the new leader."""
        if self.leader and time.monotonic() >= self._lease_until:
            self.leader = False
            log.warning("event=leadership_lost scheduler=%s reason=lease_expired", self.name)
        return self.leader

    def run_once(self) -> dict[str, Any]:
        """One pass of every duty, if this scheduler leads. Returns what it did."""
        try:
            self._campaign()
            if self.metrics is not None:
                self.metrics.leader.set(1 if self.leader else 0)
            if not self.leader:
                return {"leader": False}
            report: dict[str, Any] = {"leader": True}
            started = time.monotonic()
            duties: list[tuple[str, Any]] = [
                ("fired", self.run_cron),
                ("promoted", self.run_promote),
                ("rescued", self.run_rescue),
            ]
            for key, duty in duties:
                if not self._leading():
                    return {**report, "leader": False}
                report[key] = duty()
            now = time.monotonic()
            if now >= self._next_prune and self._leading():
                report["pruned"] = pruned = self.run_prune()
                # A full last batch means more is waiting: go on next pass instead of in a minute.
                full = any(n >= PRUNE_BATCH * PRUNE_BATCHES for n in pruned.values())
                self._next_prune = now + (0.0 if full else PRUNE_EVERY)
            if now >= self._next_sweep and self._leading():
                try:
                    report["republished"] = self.run_sweep()
                except BrokerUnavailable:
                    report["republished"] = 0  # the broker is away: nothing to compare with yet
                self._next_sweep = now + max(1.0, self.settings.republish_after / 3)
            if self.metrics is not None and now >= self._next_gauges and self._leading():
                self.run_gauges()
                self._next_gauges = now + GAUGE_EVERY
            report["pass_seconds"] = round(time.monotonic() - started, 4)
            if not self._leading():
                report["leader"] = False
            return report
        except JqError:
            # The lease may run out while the database is away: lead again only after renewing it.
            self.leader = False
            raise

    # -- life cycle ---------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        self.stopping.set()

    def request_reload(self, *_: Any) -> None:
        self.reload_requested.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    def _reload(self) -> None:
        """SIGHUP: re-read the settings and use them from the next pass (cadences, retention,
        misfire grace, log level). Service URLs and the namespace need a restart: kept, said so."""
        self.reload_requested.clear()
        if self._reload_settings is None:
            log.info("event=reload_ignored reason=no_settings_source")
            return
        try:
            fresh = self._reload_settings()
        except JqError as exc:
            log.error("event=reload_failed error=%r kept=previous_settings", exc.message)
            return
        changed = [k for k in FIXED_ON_RELOAD if getattr(fresh, k) != getattr(self.settings, k)]
        fresh = fresh.model_copy(update={k: getattr(self.settings, k) for k in changed})
        logging.getLogger().setLevel(fresh.log_level.upper())
        self.settings = fresh
        log.info(
            "event=settings_reloaded log_level=%s interval=%ss restart_needed_for=%s",
            fresh.log_level,
            fresh.scheduler_interval,
            ",".join(changed) or "nothing",
        )

    def run(self) -> int:
        if self._reachable():
            self.store.require_schema()
        log.info(
            "event=scheduler_started scheduler=%s interval=%ss",
            self.name,
            self.settings.scheduler_interval,
        )
        sdnotify.notify("READY=1", "STATUS=waiting for leadership")
        # Issue 15: every scheduler rings the doorbell for jobs committed in applications' own
        # transactions (jq_cli.scheduler.doorbell); the outbox drain keeps two of them from both publishing.
        from jq_cli.scheduler.doorbell import Doorbell

        doorbell = Doorbell(self.settings, self.name)
        doorbell.start()
        try:  # issue 15: the doorbell stops however the loop ends
            delay = self.settings.scheduler_interval
            while not self.stopping.is_set():
                if self.reload_requested.is_set():
                    self._reload()
                try:
                    was_leader = self.leader
                    self.run_once()
                    if self.leader and not was_leader:
                        sdnotify.notify("STATUS=leading")
                    self._note(None)
                    delay = self.settings.scheduler_interval
                except (SchemaNotMigrated, StoreError, Conflict):
                    # Not an outage: a statement PostgreSQL refuses is refused again on every pass, so
                    # the daemon stops with the error (and its service manager says so).
                    raise
                except JqError as exc:
                    # Without the database the lease cannot be shown: campaign again after reconnecting.
                    self.leader = False
                    self._note(exc)
                    delay = min(delay * 2, 5.0)
                sdnotify.notify(watchdog=True)
                self.stopping.wait(delay)
            sdnotify.notify("STOPPING=1")
        finally:
            doorbell.stop()
        if self.leader:
            with contextlib.suppress(JqError):
                self.store.leader_release(self.name)
        self.store.shutdown()
        self.publisher.close()
        if self._telemetry is not None:
            self._telemetry.close()
        log.info("event=scheduler_stopped scheduler=%s", self.name)
        return 0

    def _reachable(self) -> bool:
        try:
            self.store.schema_version()
            return True
        except ServiceUnavailable as exc:
            self._note(exc)
            return False

    def _note(self, error: JqError | None) -> None:
        if error is None:
            if self._down_since is not None:
                log.info(
                    "event=service_reconnected after=%.1fs", time.monotonic() - self._down_since
                )
                self._down_since = None
            return
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "event=service_unavailable error=%r url=%s retry=backoff",
                error.message,
                mask_url(self.settings.database_url),
            )
