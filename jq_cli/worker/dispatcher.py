"""The worker's dispatcher: the one thread that owns the worker's Postgres connection. Each round
it records the outcomes at hand and claims deliveries in one statement (group commit; what it
claims and when is the intake's, jq_cli/worker/intake.py), hands jobs to a pool, renews leases
(jq_cli/worker/leases.py), and stops handlers past their time limit or a cancel request. Every
step may fail on a query; each one leaves its work to be retried or released, so that consumption
resumes as soon as PostgreSQL answers again.

A claimed job, followed through it: the intake's Claimed → begin() makes its RunningJob (the one
record of it, in `running`) and submits it to a pool → the pool runs it through the Executor and
reports its Finish to the Outbox → the next cycle() collects it, records it with the next claim,
and settles it (counters, metrics) once PostgreSQL has it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from jq_cli.config import Settings
from jq_cli.errors import Conflict, JqError, ServiceUnavailable, StoreError
from jq_cli.handlers.registry import ForcedCancel, JobTimeout, Registry
from jq_cli.observe import tracing
from jq_cli.observe.telemetry import CounterBuffer
from jq_cli.store import CycleResult, Finish
from jq_cli.store.work import ClaimedJob, HandedBack
from jq_cli.worker.cancel_listener import ask_to_stop
from jq_cli.worker.claim_ahead import RunTimes
from jq_cli.worker.executor import Executor
from jq_cli.worker.handoff import Outbox, Progress, Wake
from jq_cli.worker.intake import Claimed, ClaimStore, Deliveries, Intake
from jq_cli.worker.leases import Renewals
from jq_cli.worker.pools import Pool, Pools, Reported, RunningJob

if TYPE_CHECKING:  # prometheus-client is imported only by a daemon started with --metrics-port
    from jq_cli.observe.metrics import DaemonMetrics

log = logging.getLogger("jq.worker")
PROGRESS_FLUSH = 0.5  # seconds between writes of handlers' progress
TYPES_REFRESH = 5.0  # seconds between refreshes of this worker's row of types in PostgreSQL
TYPES_FRESH = 20.0  # a worker whose types were refreshed this recently counts as live


class DispatchStore(ClaimStore, Protocol):
    """What the dispatcher asks of PostgreSQL (jq_cli.store.Store)."""

    def job_finish_and_claim(
        self, finishes: Sequence[Finish], ids: Sequence[int], worker: str, lease_ttl: float
    ) -> CycleResult: ...
    def job_finish(self, finishes: Sequence[Finish], worker: str) -> dict[int, str]: ...
    def job_lease_renew(
        self, ids: Sequence[int], worker: str, lease_ttl: float
    ) -> dict[int, bool]: ...
    def job_progress(self, updates: dict[int, tuple[float, str | None]], worker: str) -> None: ...
    def job_type_live_elsewhere(
        self, job_types: Sequence[str], worker: str, within: float
    ) -> set[str]: ...
    def job_hand_over(
        self, delays: dict[int, tuple[int, float]], worker: str, note: str
    ) -> list[HandedBack]: ...
    def worker_types_refresh(self, worker: str) -> None: ...


class Cancels(Protocol):
    """Where cancels of running jobs are heard (jq_cli.worker.cancel_listener.CancelListener)."""

    def take(self) -> list[int]: ...


class Dispatcher:
    """The hot path of a worker (see the module docstring); jq_cli.worker.daemon.Worker makes it,
    runs its rounds and adds the life cycle, signals and telemetry."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry,
        name: str,
        store: DispatchStore,
        intake: Intake,
        pools: Pools,
        executor: Executor,
        outbox: Outbox,
        progress: Progress,
        cancels: Cancels,
        runtimes: RunTimes,
        counters: CounterBuffer,
        wake: Wake,
        stopping: threading.Event,
        metrics: DaemonMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.name = name
        self.store = store
        self.intake = intake
        self.pools = pools
        self.executor = executor
        self.outbox = outbox
        self.progress = progress
        self.cancels = cancels
        self.runtimes = runtimes
        self.counters = counters
        self.wake = wake
        self.stopping = stopping
        self.metrics = metrics
        self.lease_ttl = settings.lease_ttl
        self.renewals = Renewals(settings.lease_ttl)
        self.running: dict[int, RunningJob] = {}  # by job id: every job this worker holds
        self.processed = self.failed = self.timeouts = self.handed_over = 0
        self._stale: list[RunningJob] = []  # older runs of jobs that came back to us, being stopped
        self._unknown: list[RunningJob] = []  # claimed jobs of a type this worker lacks
        self._next_types = self._next_progress = 0.0
        self._completed: Counter[str] = Counter()  # per queue, in the batch being settled
        # Bound once: called per job.
        self._report = outbox.report
        self._queued = intake.queued
        self._handler_of = registry.get

    # -- one round ----------------------------------------------------------------------------

    def dispatch_once(self, now: float) -> None:
        self.cycle()
        self._hand_over()
        self._refresh_types(now)
        self._apply_cancels(now)
        self._enforce_limits(now)
        if now >= self._next_progress:
            self._flush_progress()
            self._next_progress = now + PROGRESS_FLUSH
        self.renew_leases(now)

    # -- the cycle: outcomes recorded and deliveries claimed ----------------------------------

    def cycle(self) -> None:
        """One round trip: the outcomes at hand and a claim of the deliveries there is room for,
        committed together (store/cycle.py). A refusal of either falls back to recording the
        outcomes alone (row by row if need be) and claiming alone."""
        self.wake.rearm()  # before anything is read: whatever comes later wakes us again
        intake = self.intake
        batch = self.outbox.collect()
        room = intake.room(batch, len(self.running), self.stopping.is_set())
        if room < 0:
            return
        by_id = intake.take(room)
        if not batch and not by_id:
            return
        try:
            name = (
                "jq.finish_and_claim" if batch and by_id else "jq.claim" if by_id else "jq.finish"
            )
            attributes = {"jq.jobs": len(by_id), "jq.outcomes": len(batch), "jq.worker": self.name}
            with tracing.span(name, attributes):
                result = self.store.job_finish_and_claim(
                    [f for _, f in batch], list(by_id), self.name, self.lease_ttl
                )
        except ServiceUnavailable:
            intake.put_back(by_id)  # claimed again once PostgreSQL is back; outcomes stay unsaved
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
                    self.finish()
                except JqError:
                    intake.put_back(by_id)
                    raise
            self._start(intake.claim(by_id))
            return
        self._finished(batch, result.states)
        if by_id:
            self._start_cycle_claim(by_id, result)

    def _start_cycle_claim(self, by_id: Deliveries, result: CycleResult) -> None:
        intake = self.intake
        if not result.limited:
            self._start(intake.claimed(by_id, result.claimed))
            return
        # A limit exists: the gated claim took nothing it would count; the limited claim decides.
        won = {job.id for job in result.claimed}
        if won:
            self._start(
                intake.claimed({i: ds for i, ds in by_id.items() if i in won}, result.claimed)
            )
        self._start(intake.claim({i: ds for i, ds in by_id.items() if i not in won}))

    def _start(self, claimed: Claimed) -> None:
        """Start the jobs of a committed claim, then count the deliveries it did not win."""
        begin = self.begin
        for job in claimed.jobs:
            try:
                begin(job)
            except Exception as exc:  # a bug here must still end the attempt, not strand the job
                log.exception("event=start_failed job=%d", job.id)
                running = self.running.setdefault(job.id, RunningJob(job))
                running.leased = running.started
                self._report(running, self.executor.failure(job, exc))
        self.intake.count_lost(claimed.lost)

    def begin(self, job: ClaimedJob) -> RunningJob:
        """A claimed job becomes a running one: recorded in `running` and handed to a pool (or,
        of a type this worker lacks, kept to be handed over)."""
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
        running.leased = running.started  # the claim's commit has returned: the lease is set
        if self.metrics is not None:
            self.metrics.job_started(job.job_type, job.queue, job.waited)
        if job.cancel_requested:
            running.cancel.set()
            running.cancel_seen = running.started
        self.running[job.id] = running
        handler = self._handler_of(job.job_type)
        if handler is None:
            # A rolling deploy: this worker lacks the type. It is handed over, not failed.
            self._unknown.append(running)
            return running
        if handler.is_async:
            self.pools.event_loop.submit(running)
        else:
            self._queued(running)  # waits for a slot (see Intake.room)
            self.pools.sync.submit(running)
        return running

    def _time_limit(self, job: ClaimedJob) -> float | None:
        """The job's own limit, else its handler's declared one, else the worker's default."""
        if job.time_limit:
            return job.time_limit
        handler = self._handler_of(job.job_type)
        if handler is not None and handler.defaults.time_limit:
            return handler.defaults.time_limit
        return self.settings.worker_time_limit or None

    # -- outcomes -----------------------------------------------------------------------------

    def finish(self) -> None:
        """Record the outcomes at hand alone (shutdown, and the fallback of cycle)."""
        batch = self.outbox.collect()
        if not batch:
            return
        with tracing.span("jq.finish", {"jq.jobs": len(batch), "jq.worker": self.name}):
            states = self.store.job_finish([f for _, f in batch], self.name)
        self._finished(batch, states)

    def _finished(self, batch: list[Reported], states: dict[int, str]) -> None:
        """PostgreSQL has the batch: `states` holds the new state of each outcome it let in."""
        self.outbox.saved()
        if not batch:
            return
        self._completed = Counter()
        observe = self.runtimes.observe
        settled = self._settled
        for running, outcome in batch:
            if running.began and running.ended is not None:
                observe(running.job.job_type, running.ended - running.started)
            settled(running, outcome, states.get(outcome.job_id))
        if self._completed:
            events = Counter({f"completed@{q}": n for q, n in self._completed.items()})
            events["completed"] = self._completed.total()  # and per queue, for `jq queue list`
            self.counters.add_many(events)
        running_now = self.running
        self.progress.forget(f.job_id for _, f in batch if f.job_id not in running_now)
        self.intake.resize_prefetch()

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
        updates = self.progress.take()
        if updates:
            try:
                self.store.job_progress(updates, self.name)
            except JqError:
                self.progress.restore(updates)
                raise

    # -- jobs of a type this worker lacks -------------------------------------------------------

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

    # -- leases, cancels and time limits ------------------------------------------------------

    def _apply_cancels(self, now: float) -> None:
        """Ask the handlers of the jobs whose cancel the listener heard to stop."""
        for job_id in self.cancels.take():
            running = self.running.get(job_id)
            if running is not None and not running.done:
                ask_to_stop(running, now)

    def renew_leases(self, now: float) -> None:
        """Extend the leases of the running jobs whose renewal is due (each a third of the lease
        after its claim or its last renewal: jq_cli.worker.leases), in one statement, and learn of
        their cancels as well, should the listener have missed one. Cancels need no renewal to
        arrive: the listener hears them (_apply_cancels)."""
        renewals = self.renewals
        if now < renewals.next_check:  # most rounds: nothing can be due yet
            return
        due = renewals.due(self.running.values(), now)
        if not due:
            return
        try:
            still_ours = self.store.job_lease_renew([r.id for r in due], self.name, self.lease_ttl)
        except BaseException:
            renewals.failed()
            raise
        renewed = time.monotonic()
        renewals.renewed(due, renewed)
        for running in due:
            cancel = still_ours.get(running.id)
            if cancel is None:
                running.lost = True
                log.warning("event=lease_lost job=%d action=handler_asked_to_stop", running.id)
            elif not cancel:
                continue
            ask_to_stop(running, renewed)  # cancelled, or someone else may run it now

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

    def _pool_of(self, running: RunningJob) -> Pool:
        handler = self._handler_of(running.job.job_type)
        return self.pools.of(handler is not None and handler.is_async)
