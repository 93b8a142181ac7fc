"""The worker's intake: deliveries from the broker become claimed jobs. It decides how many to
claim each round (claim_ahead: by measured run time), takes the highest priorities from what has
been delivered, acknowledges a delivery once its claim is committed, counts the duplicates, and
sizes the broker's prefetch window. On the dispatcher's thread; the consumer thread only fills the
inbox (jq_cli.worker.handoff.Inbox).

In and out, round by round (jq_cli.worker.dispatcher.Dispatcher.cycle):
  room(outcomes, running)   how many to claim now, or -1: not this round
  take(room)                the deliveries to claim, by job id (messages of no job dead-lettered)
  claimed(by_id, jobs)      once a claim is committed: acknowledged, a Claimed out
  claim(by_id)              the claim alone (a fallback, and the claim under limits): a Claimed
  count_lost(ids)           after the jobs started: the delivered ids nobody claimed, counted
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from jq_cli.broker import Delivery
from jq_cli.errors import JqError, ServiceUnavailable
from jq_cli.observe import tracing
from jq_cli.store.work import ClaimedJob
from jq_cli.worker.claim_ahead import FINISH_LINGER, RunTimes, pace, should_resize, wanted_prefetch
from jq_cli.worker.handoff import Inbox
from jq_cli.worker.pools import Reported, RunningJob

log = logging.getLogger("jq.worker")
PREFETCH_SHRINK_EVERY = 0.5  # seconds between changes that shrink the broker's prefetch window

Deliveries = dict[int, list[Delivery]]  # by the job id they carry (a duplicate: two for one id)


class Acks(Protocol):
    """What the intake asks of the broker's consumer (jq_cli.broker.Consumer)."""

    @property
    def generation(self) -> int: ...
    def ack(self, generation: int, tags: Sequence[int]) -> None: ...
    def reject(self, generation: int, tags: Sequence[int], requeue: bool) -> None: ...
    def set_prefetch(self, prefetch: int) -> None: ...


class ClaimStore(Protocol):
    """What the intake asks of PostgreSQL (jq_cli.store.Store)."""

    def job_claim_gated(
        self, ids: Sequence[int], worker: str, lease_ttl: float
    ) -> list[ClaimedJob]: ...
    def job_states(self, ids: Sequence[int]) -> dict[int, str]: ...


@dataclass(slots=True)
class Claimed:
    """What a committed claim gave: the jobs won, the highest priority first, and the delivered
    ids it did not take (duplicates, or messages of no job: count_lost tells which)."""

    jobs: list[ClaimedJob]
    lost: list[int]


NOTHING = Claimed([], [])


class Intake:
    def __init__(
        self,
        inbox: Inbox,
        consumer: Acks,
        store: ClaimStore,
        runtimes: RunTimes,
        *,
        worker: str,
        lease_ttl: float,
        concurrency: int,
        prefetch: int,
        prefetch_fixed: bool,
    ) -> None:
        self.inbox = inbox
        self.consumer = consumer
        self.store = store
        self.runtimes = runtimes  # measured by the dispatcher, read here
        self.worker = worker
        self.lease_ttl = lease_ttl
        self.concurrency = concurrency
        self.prefetch = prefetch  # the broker's window as it is now
        self.prefetch_fixed = prefetch_fixed  # set by the user: never resized
        self.duplicates = 0  # deliveries of a job someone else claimed (or ended) first
        self.poison = 0  # messages that carry no job of ours, dead-lettered or dropped
        self.next_due: float | None = None  # when outcomes held back must go (see room)
        self._waiting: deque[RunningJob] = deque()  # claimed, in the pool's queue, not started
        self._waiting_types: Counter[str] = Counter()  # how many of each type _waiting holds
        self._next_prefetch = 0.0

    # -- how many, and which --------------------------------------------------------------------

    def queued(self, running: RunningJob) -> None:
        """A claimed job went into a sync pool's queue: it waits for a slot (see room)."""
        self._waiting.append(running)
        self._waiting_types[running.job.job_type] += 1

    def room(self, outcomes: list[Reported], running: int, stopping: bool) -> int:
        """How many deliveries to claim now, or -1 when this round should not go to PostgreSQL
        (claim_ahead.pace: the outcomes wait for the pool's next claim). `running`: the jobs the
        worker holds, those with an outcome at hand included."""
        waiting = self._waiting_types
        while self._waiting and (self._waiting[0].began or self._waiting[0].done):
            # Started (slots take jobs in claim order) or ended. One in the middle that a slot
            # started a moment early counts as waiting until those before it have gone.
            job_type = self._waiting.popleft().job.job_type
            waiting[job_type] -= 1
            if not waiting[job_type]:
                del waiting[job_type]
        now = time.monotonic()
        oldest = min((r.ended or now for r, _ in outcomes), default=now)
        step = pace(
            self.runtimes,
            self.concurrency,
            busy=running - len(outcomes) - len(self._waiting),
            waiting=waiting,
            inbox=len(self.inbox),
            outcomes=len(outcomes),
            oldest_outcome_age=now - oldest,
            stopping=stopping,
        )
        if not step.now:
            self.next_due = oldest + FINISH_LINGER if outcomes else None
            return -1
        self.next_due = None
        return step.claim

    def take(self, n: int) -> Deliveries:
        """Up to `n` deliveries, the highest priority first, by the job id they carry; a message
        that carries none is dead-lettered."""
        if n <= 0:
            return {}
        by_id: Deliveries = {}
        poison: list[Delivery] = []
        for d in self.inbox.take(n, self.consumer.generation):
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

    def put_back(self, by_id: Deliveries) -> None:
        """Taken but not claimed (PostgreSQL is away): claimed again once it is back."""
        if by_id:
            self.inbox.put_back([d for ds in by_id.values() for d in ds])

    # -- claimed ----------------------------------------------------------------------------------

    def claimed(self, by_id: Deliveries, jobs: list[ClaimedJob]) -> Claimed:
        """A claim of `by_id` is committed and gave `jobs`: from here the lease carries each job,
        so every delivery goes (first of all, so that nothing after can leave one unacknowledged).
        Returns the jobs, highest priority first (RETURNING gives the rows in no order), and the
        ids not won."""
        if not by_id:
            return NOTHING
        deliveries = [d for ds in by_id.values() for d in ds]
        self.consumer.ack(deliveries[0].generation, [d.tag for d in deliveries])
        self.duplicates += len(deliveries) - len(by_id)  # two messages of one job: one is spare
        if len(jobs) > 1:
            jobs = sorted(jobs, key=_by_priority)
        won = {job.id for job in jobs}
        return Claimed(jobs, [i for i in by_id if i not in won])

    def claim(self, by_id: Deliveries) -> Claimed:
        """Claim alone (the fallback of the cycle, and the claim under limits). The claim obeys
        queue pauses and limits (store/queues.py, job_claim_gated)."""
        if not by_id:
            return NOTHING
        try:
            with tracing.span("jq.claim", {"jq.jobs": len(by_id), "jq.worker": self.worker}):
                jobs = self.store.job_claim_gated(list(by_id), self.worker, self.lease_ttl)
        except ServiceUnavailable:
            self.put_back(by_id)
            raise
        except Exception:
            # Not a lost connection: the claim itself failed. Hand the messages back to the broker
            # rather than hold them (held, they would fill the prefetch window and stall us).
            for ds in by_id.values():
                for d in ds:
                    self.consumer.reject(d.generation, [d.tag], requeue=True)
            raise
        return self.claimed(by_id, jobs)

    def count_lost(self, ids: list[int]) -> None:
        """Delivered ids no claim took: duplicates of jobs claimed elsewhere or ended, or poison
        (no such job). Counting only: their messages are settled already."""
        if not ids:
            return
        try:
            states = self.store.job_states(ids)
        except JqError:
            self.duplicates += len(ids)
            return
        missing = [i for i in ids if i not in states]
        self.duplicates += len(ids) - len(missing)
        if missing:
            self.poison += len(missing)
            log.warning("event=unknown_job_message ids=%s action=dropped", missing[:10])

    # -- the broker's window ----------------------------------------------------------------------

    def resize_prefetch(self) -> None:
        """A worker left at the default prefetch sizes the broker's window by measured run time
        (claim_ahead.wanted_prefetch); deliveries beyond a shrunken window go back to the broker."""
        if self.prefetch_fixed:
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
            for d in self.inbox.trim(wanted):
                self.consumer.reject(d.generation, [d.tag], requeue=True)

    def resize(self, concurrency: int) -> None:
        """The worker's slots changed (a reload): a window that follows them follows."""
        self.concurrency = concurrency
        if not self.prefetch_fixed:
            self.prefetch = concurrency
            self.consumer.set_prefetch(concurrency)

    def requeue_all(self) -> None:
        """Draining: every delivery not claimed goes back to the broker."""
        for d in self.inbox.take_all():
            self.consumer.reject(d.generation, [d.tag], requeue=True)


def _by_priority(job: ClaimedJob) -> int:
    return -job.priority


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
