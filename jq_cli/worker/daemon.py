"""The `jq worker` daemon: consume job ids, claim in Postgres, run handlers, record outcomes.

Threads and what each owns:
- the consumer thread owns the AMQP connection (pika is not thread-safe); it puts deliveries in
  the inbox (jq_cli.worker.handoff: all that crosses a thread goes through there);
- the dispatcher (the caller of run(), the main thread) owns the Postgres connection: it claims
  deliveries in batches through the intake (jq_cli.worker.intake), which acknowledges them once
  the claim is committed, hands jobs to the pools, records outcomes in batches (group commit),
  renews leases (jq_cli.worker.leases) and applies cancel requests (jq_cli.worker.dispatcher);
- the cancel listener thread owns a second Postgres connection, LISTENing for cancels of running
  jobs (jq_cli.worker.cancel_listener); the dispatcher applies what it hears;
- `concurrency` handler threads (jq_cli.worker.pools) run handlers through the executor
  (jq_cli.worker.executor) and report outcomes to the outbox;
- the telemetry thread sends heartbeats and counters to Redis, never blocking the others.

Worker makes each of these parts once and hands each the others it uses (constructor arguments):
no part reaches another through the Worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jq_cli.broker import Consumer, Message, Publisher
from jq_cli.config import Settings
from jq_cli.errors import Deadlock, JqError, SchemaNotMigrated, ServiceUnavailable
from jq_cli.handlers.registry import Registry
from jq_cli.model.retry import Backoff
from jq_cli.observe import sdnotify
from jq_cli.observe.telemetry import CounterBuffer, Telemetry
from jq_cli.redaction import mask_url
from jq_cli.store import Store, hostname
from jq_cli.worker.cancel_listener import CancelListener
from jq_cli.worker.claim_ahead import RunTimes
from jq_cli.worker.dispatcher import Dispatcher
from jq_cli.worker.executor import Executor
from jq_cli.worker.handoff import Inbox, Outbox, Progress, Wake
from jq_cli.worker.intake import Intake
from jq_cli.worker.outcomes import SizeCaps
from jq_cli.worker.pools import POOLS, Contexts, Pools, RunningJob

if TYPE_CHECKING:  # prometheus-client is imported only by a daemon started with --metrics-port
    from jq_cli.observe.metrics import DaemonMetrics

log = logging.getLogger("jq.worker")
__all__ = ["POOLS", "Worker"]


class Worker:
    """The daemon around the dispatcher: makes its parts and hands each the others it uses, runs
    the dispatcher's rounds on the calling thread, and owns the life cycle, signals and telemetry."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        prefetch: int | None = None,
        name: str | None = None,
        metrics: DaemonMetrics | None = None,
        reload_settings: Callable[[], Settings] | None = None,
        pool: str = "thread",
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._reload_settings = reload_settings
        # Given on the command line: wins over reloads.
        self._concurrency_fixed = concurrency is not None
        self.reload_requested = threading.Event()
        self.registry = registry
        self.queues = queues or settings.queue_names
        self.concurrency = concurrency or settings.worker_concurrency
        self.name = name or f"{hostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()  # first signal: drain
        self.forced = threading.Event()  # second signal: hand back now

        self.store = Store(
            settings.database_url, settings.namespace, application_name=f"jq-worker {self.name}"
        )
        self.publisher = Publisher(settings.rabbitmq_url, settings.namespace)
        self.telemetry = Telemetry(settings.redis_url, settings.namespace)
        self.counters = CounterBuffer()

        # What crosses threads (jq_cli.worker.handoff), then the parts on either side of it.
        self.wake = Wake()
        inbox = Inbox(self.wake)
        caps = SizeCaps(settings.max_result_bytes, settings.max_error_bytes)
        outbox = Outbox(self.wake, caps)
        progress = Progress()
        # Unclaimed deliveries wait locally; keep that buffer small so priorities stay strict.
        window = prefetch or settings.worker_prefetch or self.concurrency
        self.consumer = Consumer(
            settings.rabbitmq_url,
            settings.namespace,
            self.queues,
            window,
            inbox.put,
            inbox.drop_generation,
        )
        runtimes = RunTimes()  # measured handler run times: how far ahead to claim
        self.intake = Intake(
            inbox,
            self.consumer,
            self.store,
            runtimes,
            worker=self.name,
            lease_ttl=settings.lease_ttl,
            concurrency=self.concurrency,
            prefetch=window,
            prefetch_fixed=bool(prefetch or settings.worker_prefetch),
        )
        backoff = Backoff(
            settings.retry_base_delay, settings.retry_max_delay, settings.retry_jitter
        )
        self.executor = Executor(registry, backoff, caps, self.name)
        self.pools = Pools(
            pool,
            self.concurrency,
            self.executor,
            Contexts(settings, progress.put, caps.max_error_bytes),
            outbox.report,
            progress.put,
        )
        self.cancel_listener = CancelListener(settings, self.name, self.wake.event)
        self.dispatcher = Dispatcher(
            settings=settings,
            registry=registry,
            name=self.name,
            store=self.store,
            intake=self.intake,
            pools=self.pools,
            executor=self.executor,
            outbox=outbox,
            progress=progress,
            cancels=self.cancel_listener,
            runtimes=runtimes,
            counters=self.counters,
            wake=self.wake,
            stopping=self.stopping,
            metrics=metrics,
        )

        self._stop_telemetry = False
        self._telemetry_down = False  # logged once when Redis goes away, once when it is back
        self._db_down_since: float | None = None

    # -- what the parts count, for heartbeats, logs and tests ---------------------------------

    @property
    def pool_kind(self) -> str:
        return self.pools.kind

    @property
    def prefetch(self) -> int:
        """The broker's window as it is now (it follows measured run time when not set)."""
        return self.intake.prefetch

    @property
    def duplicates(self) -> int:
        return self.intake.duplicates

    @property
    def poison(self) -> int:
        return self.intake.poison

    @property
    def running(self) -> dict[int, RunningJob]:
        return self.dispatcher.running

    @property
    def processed(self) -> int:
        return self.dispatcher.processed

    @property
    def failed(self) -> int:
        return self.dispatcher.failed

    @property
    def timeouts(self) -> int:
        return self.dispatcher.timeouts

    @property
    def handed_over(self) -> int:
        return self.dispatcher.handed_over

    # -- signals ------------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        if self.stopping.is_set():
            self.forced.set()
        else:
            log.info(
                "event=shutdown_requested worker=%s running=%d grace=%ss",
                self.name,
                len(self.running),
                self.settings.shutdown_grace,
            )
        self.stopping.set()
        self.wake.set()

    def request_reload(self, *_: Any) -> None:
        self.reload_requested.set()
        self.wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    def _reload(self) -> None:
        """SIGHUP: re-read the settings and apply what can change safely while running: the log
        level and the concurrency (and with it a prefetch that follows the concurrency)."""
        self.reload_requested.clear()
        if self._reload_settings is None:
            return
        try:
            fresh = self._reload_settings()
        except JqError as exc:
            log.error("event=reload_failed error=%r kept=previous_settings", exc.message)
            return
        logging.getLogger().setLevel(fresh.log_level.upper())
        if not self._concurrency_fixed and fresh.worker_concurrency != self.concurrency:
            self.concurrency = fresh.worker_concurrency
            self.pools.resize(self.concurrency)
            self.intake.resize(self.concurrency)
        log.info(
            "event=settings_reloaded log_level=%s concurrency=%d prefetch=%d",
            fresh.log_level,
            self.concurrency,
            self.prefetch,
        )

    def _note_db(self, error: JqError | None) -> None:
        if isinstance(
            error, Deadlock
        ):  # lost a lock cycle thrice, not an outage: retried next round
            log.warning("event=database_deadlock error=%r action=retry", error.message)
            return
        if error is None:
            if self._db_down_since is not None:
                log.info(
                    "event=database_reconnected url=%s after=%.1fs",
                    mask_url(self.settings.database_url),
                    time.monotonic() - self._db_down_since,
                )
                self._db_down_since = None
            return
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            log.warning("event=database_unavailable error=%r retry=backoff", error.message)

    # -- life cycle ---------------------------------------------------------------------------

    def _start(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                self.store.require_schema()
                names = self.registry.names()
                self.store.job_type_register(
                    names, self.name, self._schemas(names), self._defaults(names)
                )
                # The limits of @job(concurrency=, rate=) hold on every worker.
                self.store.limit_sync_types(self.registry.limits())
                self._note_db(None)
                return
            except SchemaNotMigrated:
                raise
            except ServiceUnavailable as exc:
                self._note_db(exc)
                self.stopping.wait(delay)
                delay = min(delay * 2, 10)

    def _schemas(self, names: list[str]) -> list[str | None]:
        schemas: list[str | None] = []
        for name in names:
            handler = self.registry.get(name)
            schema = handler.payload_schema() if handler is not None else None
            schemas.append(json.dumps(schema) if schema is not None else None)
        return schemas

    def _defaults(self, names: list[str]) -> list[str | None]:
        found = [self.registry.get(name) for name in names]
        return [json.dumps(h.defaults.as_dict()) if h is not None else None for h in found]

    def run(self) -> int:
        """Work until SIGTERM/SIGINT (or request_stop()); returns the exit code."""
        self._start()
        if self.stopping.is_set():
            return 0
        self.pools.start()
        consumer_thread = threading.Thread(target=self.consumer.run, name="amqp", daemon=True)
        consumer_thread.start()
        telemetry_thread = threading.Thread(
            target=self._telemetry_loop, name="telemetry", daemon=True
        )
        telemetry_thread.start()
        self.cancel_listener.start()
        deadline = time.monotonic() + 10  # READY=1 means connected; a signal must not wait for it
        while (
            not self.consumer.connected.wait(0.1)
            and not self.stopping.is_set()
            and time.monotonic() < deadline
        ):
            pass
        log.info(
            "event=worker_started worker=%s queues=%s concurrency=%d prefetch=%d",
            self.name,
            ",".join(self.queues),
            self.concurrency,
            self.prefetch,
        )
        sdnotify.notify("READY=1", f"STATUS=consuming {','.join(self.queues)}")

        dispatcher, intake, wake = self.dispatcher, self.intake, self.wake.event
        delay = 0.0
        drain_deadline: float | None = None
        while True:
            due = intake.next_due  # outcomes held back for group commit go by then
            linger = 0.1 if due is None else min(0.1, max(0.0, due - time.monotonic()))
            wake.wait(delay or linger)
            wake.clear()
            now = time.monotonic()
            if self.reload_requested.is_set():
                self._reload()
            try:
                dispatcher.dispatch_once(now)
                self._note_db(None)
                delay = 0.0
            except JqError as exc:
                self._note_db(exc)
                # Capped well inside the lease: a worker back from a database outage must renew its
                # leases before the scheduler's rescue takes jobs that were never interrupted.
                delay = min((delay or 0.25) * 2, 5.0, self.settings.lease_ttl / 4)
            except Exception:  # a bug or a refused query must not end the worker: log, back off
                log.exception("event=dispatch_error worker=%s action=retry", self.name)
                delay = min((delay or 0.25) * 2, 5.0, self.settings.lease_ttl / 4)
            if self.stopping.is_set():
                if drain_deadline is None:
                    drain_deadline = now + self.settings.shutdown_grace
                    self.consumer.stop_consuming()
                    sdnotify.notify("STOPPING=1")
                    intake.requeue_all()
                if not self.running or self.forced.is_set() or now >= drain_deadline:
                    break
        self._hand_back()
        self.consumer.stop()
        consumer_thread.join(5)
        self.pools.shutdown()
        self.cancel_listener.stop()
        self._stop_telemetry = True
        self._send_telemetry(final=True)
        with contextlib.suppress(JqError):  # its types stop counting as runnable here at once
            self.store.worker_types_remove(self.name)
        self.store.close()
        self.publisher.close()
        log.info(
            "event=worker_stopped worker=%s processed=%d failed=%d duplicates=%d",
            self.name,
            self.processed,
            self.failed,
            self.duplicates,
        )
        return 0

    def _hand_back(self) -> None:
        with contextlib.suppress(JqError):
            self.dispatcher.finish()
        if not self.running:
            return
        ids = [r.id for r in self.running.values() if not r.lost]
        for r in self.running.values():
            r.cancel.set()
        try:
            rows = self.store.job_hand_back(ids, self.name)
        except JqError as exc:
            log.error(
                "event=hand_back_failed jobs=%d error=%r note=the_scheduler_rescues_them_after_their_lease",
                len(ids),
                exc.message,
            )
            return
        log.info("event=jobs_handed_back count=%d ids=%s", len(rows), [r.id for r in rows][:20])
        try:
            self.publisher.publish(
                Message(r.id, r.queue, r.priority) for r in rows if r.state == "queued"
            )
        except ServiceUnavailable as exc:
            log.warning("event=publish_deferred jobs=%d reason=%r", len(rows), exc.message)

    # -- telemetry thread ---------------------------------------------------------------------

    def _telemetry_loop(self) -> None:
        while not self._stop_telemetry:
            try:
                self._send_telemetry()
            except Exception:  # a telemetry bug must not end heartbeats or the sd_notify watchdog
                log.exception("event=telemetry_error worker=%s", self.name)
            sdnotify.notify(
                f"STATUS=running {len(self.running)} jobs, processed {self.processed}",
                watchdog=True,
            )
            time.sleep(self.settings.heartbeat_interval)

    def _send_telemetry(self, final: bool = False) -> None:
        counts = self.counters.take()
        try:
            self.telemetry.add_counts(counts)
            if final:
                self.telemetry.worker_gone(self.name)
            else:
                self.telemetry.heartbeat(
                    self.name, self.heartbeat_info(), ttl=self.settings.heartbeat_interval * 3
                )
            if self._telemetry_down:
                log.info("event=telemetry_reconnected url=%s", mask_url(self.settings.redis_url))
                self._telemetry_down = False
        except ServiceUnavailable as exc:
            self.counters.put_back(counts)
            if not self._telemetry_down:
                log.warning(
                    "event=telemetry_unavailable error=%r note=jobs_keep_running", exc.message
                )
                self._telemetry_down = True

    def heartbeat_info(self) -> dict[str, Any]:
        # Not parsed from the name: `jq worker --name` may be anything (it used to crash this thread).
        return {
            "host": hostname(),
            "pid": os.getpid(),
            "queues": self.queues,
            "concurrency": self.concurrency,
            # The broker's window as it is now (it follows measured run time when not set): the
            # sweeper subtracts what a busy worker may hold unacknowledged before it re-publishes.
            "prefetch": self.prefetch,
            "running": len(self.running),
            "jobs": sorted(self.running)[:20],
            "processed": self.processed,
            "failed": self.failed,
            "timeouts": self.timeouts,
            "pool": self.pool_kind,
            # handler threads stuck past their time limit or a cancel, replaced but still alive
            "abandoned": self.pools.abandoned,
            "draining": self.stopping.is_set(),
        }
