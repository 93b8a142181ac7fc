"""The lease renewal schedule (jq_cli.worker.leases): each job a third of the lease after its own
claim or last renewal, never sooner; the renewals falling due together in one statement."""

from __future__ import annotations

import itertools
import random
import time

from jq_cli.worker.leases import GRAIN, Renewals
from jq_cli.worker.pools import RunningJob

from .worker_standins import claimed_job, delivery, worker_parts

TTL = 6.0  # a third: 2 s; the grain: 0.2 s


def job(job_id: int, leased: float) -> RunningJob:
    running = RunningJob(claimed_job(job_id))
    running.leased = leased
    return running


def test_a_job_claimed_just_before_another_falls_due_is_not_renewed_with_it():
    # One timer for all jobs renewed b at a's tick, 10 ms after its claim: two leases 10 ms apart.
    renewals = Renewals(TTL)
    a = job(1, leased=0.0)
    assert renewals.due([a], 0.0) == []
    b = job(2, leased=2.19)
    assert renewals.due([a, b], 2.1) == []  # nothing is due before a's third and the grain
    assert renewals.due([a, b], 2.2) == [a]
    renewals.renewed([a], 2.2)
    assert renewals.due([a, b], 4.18) == []
    # b's own third after its claim; a falls due 10 ms later, within the grain: one statement.
    assert renewals.due([a, b], 4.39) == [a, b]


def test_renewals_falling_due_within_the_grain_go_in_one_statement():
    renewals = Renewals(TTL)
    burst = [job(i, leased=i * 0.03) for i in range(6)]  # claimed over 150 ms
    assert renewals.due(burst, 0.2) == []
    assert renewals.due(burst, 2.0) == []  # the first falls due: it waits the grain for the others
    assert renewals.due(burst, 2.2) == burst


def test_a_lost_job_is_not_renewed():
    renewals = Renewals(TTL)
    a, b = job(1, 0.0), job(2, 0.0)
    b.lost = True  # rescued while we were cut off: the scheduler has it
    assert renewals.due([a, b], 3.0) == [a]


def test_a_failed_renewal_is_tried_again_on_the_next_round():
    renewals = Renewals(TTL)
    a = job(1, 0.0)
    assert renewals.due([a], 2.5) == [a]
    renewals.failed()
    assert renewals.due([a], 2.6) == [a]


class OneTimer:
    """The schedule the worker had before: every running job renewed every third of the lease,
    on one timer for all, whenever each was claimed."""

    def __init__(self, lease_ttl: float) -> None:
        self.every = lease_ttl / 3
        self.next = 0.0

    def due(self, running, now: float) -> list[RunningJob]:
        if now < self.next:
            return []
        self.next = now + self.every
        return [r for r in running if not r.lost]

    def renewed(self, jobs, at: float) -> None:
        pass


def renewal_gaps(schedule, seed: int = 12) -> tuple[list[float], int]:
    """Jobs claimed and ended at random over irregular dispatcher rounds: the gaps between each
    job's claim and renewals, and how many renewal statements there were."""
    rng = random.Random(seed)
    running: dict[int, RunningJob] = {}
    history: dict[int, list[float]] = {}
    statements = 0
    now = 0.0
    for step in range(20_000):
        now += rng.uniform(0.0, 0.05)
        if rng.random() < 0.2:  # a claim
            running[step] = job(step, now)
            history[step] = [now]
        if running and rng.random() < 0.05:  # a job ends
            del running[rng.choice(list(running))]
        due = schedule.due(running.values(), now)
        if due:
            statements += 1
            schedule.renewed(due, now)
            for r in due:
                history[r.id].append(now)
    gaps = [b - a for times in history.values() for a, b in itertools.pairwise(times)]
    return gaps, statements


def test_no_job_is_ever_renewed_sooner_than_a_third_of_the_lease_nor_much_later():
    every, grain = TTL / 3, TTL / 3 * GRAIN
    gaps, statements = renewal_gaps(Renewals(TTL))
    assert gaps and min(gaps) >= every
    assert max(gaps) <= every + grain + 0.05  # the grain, and one round at most
    assert statements < len(gaps) / 2  # batched
    # The single timer renewed a job claimed just before its tick at once.
    old, _ = renewal_gaps(OneTimer(TTL))
    assert min(old) < every / 10


def test_the_dispatcher_renews_each_job_on_its_own_schedule():
    w = worker_parts(lease_ttl=TTL)
    w.store.queue(claimed_job(1), claimed_job(2), claimed_job(3))
    w.deliver(delivery(1, tag=1), delivery(2, tag=2), delivery(3, tag=3))
    w.dispatcher.cycle()
    a, b, c = w.pool.submitted
    now = time.monotonic()
    a.leased, b.leased, c.leased = now - 2.0, now - 0.01, now - 0.005  # b, c: just claimed
    w.store.cancel_requested.add(1)

    w.dispatcher.renew_leases(now)
    assert w.store.named("renew") == [("renew", [1])]  # not b nor c, 10 ms after their claims
    assert a.leased >= now and a.cancel.is_set()  # and it learnt of a's cancel
    w.dispatcher.renew_leases(now + 1.9)
    assert len(w.store.named("renew")) == 1
    w.store.mine.discard(3)  # c was rescued meanwhile
    w.dispatcher.renew_leases(now + 2.0 + 0.2)
    assert w.store.named("renew")[1:] == [("renew", [1, 2, 3])]  # fallen due together
    assert c.lost and c.cancel.is_set() and not b.lost and not b.cancel.is_set()
