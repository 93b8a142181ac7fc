"""The scheduler, the owner of time: delayed jobs, re-publishing lost messages, leadership among
several schedulers, and the rescue of jobs whose lease expired."""

from __future__ import annotations

import threading

import pika
import pytest
from jq_cli.broker import Message, Publisher, queue_name
from jq_cli.errors import ServiceUnavailable, StoreError

import handlers_for_tests  # noqa: F401  (registers the t_* job types for in-process workers)
from conftest import make_settings, wait_for


def wait_state(ops, job_id: int, *states: str, timeout: float = 15.0) -> dict:
    def reached():
        job = ops.get(job_id)
        return job if job["state"] in states else None

    return wait_for(reached, timeout, what=f"job {job_id} to be {'/'.join(states)}")


@pytest.fixture
def publisher(settings):
    p = Publisher(settings.rabbitmq_url, settings.namespace)
    yield p
    p.close()


def ready(publisher, queue: str = "default") -> int:
    return publisher.queue_depths([queue])[queue] or 0


def wait_ready(publisher, count: int, queue: str = "default") -> None:
    # Publishes are not confirmed one by one, and a message sent on one connection is not yet
    # counted by a queue.declare on another the instant the publisher returns: wait for it.
    wait_for(
        lambda: ready(publisher, queue) == count, 10, what=f"{count} ready messages in {queue}"
    )


MARKER = 0  # no job has id 0


def published_before_a_marker(settings, scheduler, queue: str = "default") -> list[int]:
    """The job ids waiting in `queue` ahead of a marker the scheduler's own publisher sends now.

    A queue's count right after an action may not include what the action published yet. A
    channel's messages reach their queue in order, and the marker has the lowest priority, so once
    the marker comes out, everything the scheduler published before it has come out first. Only
    the marker is acknowledged: the others return to the queue when the connection closes."""
    scheduler.publisher.publish([Message(MARKER, queue, 1)])
    connection = pika.BlockingConnection(pika.URLParameters(settings.rabbitmq_url))
    try:
        channel = connection.channel()
        name, seen = queue_name(settings.namespace, queue), []

        def get():
            method, _, body = channel.basic_get(name, auto_ack=False)
            return (method, int(body)) if method else None

        while True:
            method, job_id = wait_for(get, 10, what=f"the marker message in {queue}")
            if job_id == MARKER:
                channel.basic_ack(method.delivery_tag)
                return seen
            seen.append(job_id)
    finally:
        connection.close()


def backdate_published(store, seconds: float) -> None:
    store._run(
        "UPDATE jobs SET published_at = now() - make_interval(secs => %s) WHERE state = 'queued'",
        (seconds,),
    )


# -- delayed jobs -------------------------------------------------------------------------------


def test_delayed_job_is_published_within_a_second_of_its_run_at(
    ops, settings, start_worker, start_scheduler
):
    # No sweeps within the test: a re-publish would overwrite the published_at that is measured.
    start_scheduler(settings=make_settings(settings.namespace, republish_after=120.0))
    start_worker()
    job_id = ops.submit(
        "noop", {}, delay=2.0
    )  # ample time to see it scheduled, however slow the machine
    job = ops.get(job_id)
    assert job["state"] == "scheduled"
    assert job["published_at"] is None
    job = wait_state(ops, job_id, "completed")
    # The scheduler's promise, timed by Postgres when it promoted and published the job (the worker's
    # pick-up after that is not the scheduler's to keep, and is slower when the machine is loaded).
    late = (job["published_at"] - job["run_at"]).total_seconds()
    assert 0 <= late < 1.0, f"published {late:.3f}s after its run_at"
    started = job["attempt_history"][0]["started_at"]
    assert started >= job["published_at"] >= job["run_at"]


def test_scheduler_started_after_the_due_time_publishes_the_overdue_job(
    ops, store, start_worker, start_scheduler
):
    job_id = ops.submit("noop", {}, delay=0.3)
    start_worker()
    run_at = ops.get(job_id)["run_at"]
    wait_for(lambda: store.now() > run_at, 5, what="the due time to pass")
    assert ops.get(job_id)["state"] == "scheduled"  # no scheduler, no timer: nothing moved it
    start_scheduler()  # the timer lives in the row, so a scheduler that starts late still fires it
    job = wait_state(ops, job_id, "completed")
    assert job["attempt_history"][0]["started_at"] >= run_at


# -- lost messages ------------------------------------------------------------------------------


def test_queued_job_whose_message_was_purged_is_republished_and_completes(
    ops, publisher, start_worker, start_scheduler
):
    job_id = ops.submit("noop", {"lost": True})
    first_publish = ops.get(job_id)["published_at"]
    wait_ready(publisher, 1)
    assert publisher.purge("default") == 1
    assert ready(publisher) == 0
    start_scheduler()
    wait_ready(publisher, 1)  # the sweeper re-published the job
    republished = ops.get(job_id)["published_at"]
    assert (republished - first_publish).total_seconds() >= 1.0  # only after JQ_REPUBLISH_AFTER
    start_worker()
    job = wait_state(ops, job_id, "completed")
    assert job["attempts"] == 1


def test_sweeper_republishes_only_the_missing_messages(
    ops, store, publisher, make_scheduler, start_worker, settings
):
    ids = [ops.submit("noop", {"i": i}) for i in range(3)]
    wait_ready(publisher, 3)
    publisher.purge("default")
    publisher.publish([Message(ids[2], "default", 2)])  # one message survives
    wait_ready(publisher, 1)
    backdate_published(store, 60)
    scheduler = make_scheduler("sweeper")
    assert scheduler.sweeper.run_once() == 2
    wait_ready(publisher, 3)
    assert scheduler.sweeper.run_once() == 0  # just published: nothing is stale any more
    # One message per job, each once: the second sweep published nothing.
    assert sorted(published_before_a_marker(settings, scheduler)) == sorted(ids)
    start_worker()
    for job_id in ids:
        assert wait_state(ops, job_id, "completed")["attempts"] == 1


def test_sweeper_does_not_republish_the_messages_a_busy_worker_holds(
    ops, store, publisher, settings, make_scheduler, start_worker
):
    from jq_cli.observe.telemetry import Telemetry

    worker = start_worker(concurrency=2)
    ids = [ops.submit("t_sleep", {"seconds": 60}) for _ in range(6)]
    # Two run, two wait unacknowledged in the busy worker's prefetch, two stay ready in the broker.
    wait_for(lambda: len(worker.worker.running) == 2, 15, what="two jobs running")
    wait_ready(publisher, 2)
    telemetry = Telemetry(settings.redis_url, settings.namespace)
    wait_for(
        lambda: [w.get("running") for w in telemetry.workers()] == [2],
        15,
        what="the busy worker's heartbeat",
    )
    backdate_published(store, 60)  # every queued job looks long unpublished
    scheduler = make_scheduler("sweeper")
    # Queued 4 = ready 2 + held 2: nothing is missing (counting ready only re-published 2).
    assert scheduler.sweeper.run_once() == 0
    assert ready(publisher) == 2
    # Two messages really go missing: exactly those two are published again.
    assert publisher.purge("default") == 2
    assert scheduler.sweeper.run_once() == 2
    wait_ready(publisher, 2)
    telemetry.close()
    ops.cancel(ids)


def test_sweeper_warns_when_messages_are_missing_beyond_what_consumers_hold(
    ops, store, publisher, make_scheduler, caplog
):
    import logging

    [ops.submit("noop", {"i": i}) for i in range(2)]
    wait_ready(publisher, 2)
    publisher.purge("default")  # lost, and no consumer holds anything
    backdate_published(store, 60)
    with caplog.at_level(logging.INFO, logger="jq.scheduler"):
        assert make_scheduler("sweeper").sweeper.run_once() == 2
    swept = [r for r in caplog.records if "event=messages_republished" in r.getMessage()]
    assert [r.levelno for r in swept] == [logging.WARNING]


# -- leadership ---------------------------------------------------------------------------------


def test_only_one_of_two_schedulers_leads(ops, store, make_scheduler):
    a, b = make_scheduler("a"), make_scheduler("b")
    reports = [a.run_once(), b.run_once()]
    assert sorted(r["leader"] for r in reports) == [False, True]
    leader, follower = (a, b) if reports[0]["leader"] else (b, a)
    for _ in range(3):  # it stays that way
        assert leader.run_once()["leader"] is True
        assert follower.run_once() == {"leader": False}
    # The follower does no work: a due job waits for the leader.
    job_id = ops.submit("noop", {}, delay=0.1)
    run_at = ops.get(job_id)["run_at"]
    wait_for(lambda: store.now() > run_at, 5, what="the due time to pass")
    assert follower.run_once() == {"leader": False}
    assert ops.get(job_id)["state"] == "scheduled"
    assert leader.run_once()["promoted"] == 1
    assert ops.get(job_id)["state"] == "queued"


def test_follower_takes_over_once_the_leaders_lease_expires(ops, store, make_scheduler):
    a, b = make_scheduler("a"), make_scheduler("b")
    assert a.run_once()["leader"] is True
    assert b.run_once()["leader"] is False
    # The leader's session dies (a crash, a restart of its host) and it renews no more: the lease
    # runs out in the database's time and the follower takes it.
    store._one("SELECT pg_terminate_backend(%s) AS ok", (a.store.conn.info.backend_pid,))
    assert store.leader_current() == "a"  # the lease outlives the session
    wait_for(lambda: b.run_once()["leader"], 15, what="the follower to take the lead")
    assert store.leader_current() == "b"
    # The old leader learns it lost the lead and does not work beside the new one.
    with pytest.raises(ServiceUnavailable):
        a.run_once()
    assert a.leader is False
    assert a.run_once() == {"leader": False}
    job_id = ops.submit("noop", {}, delay=0.05)
    wait_for(lambda: b.run_once()["promoted"] == 1, 15, what="the new leader to promote a due job")
    assert ops.get(job_id)["state"] == "queued"


def test_leader_keeps_the_lead_across_a_new_connection(make_scheduler):
    # Leadership is a row, not session state: a reconnect (or a pooler handing out another
    # server connection) changes nothing, and the follower stays a follower.
    a, b = make_scheduler("a"), make_scheduler("b")
    assert a.run_once()["leader"] is True
    a.store.close()
    assert a.run_once()["leader"] is True
    assert b.run_once() == {"leader": False}


def test_leader_whose_pass_outlives_its_lease_stops_before_the_next_duty(
    ops, store, make_scheduler
):
    a, b = make_scheduler("a"), make_scheduler("b")
    assert a.run_once()["leader"] is True
    # As if the pass had stalled past the lease: its own clock says the lease is over.
    a.leadership.lease_until = 0.0
    store._run("UPDATE leaders SET leader_until = now() - interval '1 second'")
    assert b.run_once()["leader"] is True
    job_id = ops.submit("noop", {}, delay=0.05)
    run_at = ops.get(job_id)["run_at"]
    wait_for(lambda: store.now() > run_at, 5, what="the due time to pass")
    assert a.leadership.leading() is False
    assert a.run_once() == {"leader": False}  # it campaigns and finds the lease taken
    assert ops.get(job_id)["state"] == "scheduled"  # a promoted nothing


def test_leader_hands_over_at_once_when_it_stops(settings, store):
    from jq_cli.scheduler.daemon import Scheduler

    a = Scheduler(settings, name="a")
    assert a.run_once()["leader"] is True
    a.stopping.set()
    a.run()  # the loop ends at once and gives the lease up
    assert store.leader_current() is None


def test_running_follower_takes_over_when_the_leader_stops(ops, start_scheduler, start_worker):
    first, second = start_scheduler(name="first"), start_scheduler(name="second")
    wait_for(lambda: first.leader or second.leader, 15, what="a leader")
    assert not (first.leader and second.leader)
    leader, follower = (first, second) if first.leader else (second, first)
    leader.request_stop()
    wait_for(lambda: follower.leader, 15, what="the follower to lead")
    start_worker()
    job_id = ops.submit("noop", {}, delay=0.2)
    wait_state(ops, job_id, "completed")


# -- rescue -------------------------------------------------------------------------------------


def claim_as_ghost(ops, store, publisher, job_type="noop", **submit) -> int:
    """A job running on a worker that will never report back (its message consumed)."""
    job_id = ops.submit(job_type, {}, **submit)
    wait_ready(publisher, 1)
    publisher.purge("default")
    assert [j.id for j in store.job_claim([job_id], "ghost:1:dead", 30)] == [job_id]
    return job_id


def expire_lease(store, job_id: int) -> None:
    store._run(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = %s", (job_id,)
    )


def test_rescue_requeues_a_running_job_whose_lease_expired(
    ops, store, publisher, make_scheduler, start_worker
):
    job_id = claim_as_ghost(ops, store, publisher)
    scheduler = make_scheduler("rescuer")
    assert scheduler.rescuer.run_once() == {}  # the lease is still valid: the job is left alone
    assert ops.get(job_id)["state"] == "running"
    expire_lease(store, job_id)
    assert scheduler.rescuer.run_once() == {"queued": 1}
    job = ops.get(job_id)
    assert job["state"] == "queued" and job["worker"] is None
    assert [a["outcome"] for a in job["attempt_history"]] == ["lost"]
    assert job["attempt_history"][0]["finished_at"] is not None
    assert "ghost:1:dead" in job["last_error"]
    wait_ready(publisher, 1)  # published again
    assert scheduler.rescuer.run_once() == {}  # once
    start_worker(name="alive")
    job = wait_state(ops, job_id, "completed")
    assert [a["outcome"] for a in job["attempt_history"]] == ["lost", "completed"]
    assert job["attempts"] == 2  # the lost attempt counts


def test_rescue_of_a_job_on_its_last_attempt_makes_it_dead(
    ops, store, publisher, make_scheduler, settings
):
    job_id = claim_as_ghost(ops, store, publisher, max_retries=0)
    expire_lease(store, job_id)
    scheduler = make_scheduler("rescuer")
    assert scheduler.rescuer.run_once() == {"dead": 1}
    job = ops.get(job_id)
    assert job["state"] == "dead" and job["finished_at"] is not None
    assert published_before_a_marker(settings, scheduler) == []  # nothing to run


def test_rescue_of_a_job_being_cancelled_makes_it_cancelled(
    ops, store, publisher, make_scheduler, settings
):
    job_id = claim_as_ghost(ops, store, publisher, max_retries=3)
    assert ops.cancel([job_id]).changed == {job_id: "cancelling"}
    expire_lease(store, job_id)
    scheduler = make_scheduler("rescuer")
    assert scheduler.rescuer.run_once() == {"cancelled": 1}
    assert ops.get(job_id)["state"] == "cancelled"
    assert published_before_a_marker(settings, scheduler) == []


def test_scheduler_stops_on_a_statement_postgres_refuses_instead_of_retrying_it(
    store, make_scheduler
):
    # A schema out of step with the code (a column gone): every pass would fail the same way, so
    # the loop ends with the error instead of backing off as it does for an outage.
    store._run("ALTER TABLE jobs DROP COLUMN published_at")
    scheduler = make_scheduler("refused")
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            scheduler.run()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    scheduler.request_stop()  # if it kept looping, let it end before the namespace is dropped
    thread.join(10)
    assert outcome, "the scheduler kept running on a refused statement"
    assert isinstance(outcome[0], StoreError)
    assert "published_at" in outcome[0].message
