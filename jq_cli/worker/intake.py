"""The worker's intake: deliveries from the broker become claimed jobs. It decides how many to
claim each round (claim_ahead: by measured run time), takes the highest priorities from what has
been delivered, acknowledges a delivery once its claim is committed, counts the duplicates, and
sizes the broker's prefetch window. A mixin of the Dispatcher, on the dispatcher's thread."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque

from jq_cli.broker import Consumer, Delivery
from jq_cli.config import Settings
from jq_cli.errors import JqError, ServiceUnavailable
from jq_cli.observe import tracing
from jq_cli.store import CycleResult, Finish, Store
from jq_cli.store.work import ClaimedJob
from jq_cli.worker.claim_ahead import FINISH_LINGER, RunTimes, pace, should_resize, wanted_prefetch
from jq_cli.worker.executor import Executor
from jq_cli.worker.pools import RunningJob

log = logging.getLogger("jq.worker")
PREFETCH_SHRINK_EVERY = 0.5  # seconds between changes that shrink the broker's prefetch window


class Intake:
    settings: Settings
    name: str
    concurrency: int
    prefetch: int
    _prefetch_fixed: bool
    store: Store
    consumer: Consumer
    executor: Executor
    stopping: threading.Event
    running: dict[int, RunningJob]
    runtimes: RunTimes
    next_due: float | None
    poison: int
    duplicates: int
    _inbox: list[Delivery]
    _inbox_lock: threading.Lock
    _waiting: deque[RunningJob]
    _waiting_types: Counter[str]
    _next_prefetch: float

    def _begin(self, job: ClaimedJob) -> None:
        raise NotImplementedError  # the Dispatcher's: hands a claimed job to a pool

    def _report(self, running: RunningJob, finish: Finish) -> None:
        raise NotImplementedError  # the Dispatcher's: takes one outcome

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

    def _pace(self, batch: list[tuple[RunningJob, Finish]]) -> int:
        """How many deliveries to claim now, or -1 when this round should not go to PostgreSQL
        (claim_ahead.pace: the outcomes wait for the pool's next claim)."""
        waiting = self._waiting_types
        while self._waiting and (self._waiting[0].began or self._waiting[0].done):
            # Started (slots take jobs in claim order) or ended. One in the middle that a slot
            # started a moment early counts as waiting until those before it have gone.
            job_type = self._waiting.popleft().job.job_type
            waiting[job_type] -= 1
            if not waiting[job_type]:
                del waiting[job_type]
        now = time.monotonic()
        oldest = min((r.ended or now for r, _ in batch), default=now)
        step = pace(
            self.runtimes,
            self.concurrency,
            busy=len(self.running) - len(batch) - len(self._waiting),
            waiting=waiting,
            inbox=len(self._inbox),
            outcomes=len(batch),
            oldest_outcome_age=now - oldest,
            stopping=self.stopping.is_set(),
        )
        if not step.now:
            self.next_due = oldest + FINISH_LINGER if batch else None
            return -1
        self.next_due = None
        return step.claim

    def _sort_deliveries(self, deliveries: list[Delivery]) -> dict[int, list[Delivery]]:
        """Deliveries by the job id they carry; a message that carries none is dead-lettered."""
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
        return by_id

    def _after_cycle_claim(self, by_id: dict[int, list[Delivery]], result: CycleResult) -> None:
        if not by_id:
            return
        if not result.limited:
            self._claimed(by_id, result.claimed)
            return
        # A limit exists: the gated claim took nothing it would count; the limited claim decides.
        won = {job.id for job in result.claimed}
        if won:
            self._claimed({i: ds for i, ds in by_id.items() if i in won}, result.claimed)
        self._claim({i: ds for i, ds in by_id.items() if i not in won})

    def _put_back(self, by_id: dict[int, list[Delivery]]) -> None:
        if by_id:
            with self._inbox_lock:  # try these again once Postgres is back
                self._inbox[:0] = [d for ds in by_id.values() for d in ds]

    def _claim(self, by_id: dict[int, list[Delivery]]) -> None:
        """Claim alone (the fallback of _cycle, and the claim under limits)."""
        if not by_id:
            return
        try:
            # The claim obeys queue pauses and limits (store/queues.py, job_claim_gated).
            with tracing.span("jq.claim", {"jq.jobs": len(by_id), "jq.worker": self.name}):
                claimed = self.store.job_claim_gated(
                    list(by_id), self.name, self.settings.lease_ttl
                )
        except ServiceUnavailable:
            self._put_back(by_id)
            raise
        except Exception:
            # Not a lost connection: the claim itself failed. Hand the messages back to the broker
            # rather than hold them (held, they would fill the prefetch window and stall us).
            for ds in by_id.values():
                for d in ds:
                    self.consumer.reject(d.generation, [d.tag], requeue=True)
            raise
        self._claimed(by_id, claimed)

    def _claimed(self, by_id: dict[int, list[Delivery]], claimed: list[ClaimedJob]) -> None:
        # The claim is committed: from here the lease carries the job, so the message can go. First
        # of all, so that nothing below can leave deliveries unacknowledged.
        deliveries = [d for ds in by_id.values() for d in ds]
        self.consumer.ack(deliveries[0].generation, [d.tag for d in deliveries])
        self.duplicates += sum(len(ds) - 1 for ds in by_id.values())
        won = set()
        # Highest priority first into the pool's queue (RETURNING gives the rows in no order).
        for job in sorted(claimed, key=lambda j: -j.priority):
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

    def _count_duplicates(self, ids: list[int]) -> None:
        states = self.store.job_states(ids)
        missing = [i for i in ids if i not in states]
        self.duplicates += len(ids) - len(missing)
        if missing:
            self.poison += len(missing)
            log.warning("event=unknown_job_message ids=%s action=dropped", missing[:10])

    def _resize_prefetch(self) -> None:
        """A worker left at the default prefetch sizes the broker's window by measured run time
        (claim_ahead.wanted_prefetch); deliveries beyond a shrunken window go back to the broker."""
        if self._prefetch_fixed:
            return
        wanted = wanted_prefetch(self.runtimes, self.concurrency)
        if not should_resize(self.prefetch, wanted):
            return
        # Growing at once (each step at least doubles it: a handful of steps from the slots to the
        # most), so that a worker starting on a backlog is soon at speed; shrinking at most every
        # PREFETCH_SHRINK_EVERY, so a mean that swings does not resend basic.qos again and again.
        now = time.monotonic()
        shrink = wanted < self.prefetch
        if shrink and now < self._next_prefetch:
            return
        self._next_prefetch = now + PREFETCH_SHRINK_EVERY
        self.prefetch = wanted
        self.consumer.set_prefetch(wanted)
        log.info("event=prefetch_resized prefetch=%d", wanted)
        if shrink:
            with self._inbox_lock:
                self._inbox.sort(key=lambda d: -d.priority)
                self._inbox, extra = self._inbox[:wanted], self._inbox[wanted:]
            for d in extra:
                self.consumer.reject(d.generation, [d.tag], requeue=True)


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
