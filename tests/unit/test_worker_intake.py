"""The intake alone, with a stand-in broker and store: which deliveries it takes, what a committed
claim acknowledges and counts, what goes back to the broker, and the prefetch window."""

from __future__ import annotations

import pytest
from jq_cli.errors import DatabaseUnavailable, StoreError
from jq_cli.worker import intake as intake_module
from jq_cli.worker.claim_ahead import RunTimes
from jq_cli.worker.handoff import Inbox, Wake
from jq_cli.worker.intake import PREFETCH_SHRINK_EVERY, Intake, job_id_of

from .worker_standins import StubConsumer, StubStore, claimed_job, delivery


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def make_intake(concurrency: int = 4, prefetch: int | None = None) -> Intake:
    return Intake(
        Inbox(Wake()),
        StubConsumer(),
        StubStore(),
        RunTimes(),
        worker="w1",
        lease_ttl=30.0,
        concurrency=concurrency,
        prefetch=prefetch or concurrency,
        prefetch_fixed=prefetch is not None,
    )


@pytest.mark.parametrize(
    ("body", "job_id"),
    [
        (b"42", 42),
        (b"9223372036854775807", 2**63 - 1),
        (b"9223372036854775808", None),
        (b"0", None),
        (b"", None),
        (b"-1", None),
        (b"4 2", None),
        (b"\xff", None),
        (b"\xd9\xa3", None),  # an Arabic-Indic digit: isdigit(), but not ASCII
        (b"1" * 21, None),
    ],
)
def test_a_message_carries_a_job_id_or_nothing(body, job_id):
    assert job_id_of(body) == job_id


def test_the_highest_priorities_are_taken_first_and_no_more_than_asked():
    intake = make_intake()
    for tag, priority in enumerate([1, 5, 3, 9, 0], start=1):
        intake.inbox.put(delivery(tag * 10, tag=tag, priority=priority))
    assert list(intake.take(3)) == [40, 20, 30]
    assert list(intake.take(0)) == []
    assert list(intake.take(5)) == [10, 50]


def test_deliveries_of_a_lost_connection_are_not_taken():
    intake = make_intake()
    intake.inbox.put(delivery(1, tag=1, generation=1))
    intake.inbox.put(delivery(2, tag=1, generation=2))
    intake.consumer.generation = 2
    assert list(intake.take(5)) == [2]
    intake.inbox.drop_generation(2)
    assert len(intake.inbox) == 0


def test_a_claim_acknowledges_every_delivery_and_counts_the_spare_ones():
    intake = make_intake()
    for d in [delivery(1, 1), delivery(1, 2), delivery(2, 3, priority=5), delivery(3, 4)]:
        intake.inbox.put(d)
    by_id = intake.take(10)
    claimed = intake.claimed(by_id, [claimed_job(1), claimed_job(2, priority=5)])
    assert [j.id for j in claimed.jobs] == [2, 1] and claimed.lost == [3]
    assert sorted(intake.consumer.acked) == [1, 2, 3, 4]
    assert intake.duplicates == 1
    intake.store.states[3] = "running"  # someone else's
    intake.count_lost(claimed.lost)
    assert intake.duplicates == 2 and intake.poison == 0


def test_lost_ids_of_no_job_are_poison_and_a_failed_lookup_still_counts_them():
    intake = make_intake()
    intake.count_lost([7, 8])
    assert intake.poison == 2 and intake.duplicates == 0
    intake.store.refuse["job_states"] = DatabaseUnavailable("postgresql://x", "gone")
    intake.count_lost([9])
    assert intake.duplicates == 1  # counting only: the messages are settled already


def test_a_claim_alone_puts_its_deliveries_back_while_postgresql_is_away():
    intake = make_intake()
    intake.store.queue(claimed_job(1))
    intake.inbox.put(delivery(1, tag=1))
    by_id = intake.take(1)
    intake.store.refuse["job_claim_gated"] = DatabaseUnavailable("postgresql://x", "gone")
    with pytest.raises(DatabaseUnavailable):
        intake.claim(by_id)
    assert len(intake.inbox) == 1 and not intake.consumer.rejected
    claimed = intake.claim(intake.take(1))
    assert [j.id for j in claimed.jobs] == [1] and intake.consumer.acked == [1]


def test_a_claim_alone_that_is_refused_hands_its_deliveries_back_to_the_broker():
    intake = make_intake()
    intake.inbox.put(delivery(1, tag=1))
    intake.store.refuse["job_claim_gated"] = StoreError("refused")
    with pytest.raises(StoreError):
        intake.claim(intake.take(1))
    assert intake.consumer.rejected == [(1, True)] and len(intake.inbox) == 0


def test_an_idle_worker_claims_for_its_free_slots():
    intake = make_intake(concurrency=4)
    intake.inbox.put(delivery(1, tag=1))
    assert intake.room([], running=1, stopping=False) == 3
    assert intake.next_due is None
    # A draining worker claims nothing, and with no outcome at hand does not go to PostgreSQL.
    assert intake.room([], running=1, stopping=True) == -1


def test_nothing_to_do_goes_nowhere():
    intake = make_intake(concurrency=4)
    assert intake.room([], running=4, stopping=False) == -1  # full, no delivery, no outcome


def test_the_window_grows_at_once_and_shrinks_at_most_every_half_second(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(intake_module, "time", clock)
    intake = make_intake(concurrency=2)
    for _ in range(10):
        intake.runtimes.observe("noop", 0.001)
    intake.resize_prefetch()
    assert intake.prefetch == 2 + 100 and intake.consumer.prefetches == [102]
    for tag in range(20):
        intake.inbox.put(delivery(tag + 1, tag=tag, priority=tag % 3))
    for _ in range(200):
        intake.runtimes.observe("noop", 1.0)  # the jobs got slow
    clock.now += PREFETCH_SHRINK_EVERY / 2
    intake.resize_prefetch()
    assert intake.prefetch == 102  # it grew a moment ago: not yet
    clock.now += PREFETCH_SHRINK_EVERY / 2
    intake.resize_prefetch()
    assert intake.prefetch == 2 and intake.consumer.prefetches == [102, 2]
    assert len(intake.inbox) == 2 and len(intake.consumer.rejected) == 18  # back to the broker
    assert all(requeue for _, requeue in intake.consumer.rejected)
    assert [d.priority for d in intake.inbox.take_all()] == [2, 2]  # the highest kept


def test_a_window_set_by_the_user_is_never_resized():
    intake = make_intake(concurrency=2, prefetch=5)
    for _ in range(10):
        intake.runtimes.observe("noop", 0.001)
    intake.resize_prefetch()
    intake.resize(8)
    assert intake.prefetch == 5 and intake.consumer.prefetches == []
    assert intake.concurrency == 8


def test_a_reload_moves_a_window_that_follows_the_slots():
    intake = make_intake(concurrency=2)
    intake.resize(6)
    assert intake.prefetch == 6 and intake.consumer.prefetches == [6]


def test_draining_hands_every_unclaimed_delivery_back():
    intake = make_intake()
    for tag in (1, 2, 3):
        intake.inbox.put(delivery(tag, tag=tag))
    intake.requeue_all()
    assert intake.consumer.rejected == [(1, True), (2, True), (3, True)]
    assert len(intake.inbox) == 0


def test_the_inbox_wakes_the_dispatcher_once_per_round():
    wake = Wake()
    inbox = Inbox(wake)
    inbox.put(delivery(1, 1))
    assert wake.event.is_set()
    wake.event.clear()
    inbox.put(delivery(2, 2))
    assert not wake.event.is_set()  # signalled already: the dispatcher has not been round yet
    wake.rearm()
    inbox.put(delivery(3, 3))
    assert wake.event.is_set()
