"""The worker's claim cycle with a stand-in store and broker (no service): deliveries in, claimed
jobs out to a pool; outcomes in, one finish-and-claim round out; duplicates and poison counted;
the fallbacks when PostgreSQL refuses or goes away."""

from __future__ import annotations

import time

import pytest
from jq_cli.errors import DatabaseUnavailable, StoreError
from jq_cli.worker.claim_ahead import FINISH_LINGER

from .worker_standins import claimed_job, delivery, registry_of, worker_parts


def test_deliveries_in_claimed_jobs_out_highest_priority_first():
    w = worker_parts(concurrency=4)
    w.store.queue(
        claimed_job(1, priority=0), claimed_job(2, priority=9), claimed_job(3, priority=5)
    )
    w.deliver(delivery(1, tag=11, priority=0), delivery(2, tag=12, priority=9))
    w.deliver(delivery(3, tag=13, priority=5))

    w.dispatcher.cycle()

    assert w.store.calls == [("finish_and_claim", [], [2, 3, 1])]  # one statement, by priority
    assert [r.id for r in w.pool.submitted] == [2, 3, 1]
    assert sorted(w.consumer.acked) == [11, 12, 13]  # acknowledged once the claim committed
    assert set(w.dispatcher.running) == {1, 2, 3}
    assert all(r.leased > 0 for r in w.pool.submitted)  # each lease counted from its claim
    assert w.intake.duplicates == 0 and w.intake.poison == 0
    assert len(w.inbox) == 0


def test_outcomes_in_one_finish_and_claim_round_out():
    w = worker_parts(concurrency=4)
    w.store.queue(*(claimed_job(i) for i in range(1, 6)))
    w.deliver(*(delivery(i, tag=i) for i in (1, 2, 3)))
    w.dispatcher.cycle()
    first, second, _ = w.pool.submitted

    w.complete(first)
    w.complete(second, "failed")
    w.deliver(delivery(4, tag=4), delivery(5, tag=5))
    w.dispatcher.cycle()

    # The two outcomes and the two new claims went together, in one round trip.
    assert w.store.calls[1:] == [("finish_and_claim", [1, 2], [4, 5])]
    assert set(w.dispatcher.running) == {3, 4, 5}
    assert w.dispatcher.processed == 2 and w.dispatcher.failed == 1
    counts = {event: n for (event, _), n in w.counters.take().items()}
    assert counts == {"completed": 1, "completed@default": 1, "failed": 1}
    # Nothing left to record: a round with no outcome and no delivery does not go to PostgreSQL.
    w.dispatcher.cycle()
    assert len(w.store.calls) == 2


def test_a_late_second_outcome_of_a_run_is_ignored():
    w = worker_parts()
    w.store.queue(claimed_job(1))
    w.deliver(delivery(1, tag=1))
    w.dispatcher.cycle()
    (running,) = w.pool.submitted
    w.complete(running)
    w.complete(running, "failed")  # e.g. a thread abandoned, reporting after the worker did
    w.dispatcher.cycle()
    assert w.store.calls[1:] == [("finish_and_claim", [1], [])]
    assert w.dispatcher.processed == 1


def test_duplicates_are_counted_and_every_delivery_acknowledged():
    w = worker_parts(concurrency=8)
    w.store.queue(claimed_job(1), claimed_job(2))
    w.store.states[3] = "completed"  # claimed and ended elsewhere: its message is a duplicate
    w.deliver(delivery(1, tag=1), delivery(1, tag=2))  # one job delivered twice
    w.deliver(delivery(2, tag=3), delivery(3, tag=4))
    w.deliver(delivery(404, tag=5))  # no such job: poison

    w.dispatcher.cycle()

    assert [r.id for r in w.pool.submitted] == [1, 2]
    assert sorted(w.consumer.acked) == [1, 2, 3, 4, 5]
    assert w.intake.duplicates == 2  # the second message of job 1, and job 3's
    assert w.intake.poison == 1
    # The ids no claim took are looked up after the jobs won were started.
    assert w.store.calls == [("finish_and_claim", [], [1, 2, 3, 404]), ("states", [3, 404])]


def test_a_message_that_carries_no_job_is_dead_lettered():
    w = worker_parts()
    w.store.queue(claimed_job(7))
    w.deliver(delivery("not-a-job", tag=1), delivery(7, tag=2), delivery("0", tag=3))
    w.dispatcher.cycle()
    assert sorted(w.consumer.rejected) == [(1, False), (3, False)]  # not requeued
    assert w.consumer.acked == [2]
    assert w.intake.poison == 2


def test_a_refused_round_records_and_claims_each_alone():
    w = worker_parts()
    w.store.queue(claimed_job(1), claimed_job(2))
    w.deliver(delivery(1, tag=1))
    w.dispatcher.cycle()
    w.complete(w.pool.submitted[0])
    w.deliver(delivery(2, tag=2))
    w.store.refuse["job_finish_and_claim"] = StoreError("a row PostgreSQL will not store")

    w.dispatcher.cycle()

    assert w.store.calls[1:] == [
        ("finish_and_claim", [1], [2]),
        ("finish", [1]),
        ("claim", [2]),
    ]
    assert set(w.dispatcher.running) == {2} and w.dispatcher.processed == 1


def test_a_lost_database_keeps_the_outcomes_and_the_deliveries_for_the_next_round():
    w = worker_parts()
    w.store.queue(claimed_job(1), claimed_job(2))
    w.deliver(delivery(1, tag=1))
    w.dispatcher.cycle()
    w.complete(w.pool.submitted[0])
    w.deliver(delivery(2, tag=2))
    w.store.refuse["job_finish_and_claim"] = DatabaseUnavailable("postgresql://x", "gone")

    with pytest.raises(DatabaseUnavailable):
        w.dispatcher.cycle()
    assert len(w.inbox) == 1 and w.consumer.acked == [1]  # job 2's delivery waits, unacknowledged

    w.dispatcher.cycle()  # PostgreSQL is back
    assert w.store.calls[1:] == [("finish_and_claim", [1], [2])] * 2
    assert w.consumer.acked == [1, 2]
    assert set(w.dispatcher.running) == {2} and w.dispatcher.processed == 1


def test_a_claim_that_fails_hands_its_deliveries_back_to_the_broker():
    w = worker_parts()
    w.store.queue(claimed_job(1))
    w.deliver(delivery(1, tag=1))
    w.store.refuse["job_finish_and_claim"] = StoreError("refused")
    w.store.refuse["job_claim_gated"] = RuntimeError("a bug")
    with pytest.raises(RuntimeError):
        w.dispatcher.cycle()
    assert w.consumer.rejected == [(1, True)]  # requeued: not held to fill the window
    assert w.consumer.acked == [] and not w.dispatcher.running


def test_under_a_limit_the_ids_the_gated_claim_did_not_take_go_to_the_limited_claim():
    w = worker_parts()
    w.store.queue(claimed_job(1), claimed_job(2), claimed_job(3))
    w.store.limited = True
    w.store.gated_ok = {1}
    w.deliver(*(delivery(i, tag=i) for i in (1, 2, 3)))
    w.dispatcher.cycle()
    assert w.store.calls == [("finish_and_claim", [], [1, 2, 3]), ("claim", [2, 3])]
    assert [r.id for r in w.pool.submitted] == [1, 2, 3]
    assert sorted(w.consumer.acked) == [1, 2, 3] and w.intake.duplicates == 0


def test_a_job_that_fails_to_start_still_ends_its_attempt():
    class Metrics:
        def job_started(self, *_):
            raise RuntimeError("a bug in the metrics")

        def job_finished(self, *_):
            pass

    w = worker_parts(metrics=Metrics())
    w.store.queue(claimed_job(1))
    w.deliver(delivery(1, tag=1))
    w.dispatcher.cycle()
    assert w.consumer.acked == [1] and not w.pool.submitted
    w.dispatcher.cycle()  # its failure is recorded like any outcome
    assert w.store.calls[1:] == [("finish_and_claim", [1], [])]
    assert w.store.states[1] == "retrying" and not w.dispatcher.running


def test_a_stopping_worker_claims_nothing_and_records_what_it_holds():
    w = worker_parts()
    w.store.queue(claimed_job(1), claimed_job(2))
    w.deliver(delivery(1, tag=1))
    w.dispatcher.cycle()
    w.complete(w.pool.submitted[0])
    w.deliver(delivery(2, tag=2))
    w.stopping.set()
    w.dispatcher.cycle()
    assert w.store.calls[1:] == [("finish_and_claim", [1], [])]
    w.intake.requeue_all()
    assert w.consumer.rejected == [(2, True)]


def test_a_job_of_a_type_this_worker_lacks_is_handed_over_not_run():
    w = worker_parts(registry=registry_of())  # noop only
    w.store.queue(claimed_job(1, job_type="resize"))
    w.deliver(delivery(1, tag=1))
    w.dispatcher.dispatch_once(0.0)
    assert not w.pool.submitted
    assert w.store.named("hand_over") == [("hand_over", [1])]
    assert not w.dispatcher.running and w.dispatcher.handed_over == 1


def test_a_busy_pool_holds_outcomes_back_for_its_next_claim():
    w = worker_parts(concurrency=2, start=False)
    for _ in range(10):
        w.intake.runtimes.observe("noop", 0.002)  # 2 ms jobs
    w.store.queue(*(claimed_job(i) for i in range(1, 200)))
    w.deliver(*(delivery(i, tag=i) for i in range(1, 200)))
    w.dispatcher.cycle()
    # Two slots, and 50 ms of each slot's time claimed ahead: 2 + 2 * 0.05 / 0.002.
    assert len(w.pool.submitted) == 2 + 50 and len(w.inbox) == 199 - 52
    first, second = w.pool.submitted[:2]
    first.begin()
    second.begin()
    w.complete(first)
    first.ended = time.monotonic() + 60  # reported just now, however slow this machine is
    w.dispatcher.cycle()
    assert len(w.store.calls) == 1  # held back for the pool's next claim...
    assert w.intake.next_due == pytest.approx(first.ended + FINISH_LINGER)
    first.ended = time.monotonic() - FINISH_LINGER
    w.dispatcher.cycle()  # ...FINISH_LINGER at most
    assert w.store.calls[1:] == [("finish_and_claim", [1], [])]
    assert w.intake.next_due is None
