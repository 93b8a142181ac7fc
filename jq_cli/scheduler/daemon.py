"""The `jq scheduler` daemon: it holds the duties, runs them in order while it leads, and owns
the loop, reloads and the clean stop.

The owner of time (docs/design.md, Daemons): it fires cron schedules (cron.py), publishes delayed
and retrying jobs when due (promote.py), rescues jobs whose worker lost its lease (rescue.py),
prunes old finished jobs (prune.py), re-publishes queued jobs whose message went missing
(sweep.py) and sets the Prometheus gauges (gauges.py), each a duty with a run_once() that returns
what it did. Several schedulers may run; one leads (leadership.py), and the doorbell (doorbell.py)
runs beside every one of them, leader or not.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jq_cli.broker import Publisher
from jq_cli.config import Settings
from jq_cli.errors import (
    BrokerUnavailable,
    Conflict,
    JqError,
    SchemaNotMigrated,
    ServiceUnavailable,
    StoreError,
)
from jq_cli.observe import sdnotify
from jq_cli.redaction import mask_url
from jq_cli.scheduler.census import WorkerCensus
from jq_cli.scheduler.cron import CronFirer
from jq_cli.scheduler.doorbell import Doorbell
from jq_cli.scheduler.gauges import GAUGE_EVERY, Gauges
from jq_cli.scheduler.leadership import Leadership
from jq_cli.scheduler.promote import Promoter
from jq_cli.scheduler.prune import Pruner, backlog_left
from jq_cli.scheduler.rescue import Rescuer
from jq_cli.scheduler.sweep import Sweeper
from jq_cli.store import Store, hostname

if TYPE_CHECKING:
    from jq_cli.observe.metrics import DaemonMetrics

log = logging.getLogger("jq.scheduler")
PRUNE_EVERY = 60.0  # seconds between prunes once the backlog is gone
BACKOFF_MAX = 5.0  # seconds between passes at most while a service is away

# Settings a reload cannot change in a running scheduler: its connections were made with them.
FIXED_ON_RELOAD = ("database_url", "rabbitmq_url", "redis_url", "namespace")


class Scheduler:
    """The duties are objects built from the store, the publisher, the worker census and the
    settings; the connections are made here unless given (tests give stand-ins). `clock` is
    monotonic seconds, for the lease and the cadence of the periodic duties."""

    def __init__(
        self,
        settings: Settings,
        name: str | None = None,
        reload_settings: Callable[[], Settings] | None = None,
        *,
        store: Store | None = None,
        publisher: Publisher | None = None,
        census: WorkerCensus | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._reload_settings = reload_settings
        self.reload_requested = threading.Event()
        self.stopping = threading.Event()
        self.name = name or f"{hostname()}:{os.getpid()}"
        if store is None:
            store = Store(
                settings.database_url,
                settings.namespace,
                application_name=f"jq-scheduler {self.name}",
                # A statement with no answer for two leases is abandoned: by then a standby leads,
                # and this scheduler must find out rather than wait on a route that may never
                # come back.
                timeouts=settings.db_timeouts(deadline=2 * settings.leader_lease),
            )
        self.store = store
        self.publisher = (
            Publisher(settings.rabbitmq_url, settings.namespace) if publisher is None else publisher
        )
        self.census = (
            WorkerCensus(settings.redis_url, settings.namespace) if census is None else census
        )
        self.clock = clock
        self.leadership = Leadership(self.store, self.name, settings.leader_lease, clock)
        self._metrics: DaemonMetrics | None = None
        self.gauges: Gauges | None = None
        self._next_prune = 0.0
        self._next_sweep = 0.0
        self._next_gauges = 0.0
        self._down_since: float | None = None
        self._compose(settings)

    def _compose(self, settings: Settings) -> None:
        """Build the duties from `settings`. They keep no state between passes, so a reload
        builds them again and its settings reach every duty at the next pass."""
        self.cron = CronFirer(
            self.store, self.publisher, settings.misfire_grace, settings.default_max_retries
        )
        self.promoter = Promoter(self.store, self.publisher)
        self.rescuer = Rescuer(self.store, self.publisher)
        self.pruner = Pruner.from_settings(self.store, settings)
        self.sweeper = Sweeper(
            self.store,
            self.publisher,
            self.census,
            settings.republish_after,
            settings.worker_prefetch,
        )
        self.leadership.lease = settings.leader_lease

    @property
    def metrics(self) -> DaemonMetrics | None:
        """Set by `jq scheduler --metrics-port`: the leader then keeps the gauges too."""
        return self._metrics

    @metrics.setter
    def metrics(self, metrics: DaemonMetrics | None) -> None:
        self._metrics = metrics
        self.gauges = None if metrics is None else Gauges(self.store, self.census, metrics)

    @property
    def leader(self) -> bool:
        return self.leadership.leader

    # -- one pass -----------------------------------------------------------------------------

    def run_once(self) -> dict[str, Any]:
        """Campaign, and if this scheduler leads, run every duty that is due. Returns what each
        did, by key. A duty that raises ends the pass (the loop decides what follows)."""
        try:
            leads = self.leadership.campaign()
            if self._metrics is not None:
                self._metrics.leader.set(1 if leads else 0)
            if not leads:
                return {"leader": False}
            return self._run_duties()
        except JqError:
            # The lease may run out while the database is away: lead again only after renewing it.
            self.leadership.drop()
            raise

    def _run_duties(self) -> dict[str, Any]:
        # The lease is checked before each duty, so a pass that stalls past it stops at once.
        leading = self.leadership.leading
        report: dict[str, Any] = {"leader": True}
        started = self.clock()
        every_pass: tuple[tuple[str, Callable[[], Any]], ...] = (
            ("fired", self.cron.run_once),
            ("promoted", self.promoter.run_once),
            ("rescued", self.rescuer.run_once),
        )
        for key, duty in every_pass:
            if not leading():
                return {**report, "leader": False}
            report[key] = duty()
        now = self.clock()
        if now >= self._next_prune and leading():
            report["pruned"] = pruned = self.pruner.run_once()
            # A full last batch means more is waiting: go on next pass instead of in a minute.
            self._next_prune = now + (0.0 if backlog_left(pruned) else PRUNE_EVERY)
        if now >= self._next_sweep and leading():
            try:
                report["republished"] = self.sweeper.run_once()
            except BrokerUnavailable:
                report["republished"] = 0  # the broker is away: nothing to compare with yet
            self._next_sweep = now + max(1.0, self.settings.republish_after / 3)
        if self.gauges is not None and now >= self._next_gauges and leading():
            self.gauges.run_once()
            self._next_gauges = now + GAUGE_EVERY
        report["pass_seconds"] = round(self.clock() - started, 4)
        if not leading():
            report["leader"] = False
        return report

    # -- the loop -----------------------------------------------------------------------------

    def step(self, delay: float) -> float:
        """One turn of the loop: the reload asked for, if any, then a pass. Returns the seconds
        to wait before the next turn: the interval, or twice `delay` (up to BACKOFF_MAX) while a
        service is away. Raises SchemaNotMigrated, StoreError and Conflict: a statement PostgreSQL
        refuses is refused again on every pass, so the daemon stops with the error."""
        if self.reload_requested.is_set():
            self._reload()
        try:
            was_leader = self.leader
            self.run_once()
            if self.leader and not was_leader:
                sdnotify.notify("STATUS=leading")
            self._note(None)
            return self.settings.scheduler_interval
        except (SchemaNotMigrated, StoreError, Conflict):
            raise
        except JqError as exc:
            # Without the database the lease cannot be shown: campaign again after reconnecting.
            self.leadership.drop()
            self._note(exc)
            return min(delay * 2, BACKOFF_MAX)

    def run(self) -> int:
        if self._reachable():
            self.store.require_schema()
        log.info(
            "event=scheduler_started scheduler=%s interval=%ss",
            self.name,
            self.settings.scheduler_interval,
        )
        sdnotify.notify("READY=1", "STATUS=waiting for leadership")
        # Every scheduler rings the doorbell for jobs committed in applications' own transactions
        # (docs/design.md, Invariant 7); the outbox drain keeps two of them from both publishing.
        doorbell = Doorbell.from_settings(self.settings, self.name)
        doorbell.start()
        try:  # the doorbell stops however the loop ends
            delay = self.settings.scheduler_interval
            while not self.stopping.is_set():
                delay = self.step(delay)
                sdnotify.notify(watchdog=True)
                self.stopping.wait(delay)
            sdnotify.notify("STOPPING=1")
        finally:
            doorbell.stop()
        with contextlib.suppress(JqError):
            self.leadership.release()
        self.close()
        log.info("event=scheduler_stopped scheduler=%s", self.name)
        return 0

    def close(self) -> None:
        """Close the connections for good."""
        self.store.shutdown()
        self.publisher.close()
        self.census.close()

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
        self._compose(fresh)
        log.info(
            "event=settings_reloaded log_level=%s interval=%ss restart_needed_for=%s",
            fresh.log_level,
            fresh.scheduler_interval,
            ",".join(changed) or "nothing",
        )

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
