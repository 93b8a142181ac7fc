"""The worker's dispatcher: the one thread that owns the worker's Postgres connection. Each round
it records the outcomes at hand and claims deliveries in one statement (group commit; what it
claims and when is the intake's, jq_cli/worker/intake.py), hands jobs to a pool, renews leases, and stops
handlers past their time limit or a cancel request. Every step may fail on a query; each one leaves its work to be retried or
released, so that consumption resumes as soon as PostgreSQL answers again."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from typing import TYPE_CHECKING

from jq_cli.broker import Consumer, Delivery
from jq_cli.config import Settings
from jq_cli.errors import Conflict, JqError, ServiceUnavailable, StoreError
from jq_cli.handlers.registry import ForcedCancel, JobContext, JobTimeout, Registry
from jq_cli.observe import tracing
from jq_cli.observe.telemetry import CounterBuffer
from jq_cli.store import Finish, Store
from jq_cli.store.work import ClaimedJob
from jq_cli.worker.cancel_listener import CancelListener, ask_to_stop
from jq_cli.worker.claim_ahead import RunTimes
from jq_cli.worker.executor import Executor
from jq_cli.worker.intake import Intake
from jq_cli.worker.outcomes import Limits, sanitise
from jq_cli.worker.pools import AsyncRunner, CancelFlag, Pool, RunningJob

if TYPE_CHECKING:  # prometheus-client is imported only by a daemon started with --metrics-port
    from jq_cli.observe.metrics import DaemonMetrics

log = logging.getLogger("jq.worker")
PROGRESS_FLUSH = 0.5  # seconds between writes of handlers' progress
TYPES_REFRESH = 5.0  # seconds between refreshes of this worker's row of types in PostgreSQL
TYPES_FRESH = 20.0  # a worker whose types were refreshed this recently counts as live


class Dispatcher(Intake):
    """The hot path of a worker (see the module docstring); jq_cli.worker.daemon.Worker adds its life
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
        self._next_lease = self._next_progress = self._next_prefetch = 0.0
        self._signalled = False  # see _signal
        self._completed: Counter[str] = Counter()  # per queue, in the batch being settled
        self.next_due: float | None = None  # when the outcomes held back must go (see _pace)
        self.runtimes = RunTimes()  # measured handler run times: how far ahead to claim
        self._waiting: deque[RunningJob] = deque()  # claimed, in the pool's queue, not started
        self._waiting_types: Counter[str] = Counter()  # how many of each type _waiting holds

    # -- what pools call (from their threads) -------------------------------------------------

    def _report(self, running: RunningJob, finish: Finish) -> None:
        running.ended = time.monotonic()
        self._outcomes.put((running, finish))
        self._signal()

    def _signal(self) -> None:
        """Wake the dispatcher, once for everything reported or delivered until its next round (a
        wake per job costs a lock and a notify on the hot path)."""
        if not self._signalled:
            self._signalled = True
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

    # -- the cycle: outcomes recorded and deliveries claimed (jq_cli/worker/intake.py) ------------------

    def _cycle(self) -> None:
        """One round trip: the outcomes at hand and a claim of the deliveries there is room for,
        committed together (store/cycle.py). A refusal of either falls back to recording the
        outcomes alone (row by row if need be) and claiming alone."""
        self._signalled = False  # before anything is read: whatever comes later wakes us again
        batch = self._collect_outcomes()
        room = self._pace(batch)
        if room < 0:
            return
        by_id = self._sort_deliveries(self._take_deliveries(room)) if room > 0 else {}
        if not batch and not by_id:
            return
        try:
            name = (
                "jq.finish_and_claim" if batch and by_id else "jq.claim" if by_id else "jq.finish"
            )
            attributes = {"jq.jobs": len(by_id), "jq.outcomes": len(batch), "jq.worker": self.name}
            with tracing.span(name, attributes):
                result = self.store.job_finish_and_claim(
                    [f for _, f in batch], list(by_id), self.name, self.settings.lease_ttl
                )
        except ServiceUnavailable:
            self._put_back(by_id)  # claimed again once PostgreSQL is back; outcomes stay unsaved
            raise
        except (StoreError, Conflict) as exc:  # refused, not lost: record and claim each alone
            log.warning(
                "event=cycle_refused outcomes=%d claims=%d error=%r action=separately",
                len(batch),
                len(by_id),
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
            if batch:
                try:
                    self._finish()
                except JqError:
                    self._put_back(by_id)
                    raise
            self._claim(by_id)
            return
        self._finished(batch, result.states)
        self._after_cycle_claim(by_id, result)

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
        running = RunningJob(job, limit=self._time_limit(job))  # counted from its start
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
        if not handler.is_async:
            self._waiting.append(running)  # until a slot starts it (see intake._pace)
            self._waiting_types[job.job_type] += 1
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

    # -- outcomes -----------------------------------------------------------------------------

    def _collect_outcomes(self) -> list[tuple[RunningJob, Finish]]:
        """The outcomes reported since the last cycle, sanitised, after any whose commit failed."""
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
        self._unsaved = batch
        return batch

    def _finish(self) -> None:
        """Record the outcomes at hand alone (shutdown, and the fallback of _cycle)."""
        batch = self._collect_outcomes()
        if not batch:
            return
        with tracing.span("jq.finish", {"jq.jobs": len(batch), "jq.worker": self.name}):
            states = self.store.job_finish([f for _, f in batch], self.name)
        self._finished(batch, states)

    def _finished(self, batch: list[tuple[RunningJob, Finish]], states: dict[int, str]) -> None:
        self._unsaved = []
        self._completed = Counter()
        for running, outcome in batch:
            if running.began and running.ended is not None:
                self.runtimes.observe(running.job.job_type, running.ended - running.started)
            self._settled(running, outcome, states.get(outcome.job_id))
        if self._completed:
            events = Counter({f"completed@{q}": n for q, n in self._completed.items()})
            events["completed"] = self._completed.total()  # and per queue, for `jq queue list`
            self.counters.add_many(events)
        if batch:
            with self._progress_lock:
                for _, outcome in batch:
                    if outcome.job_id not in self.running:
                        self._progress.pop(outcome.job_id, None)
            self._resize_prefetch()

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
            self._completed[job.queue] += 1  # counted once per batch: see _finished
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
        self._cycle()
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
