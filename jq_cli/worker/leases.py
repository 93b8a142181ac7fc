"""When a worker renews its jobs' leases: each job a third of the lease after its own claim or
its last renewal, never sooner, and the renewals that fall due close together in one statement.

A renewal is a write of the job's row (a HOT update: store/work.py, job_lease_renew), so a worker
renews no more often than it must. One timer for all jobs renewed a job claimed just before its
tick at once, a few milliseconds after the claim had set the lease; the schedule goes by each
job's own lease instead. To keep renewals batched, a renewal that falls due waits up to GRAIN of
a third for those falling due after it: a burst of claims is renewed in one statement, and a
steady stream of long jobs in one statement per GRAIN of a third, at most GRAIN late.
"""

from __future__ import annotations

from collections.abc import Iterable

from jq_cli.worker.pools import RunningJob

GRAIN = 0.1  # of a third of the lease: how late a renewal may be, so that it joins others


class Renewals:
    """The renewal schedule of one worker's running jobs (the dispatcher's thread). A job carries
    its own time (RunningJob.leased); the schedule only says which are due and when to look
    again, so that a round with nothing due costs a comparison."""

    def __init__(self, lease_ttl: float) -> None:
        self.every = lease_ttl / 3
        self.grain = self.every * GRAIN
        self.next_check = 0.0  # no job is due before this

    def due(self, running: Iterable[RunningJob], now: float) -> list[RunningJob]:
        """The jobs whose renewal is due at `now` (none lost: the scheduler has those), and when
        to look again: when the next one falls due, plus the grain."""
        if now < self.next_check:
            return []
        due: list[RunningJob] = []
        every = self.every
        earliest = now + every  # a job claimed from now on falls due after this
        for r in running:
            if r.lost:
                continue
            at = r.leased + every
            if at <= now:
                due.append(r)
            elif at < earliest:
                earliest = at
        self.next_check = earliest + self.grain
        return due

    def renewed(self, jobs: Iterable[RunningJob], at: float) -> None:
        """Their leases were renewed by a statement that returned at `at`."""
        for r in jobs:
            r.leased = at

    def failed(self) -> None:
        """The renewal did not go through: try again on the next round."""
        self.next_check = 0.0
