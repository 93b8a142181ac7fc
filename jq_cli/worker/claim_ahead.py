"""How much a worker claims ahead of its free slots, by measured run time.

A worker that claims only for its free slots runs its pool dry between claims and pays a round
trip and a commit for every one or two jobs. One that claims far ahead holds jobs a higher-priority
job submitted later would have to wait behind. So a worker claims ahead by time, not by count:
what it holds claimed but not yet started may take at most AHEAD_BUDGET seconds of its slots'
time, judged by each job type's measured run time. Short jobs are claimed in large batches; a
type that runs for seconds is claimed only for free slots, as before. The same figure sizes the
broker's prefetch window, so that enough deliveries are at hand to claim from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

AHEAD_BUDGET = 0.05  # seconds of queued work a job claimed now may wait behind (about 50 ms)
MAX_AHEAD = 1000  # jobs claimed ahead at most, whatever the run time (bounds a batch's size)
EWMA_WEIGHT = 0.05  # the weight of each new run time in a type's moving mean
FINISH_LINGER = 0.02  # seconds an outcome may wait to join a busy worker's next claim
PREFETCH_HYSTERESIS = 2.0  # change the broker's window only when the wanted size moves this much


class RunTimes:
    """Moving means of handler run time (seconds), per job type and over all types. Only the
    dispatcher's thread calls it."""

    def __init__(self) -> None:
        self._by_type: dict[str, float] = {}
        self._overall: float | None = None

    def observe(self, job_type: str, seconds: float) -> None:
        seconds = max(seconds, 1e-6)
        mean = self._by_type.get(job_type)
        self._by_type[job_type] = seconds if mean is None else mean + EWMA_WEIGHT * (seconds - mean)
        overall = self._overall
        self._overall = seconds if overall is None else overall + EWMA_WEIGHT * (seconds - overall)

    def mean(self, job_type: str | None = None) -> float | None:
        """The type's mean run time; the mean over all types for a type not seen yet (or None
        before any job ran)."""
        if job_type is not None and job_type in self._by_type:
            return self._by_type[job_type]
        return self._overall


def queued_work(runtimes: RunTimes, waiting: Mapping[str, int]) -> float:
    """Seconds of handler time held by jobs claimed but not started (`waiting`: how many of each
    type)."""
    overall = runtimes.mean()
    if overall is None:
        return 0.0
    return sum((runtimes.mean(t) or overall) * n for t, n in waiting.items())


def ahead_allowed(runtimes: RunTimes, concurrency: int, waiting: Mapping[str, int]) -> int:
    """How many more jobs may be claimed beyond free slots, given the jobs already claimed but not
    started (`waiting`: how many of each type): the work they hold plus the new ones must fit in
    AHEAD_BUDGET of the pool's time. Nothing ahead until a run time has been measured."""
    overall = runtimes.mean()
    if overall is None:
        return 0
    room = AHEAD_BUDGET * concurrency - queued_work(runtimes, waiting)
    if room <= 0:
        return 0
    return max(0, min(MAX_AHEAD - sum(waiting.values()), math.floor(room / overall)))


@dataclass(frozen=True)
class Pace:
    """What the dispatcher does this time round."""

    claim: int  # how many deliveries it may claim
    now: bool  # whether to go to PostgreSQL now (else the outcomes wait, up to FINISH_LINGER)


def pace(
    runtimes: RunTimes,
    concurrency: int,
    *,
    busy: int,
    waiting: Mapping[str, int],
    inbox: int,
    outcomes: int,
    oldest_outcome_age: float,
    stopping: bool,
) -> Pace:
    """Group commit without a timer per job: a busy pool with work claimed ahead has no need of
    a round trip for each outcome, so outcomes wait (FINISH_LINGER at most) until the pool wants
    more work, and then go with that claim in one statement. An idle worker, an idle slot with a
    delivery at hand, or a pool whose claimed work runs low goes now."""
    held = sum(waiting.values())
    idle_slots = max(0, concurrency - busy - held)
    claim = 0 if stopping else idle_slots + ahead_allowed(runtimes, concurrency, waiting)
    hungry = (
        inbox > 0
        and claim > 0
        and (idle_slots > 0 or queued_work(runtimes, waiting) < AHEAD_BUDGET * concurrency / 2)
    )
    flush = outcomes > 0 and (
        stopping
        or busy + held == 0  # nothing else will report soon: do not keep these waiting
        or oldest_outcome_age >= FINISH_LINGER
        or outcomes >= MAX_AHEAD
    )
    return Pace(claim, hungry or flush)


def wanted_prefetch(runtimes: RunTimes, concurrency: int) -> int:
    """The broker's prefetch window for a worker left at its default: its slots plus what it may
    claim ahead (so a claim finds enough deliveries at hand), no more: an unclaimed delivery waits
    unacknowledged, and RabbitMQ closes a channel whose delivery waits past its consumer_timeout."""
    overall = runtimes.mean()
    if overall is None:
        return concurrency
    ahead = min(MAX_AHEAD, math.floor(AHEAD_BUDGET * concurrency / overall))
    return concurrency + ahead


def should_resize(current: int, wanted: int) -> bool:
    """Resize the window only on a large move, so a drifting mean does not resend basic.qos."""
    return wanted >= current * PREFETCH_HYSTERESIS or wanted * PREFETCH_HYSTERESIS <= current
