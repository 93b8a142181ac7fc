"""The `jq worker` daemon: consume job ids, claim in Postgres, run handlers, record outcomes.

Threads and what each owns:
- the consumer thread owns the AMQP connection (pika is not thread-safe);
- the dispatcher (the caller of run(), the main thread) owns the Postgres connection: it claims
  deliveries in batches, acknowledges them once the claim is committed, hands jobs to the pool,
  records outcomes in batches (group commit), renews leases and polls cancel requests;
- `concurrency` handler threads run handlers and report outcomes back;
- the telemetry thread sends heartbeats and counters to Redis, never blocking the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jq_cli import sdnotify, tracing
from jq_cli.broker import Consumer, Delivery, Message, Publisher
from jq_cli.config import Settings, mask_url
from jq_cli.errors import InvalidInput, JqError, SchemaNotMigrated, ServiceUnavailable
from jq_cli.handlers.registry import Cancelled, JobContext, PermanentError, Registry
from jq_cli.retry import Backoff
from jq_cli.store import Finish, Store, hostname
from jq_cli.telemetry import CounterBuffer, Telemetry

if TYPE_CHECKING:  # prometheus-client is imported only by a daemon started with --metrics-port
    from jq_cli.metrics import DaemonMetrics

log = logging.getLogger("jq.worker")
CANCEL_POLL = 1.0  # seconds between checks for cancel requests of running jobs
PROGRESS_FLUSH = 0.5  # seconds between writes of handlers' progress


@dataclass
class RunningJob:
    id: int
    run: int
    job_type: str
    queue: str = "default"
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    lost: bool = False  # rescued by the scheduler while we were cut off; its outcome will not count


class HandlerPool:
    """A fixed set of daemon threads running handlers. Daemon threads, because a handler that
    ignores cancellation must not keep the process alive past its shutdown grace."""

    def __init__(self, size: int, run: Callable[[dict[str, Any]], None]):
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._run = run
        self.size = 0
        self._started = 0
        self.resize(size)

    def resize(self, size: int) -> None:
        """Grow by starting threads; shrink by asking threads to exit once their job is done."""
        for _ in range(size - self.size):
            self._started += 1
            threading.Thread(
                target=self._loop, name=f"handler-{self._started}", daemon=True
            ).start()
        for _ in range(self.size - size):
            self._tasks.put(None)
        self.size = size

    def submit(self, job: dict[str, Any]) -> None:
        self._tasks.put(job)

    def _loop(self) -> None:
        while True:
            job = self._tasks.get()
            if job is None:
                return
            self._run(job)

    def shutdown(self) -> None:
        self.resize(0)


class Worker:
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
    ):
        self.settings = settings
        self.metrics = metrics
        self._reload_settings = reload_settings
        self._concurrency_fixed = (
            concurrency is not None
        )  # given on the command line: wins over reloads
        self._prefetch_fixed = bool(prefetch or settings.worker_prefetch)
        self.reload_requested = threading.Event()
        self.registry = registry
        self.queues = queues or settings.queue_names
        self.concurrency = concurrency or settings.worker_concurrency
        # Unclaimed deliveries wait locally; keep that buffer small so priorities stay strict.
        self.prefetch = prefetch or settings.worker_prefetch or self.concurrency
        self.name = name or f"{hostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.backoff = Backoff(
            settings.retry_base_delay, settings.retry_max_delay, settings.retry_jitter
        )

        self.store = Store(
            settings.database_url, settings.namespace, application_name=f"jq-worker {self.name}"
        )
        self.publisher = Publisher(settings.rabbitmq_url, settings.namespace)
        self.telemetry = Telemetry(settings.redis_url, settings.namespace)
        self.counters = CounterBuffer()
        self.consumer = Consumer(
            settings.rabbitmq_url,
            settings.namespace,
            self.queues,
            self.prefetch,
            self._on_delivery,
            self._on_connection_lost,
        )

        self.wake = threading.Event()
        self._inbox: list[Delivery] = []
        self._inbox_lock = threading.Lock()
        self._outcomes: queue.SimpleQueue = queue.SimpleQueue()
        self._unsaved: list[Finish] = []  # outcomes whose commit failed; retried
        self._progress: dict[int, tuple[float, str | None]] = {}
        self._progress_lock = threading.Lock()
        self.running: dict[int, RunningJob] = {}
        self.processed = self.failed = self.duplicates = self.poison = 0

        self._stop_telemetry = False
        self._telemetry_down = False  # logged once when Redis goes away, once when it is back
        self.stopping = threading.Event()  # first signal: drain
        self.forced = threading.Event()  # second signal: hand back now
        self._db_down_since: float | None = None

    # -- consumer thread callbacks ------------------------------------------------------------

    def _on_delivery(self, delivery: Delivery) -> None:
        with self._inbox_lock:
            self._inbox.append(delivery)
        self.wake.set()

    def _on_connection_lost(self, generation: int) -> None:
        # Unacknowledged deliveries of that connection go back to the broker by themselves.
        with self._inbox_lock:
            self._inbox = [d for d in self._inbox if d.generation != generation]

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
            self.pool.resize(self.concurrency)
            if not self._prefetch_fixed:
                self.prefetch = self.concurrency
                self.consumer.set_prefetch(self.prefetch)
        log.info(
            "event=settings_reloaded log_level=%s concurrency=%d prefetch=%d",
            fresh.log_level,
            self.concurrency,
            self.prefetch,
        )

    # -- handler threads ----------------------------------------------------------------------

    def _execute(self, job: dict[str, Any]) -> None:
        running: RunningJob = job["_running"]
        outcome = self._outcome_of(job, running)
        self._outcomes.put(outcome)
        self.wake.set()

    def _outcome_of(self, job: dict[str, Any], running: RunningJob) -> Finish:
        job_id, run = job["id"], job["run_count"]
        handler = self.registry.get(job["job_type"])
        if handler is None:
            return Finish(
                job_id,
                run,
                "failed",
                error=f"unknown job type {job['job_type']!r}: no handler on worker {self.name}",
            )
        try:
            payload = handler.validate(job["payload"])
        except InvalidInput as exc:
            return Finish(job_id, run, "failed", error=f"invalid payload: {exc.message}")
        ctx = JobContext(
            job_id,
            job["attempts"],
            settings=self.settings,
            on_progress=self._on_progress,
            cancel_event=running.cancel,
            parent_results=job.get("parent_results"),  # issue 15: workflow steps
        )
        try:
            with tracing.handler_span(job):  # issue 15: a child span of the submitter's
                result = handler.fn(payload, ctx)
            return Finish(job_id, run, "completed", result_json=json.dumps(result, default=str))
        except Cancelled as exc:
            return Finish(
                job_id, run, "cancelled", error=f"cancelled: {exc}" if str(exc) else "cancelled"
            )
        except PermanentError as exc:
            return Finish(
                job_id, run, "failed", error=_describe(exc), traceback=traceback.format_exc()
            )
        except BaseException as exc:  # a handler's failure of any kind is recorded, never fatal
            retry_in = None
            if job["attempts"] <= job["max_retries"]:
                policy = self.backoff.with_overrides(
                    job["retry_base_delay"], job["retry_max_delay"], job["retry_jitter"]
                )
                retry_in = policy.delay(job["attempts"])
            return Finish(
                job_id,
                run,
                "failed",
                error=_describe(exc),
                traceback=traceback.format_exc(),
                retry_in=retry_in,
            )

    def _on_progress(self, job_id: int, percent: float, message: str | None) -> None:
        with self._progress_lock:
            self._progress[job_id] = (percent, message)

    # -- the dispatcher -----------------------------------------------------------------------

    def _take_deliveries(self, n: int) -> list[Delivery]:
        with self._inbox_lock:
            if not self._inbox:
                return []
            generation = self.consumer.generation
            inbox = [d for d in self._inbox if d.generation == generation]
            # Strict priorities: of what has been delivered, the highest priority goes first.
            inbox.sort(key=lambda d: -d.priority)
            taken, self._inbox = inbox[:n], inbox[n:]
        return taken

    def _claim(self) -> None:
        free = self.concurrency - len(self.running)
        if free <= 0 or self.stopping.is_set():
            return
        deliveries = self._take_deliveries(free)
        if not deliveries:
            return
        by_id: dict[int, list[Delivery]] = {}
        poison: list[Delivery] = []
        for d in deliveries:
            job_id = _job_id(d.body)
            if job_id is None:
                poison.append(d)
            else:
                by_id.setdefault(job_id, []).append(d)
        if poison:
            self.poison += len(poison)
            log.warning(
                "event=poison_message count=%d action=dead_lettered sample=%r",
                len(poison),
                poison[0].body[:80],
            )
            for d in poison:
                self.consumer.reject(d.generation, [d.tag], requeue=False)
        if not by_id:
            return
        try:
            with tracing.span(
                "jq.claim", {"jq.jobs": len(by_id), "jq.worker": self.name}
            ):  # issue 15
                claimed = self.store.job_claim(list(by_id), self.name, self.settings.lease_ttl)
        except JqError:
            with self._inbox_lock:  # try these again once Postgres is back
                self._inbox[:0] = [d for ds in by_id.values() for d in ds]
            raise
        won = {job["id"] for job in claimed}
        for job in claimed:
            stale = self.running.get(job["id"])
            if stale is not None:
                # An older run of this job was rescued while we were cut off, and the job came back to
                # us. Stop the old run: lease renewal (by worker name) cannot tell the two apart.
                stale.lost = True
                stale.cancel.set()
                log.warning(
                    "event=stale_run_stopped job=%d run=%d new_run=%d",
                    stale.id,
                    stale.run,
                    job["run_count"],
                )
            running = RunningJob(job["id"], job["run_count"], job["job_type"], job["queue"])
            if self.metrics is not None:
                self.metrics.job_started(job["job_type"], job["queue"], job["waited"])
            if job["cancel_requested"]:
                running.cancel.set()
            job["_running"] = running
            self.running[job["id"]] = running
            self.pool.submit(job)
        lost = [i for i in by_id if i not in won]
        if lost:
            self._count_duplicates(lost)
        # The claim is committed: from here the lease carries the job, so the message can go.
        generation = deliveries[0].generation
        self.consumer.ack(generation, [d.tag for ds in by_id.values() for d in ds])
        extra = sum(len(ds) - 1 for ds in by_id.values())
        self.duplicates += extra

    def _count_duplicates(self, ids: list[int]) -> None:
        states = self.store.job_states(ids)
        missing = [i for i in ids if i not in states]
        self.duplicates += len(ids) - len(missing)
        if missing:
            self.poison += len(missing)
            log.warning("event=unknown_job_message ids=%s action=dropped", missing[:10])
        for job_id in ids:
            if job_id in states:
                log.debug(
                    "event=duplicate_message job=%d state=%s action=dropped", job_id, states[job_id]
                )

    def _finish(self) -> None:
        batch = self._unsaved
        while True:
            try:
                batch.append(self._outcomes.get_nowait())
            except queue.Empty:
                break
        if not batch:
            return
        self._unsaved = batch
        with tracing.span(  # issue 15
            "jq.finish", {"jq.jobs": len(batch), "jq.job.ids": [f.job_id for f in batch][:100]}
        ):
            states = self.store.job_finish(batch, self.name)
        self._unsaved = []
        for outcome in batch:
            running = self.running.get(outcome.job_id)
            if running is not None and running.run == outcome.run:
                del self.running[outcome.job_id]
            else:
                # The outcome of a stale run must not drop a newer run's entry (and with it its lease).
                running = None
            state = states.get(outcome.job_id)
            if state is None:
                log.info("event=outcome_ignored job=%d reason=job_no_longer_ours", outcome.job_id)
                continue
            self.processed += 1
            if self.metrics is not None and running is not None:
                self.metrics.job_finished(
                    running.job_type, running.queue, state, time.monotonic() - running.started
                )
            if state == "completed":
                self.counters.add("completed")
                log.debug("event=job_completed job=%d", outcome.job_id)
            else:
                self.failed += 1 if state in ("retrying", "dead") else 0
                self.counters.add("failed" if state in ("retrying", "dead") else state)
                log.info(
                    "event=job_%s job=%d type=%s error=%r",
                    state,
                    outcome.job_id,
                    running.job_type if running else "?",
                    (outcome.error or "")[:200],
                )
        with self._progress_lock:
            for outcome in batch:
                if outcome.job_id not in self.running:
                    self._progress.pop(outcome.job_id, None)

    def _flush_progress(self) -> None:
        with self._progress_lock:
            updates, self._progress = self._progress, {}
        if updates:
            try:
                self.store.job_progress(updates, self.name)
            except JqError:
                with self._progress_lock:
                    self._progress = {**updates, **self._progress}
                raise

    def _renew_leases(self) -> None:
        ids = [r.id for r in self.running.values() if not r.lost]
        if not ids:
            return
        still_ours = self.store.job_lease_renew(ids, self.name, self.settings.lease_ttl)
        for job_id in ids:
            running = self.running.get(job_id)
            if running is None:
                continue
            if job_id not in still_ours:
                running.lost = True
                running.cancel.set()  # someone else may run it now: ask the handler to stop
                log.warning("event=lease_lost job=%d action=handler_asked_to_stop", job_id)
            elif still_ours[job_id]:
                running.cancel.set()

    def _dispatch_once(self, now: float) -> None:
        if self.reload_requested.is_set():
            self._reload()
        self._finish()
        self._claim()
        if now >= self._next_progress:
            self._flush_progress()
            self._next_progress = now + PROGRESS_FLUSH
        if now >= self._next_lease:
            self._renew_leases()
            self._next_lease = now + min(self.settings.lease_ttl / 3, CANCEL_POLL)

    def _note_db(self, error: JqError | None) -> None:
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
                self.store.job_type_register(self.registry.names(), self.name)
                self._note_db(None)
                return
            except SchemaNotMigrated:
                raise
            except ServiceUnavailable as exc:
                self._note_db(exc)
                self.stopping.wait(delay)
                delay = min(delay * 2, 10)

    def run(self) -> int:
        """Work until SIGTERM/SIGINT (or request_stop()); returns the exit code."""
        self._start()
        if self.stopping.is_set():
            return 0
        self.pool = HandlerPool(self.concurrency, self._execute)
        consumer_thread = threading.Thread(target=self.consumer.run, name="amqp", daemon=True)
        consumer_thread.start()
        telemetry_thread = threading.Thread(
            target=self._telemetry_loop, name="telemetry", daemon=True
        )
        telemetry_thread.start()
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

        self._next_lease = self._next_progress = 0.0
        delay = 0.0
        drain_deadline: float | None = None
        while True:
            self.wake.wait(delay or 0.1)
            self.wake.clear()
            now = time.monotonic()
            try:
                self._dispatch_once(now)
                self._note_db(None)
                delay = 0.0
            except JqError as exc:
                self._note_db(exc)
                # Capped well inside the lease: a worker back from a database outage must renew its
                # leases before the scheduler's rescue takes jobs that were never interrupted.
                delay = min((delay or 0.25) * 2, 5.0, self.settings.lease_ttl / 4)
            if self.stopping.is_set():
                if drain_deadline is None:
                    drain_deadline = now + self.settings.shutdown_grace
                    self.consumer.stop_consuming()
                    sdnotify.notify("STOPPING=1")
                    self._requeue_inbox()
                if not self.running or self.forced.is_set() or now >= drain_deadline:
                    break
        self._hand_back()
        self.consumer.stop()
        consumer_thread.join(5)
        self.pool.shutdown()
        self._stop_telemetry = True
        self._send_telemetry(final=True)
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

    def _requeue_inbox(self) -> None:
        with self._inbox_lock:
            inbox, self._inbox = self._inbox, []
        for d in inbox:
            self.consumer.reject(d.generation, [d.tag], requeue=True)

    def _hand_back(self) -> None:
        with contextlib.suppress(JqError):
            self._finish()
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
        log.info("event=jobs_handed_back count=%d ids=%s", len(rows), [r["id"] for r in rows][:20])
        try:
            self.publisher.publish(
                Message(r["id"], r["queue"], r["priority"]) for r in rows if r["state"] == "queued"
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
            "running": len(self.running),
            "jobs": sorted(self.running)[:20],
            "processed": self.processed,
            "failed": self.failed,
            "draining": self.stopping.is_set(),
        }


def _job_id(body: bytes) -> int | None:
    """The job id a message carries, or None for a message that carries none (poison)."""
    if not body or len(body) > 20:
        return None
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.isdigit():
        return None
    value = int(text)
    return value if 0 < value < 2**63 else None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
