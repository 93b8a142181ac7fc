"""The worker's dispatcher: the one thread that owns the worker's Postgres connection. It claims
deliveries in batches, acknowledges them once the claim is known, hands jobs to a pool, records
outcomes in batches (group commit), renews leases, and stops handlers past their time limit or
a cancel request. Every step may fail on a query; each one leaves its work to be retried or
released, so that consumption resumes as soon as PostgreSQL answers again."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING

from jq_cli import tracing
from jq_cli.broker import Consumer, Delivery
from jq_cli.cancel_listener import CancelListener, ask_to_stop
from jq_cli.config import Settings
from jq_cli.errors import JqError, ServiceUnavailable
from jq_cli.executor import Executor
from jq_cli.handlers.registry import ForcedCancel, JobContext, JobTimeout, Registry
from jq_cli.outcomes import Limits, sanitise
from jq_cli.pools import AsyncRunner, CancelFlag, Pool, RunningJob
from jq_cli.store import Finish, Store
from jq_cli.store.work import ClaimedJob
from jq_cli.telemetry import CounterBuffer

if TYPE_CHECKING:  # prometheus-client is imported only by a daemon started with --metrics-port
    from jq_cli.metrics import DaemonMetrics

log = logging.getLogger("jq.worker")
PROGRESS_FLUSH = 0.5  # seconds between writes of handlers' progress
TYPES_REFRESH = 5.0  # seconds between refreshes of this worker's row of types in PostgreSQL
TYPES_FRESH = 20.0  # a worker whose types were refreshed this recently counts as live


class Dispatcher:
    """The hot path of a worker (see the module docstring); jq_cli.worker.Worker adds its life
    cycle, signals and telemetry."""

    settings: Settings
    registry: Registry
    name: str
    concurrency: int
    store: Store
    consumer: Consumer
    counters: CounterBuffer
    metrics: DaemonMetrics | None
    stopping: threading.Event
    pool: Pool
    async_runner: AsyncRunner
    executor: Executor
    cancel_listener: CancelListener | None = None  # started by Worker.run

    def _init_dispatcher(self) -> None:
        self.limits = Limits(self.settings.max_result_bytes, self.settings.max_error_bytes)
        self.wake = threading.Event()
        self._inbox: list[Delivery] = []
        self._inbox_lock = threading.Lock()
        self._outcomes: queue.SimpleQueue[tuple[RunningJob, Finish]] = queue.SimpleQueue()
        self._unsaved: list[tuple[RunningJob, Finish]] = []  # outcomes whose commit failed; retried
        self._progress: dict[int, tuple[float, str | None]] = {}
        self._progress_lock = threading.Lock()
        self.running: dict[int, RunningJob] = {}
        self._stale: list[RunningJob] = []  # older runs of jobs that came back to us, being stopped
        self.processed = self.failed = self.duplicates = self.poison = 0
        self.timeouts = 0
        self._unknown: list[RunningJob] = []  # claimed jobs of a type this worker lacks
        self.handed_over = 0
        self._next_types = 0.0
        self._next_lease = self._next_progress = 0.0

    # -- what pools call (from their threads) -------------------------------------------------

    def _report(self, running: RunningJob, finish: Finish) -> None:
        self._outcomes.put((running, finish))
        self.wake.set()

    def _make_ctx(self, running: RunningJob, cancel: CancelFlag) -> JobContext:
        return JobContext(
            running.id,
            running.job.attempts,
            settings=self.settings,
            on_progress=self._on_progress,
            cancel_event=cancel,  # a threading Event, or a multiprocessing one
            time_limit=self._time_limit(running.job),
            max_message_bytes=self.limits.max_error_bytes,
            parent_results=running.job.parent_results,  # workflow steps
        )

    def _on_progress(self, job_id: int, percent: float, message: str | None) -> None:
        with self._progress_lock:
            self._progress[job_id] = (percent, message)

    def _time_limit(self, job: ClaimedJob) -> float | None:
        """The job's own limit, else its handler's declared one, else the worker's default."""
        if job.time_limit:
            return job.time_limit
        handler = self.registry.get(job.job_type)
        if handler is not None and handler.defaults.time_limit:
            return handler.defaults.time_limit
        return self.settings.worker_time_limit or None

    # -- claim --------------------------------------------------------------------------------

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
            job_id = job_id_of(d.body)
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
        tags = [d.tag for ds in by_id.values() for d in ds]
        generation = deliveries[0].generation
        try:
            # The claim obeys queue pauses and limits (store/queues.py, job_claim_gated).
            with tracing.span("jq.claim", {"jq.jobs": len(by_id), "jq.worker": self.name}):
                claimed = self.store.job_claim_gated(
                    list(by_id), self.name, self.settings.lease_ttl
                )
        except ServiceUnavailable:
            with self._inbox_lock:  # try these again once Postgres is back
                self._inbox[:0] = [d for ds in by_id.values() for d in ds]
            raise
        except Exception:
            # Not a lost connection: the claim itself failed. Hand the messages back to the broker
            # rather than hold them (held, they would fill the prefetch window and stall us).
            self.consumer.reject(generation, tags, requeue=True)
            raise
        # The claim is committed: from here the lease carries the job, so the message can go. First
        # of all, so that nothing below can leave deliveries unacknowledged.
        self.consumer.ack(generation, tags)
        self.duplicates += sum(len(ds) - 1 for ds in by_id.values())
        won = set()
        for job in claimed:
            won.add(job.id)
            try:
                self._begin(job)
            except Exception as exc:  # a bug here must still end the attempt, not strand the job
                log.exception("event=start_failed job=%d", job.id)
                running = self.running.setdefault(job.id, RunningJob(job))
                self._report(running, self.executor.failure(job, exc))
        lost = [i for i in by_id if i not in won]
        if lost:
            try:
                self._count_duplicates(lost)
            except JqError:  # counting only: the messages are settled already
                self.duplicates += len(lost)

    def _begin(self, job: ClaimedJob) -> None:
        stale = self.running.get(job.id)
        if stale is not None:
            # An older run of this job was rescued while we were cut off, and the job came back to
            # us. Stop the old run: lease renewal (by worker name) cannot tell the two apart.
            stale.lost = True
            stale.cancel.set()
            stale.cancel_seen = time.monotonic()
            self._stale.append(stale)
            log.warning(
                "event=stale_run_stopped job=%d run=%d new_run=%d",
                stale.id,
                stale.run,
                job.run_count,
            )
        running = RunningJob(job)
        limit = self._time_limit(job)
        if limit:
            running.deadline = running.started + limit
        if self.metrics is not None:
            self.metrics.job_started(job.job_type, job.queue, job.waited)
        if job.cancel_requested:
            running.cancel.set()
            running.cancel_seen = running.started
        self.running[job.id] = running
        handler = self.registry.get(job.job_type)
        if handler is None:
            # A rolling deploy: this worker lacks the type. It is handed over, not failed.
            self._unknown.append(running)
            return
        (self.async_runner if handler.is_async else self.pool).submit(running)

    def _hand_over(self) -> None:
        """Jobs of a type this worker lacks wait as scheduled, spending no attempt: briefly when
        another live worker has the type (its next delivery likely lands there), longer, backing
        off, when none has (a deploy still to come). Never dead-lettered for that alone."""
        if not self._unknown:
            return
        types = sorted({r.job.job_type for r in self._unknown})
        live = self.store.job_type_live_elsewhere(types, self.name, TYPES_FRESH)
        for kind in types:
            batch = [r for r in self._unknown if r.job.job_type == kind]
            if kind in live:
                note = f"waiting: worker {self.name} has no handler for {kind!r}; another live worker has it"
                delays = {
                    r.id: (r.run, min(5.0, 0.2 * 2 ** min(r.job.hand_backs, 5))) for r in batch
                }
            else:
                note = f"waiting: no live worker has a handler for job type {kind!r}"
                delays = {
                    r.id: (r.run, min(300.0, 2.0 * 2 ** min(r.job.hand_backs, 8))) for r in batch
                }
            self.store.job_hand_over(delays, self.name, note)
            for r in batch:
                r.done = True
                if self.running.get(r.id) is r:
                    del self.running[r.id]
                self._unknown.remove(r)
            self.handed_over += len(batch)
            log.info(
                "event=jobs_handed_over type=%s count=%d live_elsewhere=%s",
                kind,
                len(batch),
                kind in live,
            )

    def _refresh_types(self, now: float) -> None:
        if now >= self._next_types:
            self.store.worker_types_refresh(self.name)
            self._next_types = now + TYPES_REFRESH

    def _count_duplicates(self, ids: list[int]) -> None:
        states = self.store.job_states(ids)
        missing = [i for i in ids if i not in states]
        self.duplicates += len(ids) - len(missing)
        if missing:
            self.poison += len(missing)
            log.warning("event=unknown_job_message ids=%s action=dropped", missing[:10])

    # -- outcomes -----------------------------------------------------------------------------

    def _finish(self) -> None:
        batch = self._unsaved
        while True:
            try:
                running, finish = self._outcomes.get_nowait()
            except queue.Empty:
                break
            if running.done:
                continue  # a late outcome of a run the worker already ended (abandoned, killed)
            running.done = True
            batch.append((running, sanitise(finish, self.limits)))
        if not batch:
            return
        self._unsaved = batch
        with tracing.span("jq.finish", {"jq.jobs": len(batch), "jq.worker": self.name}):
            states = self.store.job_finish([f for _, f in batch], self.name)
        self._unsaved = []
        for running, outcome in batch:
            self._settled(running, outcome, states.get(outcome.job_id))
        with self._progress_lock:
            for _, outcome in batch:
                if outcome.job_id not in self.running:
                    self._progress.pop(outcome.job_id, None)

    def _settled(self, running: RunningJob, outcome: Finish, state: str | None) -> None:
        if self.running.get(running.id) is running:
            del self.running[running.id]
        elif running in self._stale:
            # The outcome of a stale run must not drop a newer run's entry (and with it its lease).
            self._stale.remove(running)
        if state is None:
            log.info("event=outcome_ignored job=%d reason=job_no_longer_ours", outcome.job_id)
            return
        self.processed += 1
        job = running.job
        if self.metrics is not None:
            self.metrics.job_finished(
                job.job_type, job.queue, state, time.monotonic() - running.started
            )
        if state == "completed":
            self.counters.add("completed")
            self.counters.add(f"completed@{job.queue}")  # per queue, for `jq queue list`
            return
        if outcome.outcome == "timeout":
            self.timeouts += 1
        self.failed += 1 if state in ("retrying", "dead") else 0
        self.counters.add("failed" if state in ("retrying", "dead") else state)
        log.info(
            "event=job_%s job=%d type=%s outcome=%s error=%r",
            state,
            outcome.job_id,
            job.job_type,
            outcome.outcome,
            (outcome.error or "")[:200],
        )

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

    # -- leases, cancels and time limits ------------------------------------------------------

    def _apply_cancels(self, now: float) -> None:
        """Ask the handlers of the jobs whose cancel the listener heard to stop."""
        for job_id in self.cancel_listener.take() if self.cancel_listener is not None else ():
            running = self.running.get(job_id)
            if running is not None and not running.done:
                ask_to_stop(running, now)

    def _renew_leases(self) -> None:
        """Extend the leases of running jobs (every third of the lease: a write per running job),
        and learn of their cancels as well, should the listener have missed one."""
        ids = [r.id for r in self.running.values() if not r.lost]
        if not ids:
            return
        still_ours = self.store.job_lease_renew(ids, self.name, self.settings.lease_ttl)
        now = time.monotonic()
        for job_id in ids:
            running = self.running.get(job_id)
            if running is None:
                continue
            if job_id not in still_ours:
                running.lost = True
                log.warning("event=lease_lost job=%d action=handler_asked_to_stop", job_id)
            elif not still_ours[job_id]:
                continue
            ask_to_stop(running, now)  # cancelled, or someone else may run it now

    def _enforce_limits(self, now: float) -> None:
        """Stop handlers past their time limit, or past the stop grace after a cancel request: ask
        (the cancel flag), then raise into them, then abandon (threads) or kill (processes)."""
        grace = self.settings.stop_grace
        for running in [*self.running.values(), *self._stale]:
            if running.done:
                continue
            if running.stop_reason is None:
                if running.deadline is not None and now >= running.deadline:
                    running.stop_reason = "timeout"
                    running.cancel.set()
                    self._pool_of(running).interrupt(running, JobTimeout)
                    running.stop_at = now + grace
                    log.warning("event=time_limit_reached job=%d action=interrupted", running.id)
                elif running.cancel_seen is not None and now >= running.cancel_seen + grace:
                    running.stop_reason = "cancelled"
                    self._pool_of(running).interrupt(running, ForcedCancel)
                    running.stop_at = now + grace
                    log.warning("event=cancel_ignored job=%d action=interrupted", running.id)
            elif running.stop_at is not None and now >= running.stop_at:
                running.stop_at = None
                self._pool_of(running).abandon(running)
                stop: BaseException = (
                    JobTimeout() if running.stop_reason == "timeout" else ForcedCancel()
                )
                self._report(running, self.executor.failure(running.job, stop))

    def _pool_of(self, running: RunningJob) -> Pool | AsyncRunner:
        handler = self.registry.get(running.job.job_type)
        return self.async_runner if handler is not None and handler.is_async else self.pool

    def _dispatch_once(self, now: float) -> None:
        self._finish()
        self._claim()
        self._hand_over()
        self._refresh_types(now)
        self._apply_cancels(now)
        self._enforce_limits(now)
        if now >= self._next_progress:
            self._flush_progress()
            self._next_progress = now + PROGRESS_FLUSH
        if now >= self._next_lease:
            self._renew_leases()
            # Every third of the lease, no faster: each renewal writes every running job's row.
            # Cancels need no renewal to arrive: the listener hears them (_apply_cancels).
            self._next_lease = now + self.settings.lease_ttl / 3


def job_id_of(body: bytes) -> int | None:
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
