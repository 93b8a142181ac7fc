"""Transactional enqueue: jobs inserted in the application's own psycopg connection and
transaction exist exactly when it commits, and the doorbell publishes them right after."""

from __future__ import annotations

import threading

import psycopg
import pytest
from jq_cli.broker import Publisher
from jq_cli.errors import BrokerUnavailable, InvalidInput
from jq_cli.scheduler.daemon import Scheduler
from jq_cli.scheduler.doorbell import Doorbell

import handlers_for_tests  # noqa: F401  (registers the t_* job types for in-process workers)
from conftest import make_settings, wait_for


@pytest.fixture
def publisher(settings):
    p = Publisher(settings.rabbitmq_url, settings.namespace)
    yield p
    p.close()


@pytest.fixture
def app_conn(settings):
    """The application's own connection: not autocommit, default search_path (no jq schema)."""
    conn = psycopg.connect(settings.database_url)
    conn.execute("CREATE TEMP TABLE orders (id int PRIMARY KEY)")
    conn.commit()
    yield conn
    conn.close()


def ready(publisher, queue: str = "default") -> int:
    return publisher.queue_depths([queue])[queue] or 0


def counts(store) -> tuple[int, int]:
    jobs = store._one("SELECT count(*) AS n FROM jobs")["n"]
    outbox = store._one("SELECT count(*) AS n FROM job_outbox")["n"]
    return jobs, outbox


def test_rolled_back_transaction_leaves_no_job_and_no_message(ops, store, publisher, app_conn):
    app_conn.execute("INSERT INTO orders VALUES (1)")
    ops.submit("t_record", {"order": 1}, connection=app_conn)
    ops.submit_many([{"job_type": "t_record"}, {"job_type": "noop"}], connection=app_conn)
    app_conn.rollback()
    assert counts(store) == (0, 0)
    assert ready(publisher) == 0
    # The doorbell finds nothing to publish either.
    bell = Doorbell.from_settings(ops.settings)
    try:
        assert bell.run_once(timeout=0) == 0
    finally:
        bell.stop()
    assert ready(publisher) == 0


def test_committed_transaction_runs_the_job_without_the_sweeper(
    ops, store, app_conn, start_worker, start_scheduler, settings
):
    # A sweeper that would wait an hour: only the doorbell can have published the job.
    slow_sweep = make_settings(settings.namespace, republish_after=3600.0)
    start_worker()
    start_scheduler(settings=slow_sweep)
    app_conn.execute("INSERT INTO orders VALUES (2)")
    job_id = ops.submit("t_record", {"order": 2}, connection=app_conn)
    ids = ops.submit_many(
        [{"job_type": "t_record", "payload": {"n": n}} for n in range(3)], connection=app_conn
    )
    assert counts(store) == (0, 0)  # not committed: invisible to everyone else
    app_conn.commit()
    for i in [job_id, *ids]:
        wait_for(lambda i=i: ops.get(i)["state"] == "completed", 20, what=f"job {i} completed")
    assert counts(store) == (4, 0)
    assert ops.get(job_id)["result"] == {"ran": True, "job": job_id}


def test_transaction_held_open_past_the_sweeper_age_is_neither_published_nor_swept(
    ops, store, publisher, app_conn, settings, start_worker
):
    """The sweeper's one criterion is a queued job's published_at older than republish_after; the
    hold lasts past that age and over several sweeps. The row stays invisible (MVCC) whatever the
    hold's length, so a minute-long hold differs from this one only in how many sweeps find
    nothing."""
    scheduler = Scheduler(settings)
    sweeps: list[int] = []
    real_sweep = scheduler.sweeper.run_once

    def counting_sweep() -> int:
        n = real_sweep()
        sweeps.append(n)
        return n

    scheduler.sweeper.run_once = counting_sweep  # type: ignore[method-assign]
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    try:
        job_id = ops.submit("t_record", {"held": True}, connection=app_conn)
        start = app_conn.execute("SELECT now()").fetchone()[0]
        wait_for(
            lambda: (
                len(sweeps) >= 3
                and (store.now() - start).total_seconds() > 2 * settings.republish_after
            ),
            30,
            what="three sweeps and twice republish_after since the insert",
        )
        assert counts(store) == (0, 0)
        assert ready(publisher) == 0
        assert sum(sweeps) == 0
        start_worker()
        app_conn.commit()
        wait_for(lambda: ops.get(job_id)["state"] == "completed", 20, what="the held job completed")
        assert len(ops.get(job_id)["attempt_history"]) == 1
    finally:
        scheduler.request_stop()
        thread.join(10)


def test_crash_between_commit_and_publish_loses_nothing(
    ops, store, publisher, app_conn, settings, start_worker, start_scheduler
):
    # Committed while no doorbell listens (the notification is gone), and then a doorbell whose
    # broker is away drains: its rows roll back. The next doorbell publishes them.
    job_id = ops.submit("t_record", {"crash": True}, connection=app_conn)
    app_conn.commit()
    assert counts(store) == (1, 1)
    dead_broker = make_settings(settings.namespace, rabbitmq_url="amqp://guest:guest@127.0.0.1:1/")
    bell = Doorbell.from_settings(dead_broker)
    try:
        with pytest.raises(BrokerUnavailable):
            bell.run_once(timeout=0)
    finally:
        bell.stop()
    assert counts(store) == (1, 1)
    assert ops.get(job_id)["state"] == "queued"
    start_worker()
    start_scheduler()
    wait_for(lambda: ops.get(job_id)["state"] == "completed", 20, what="the job completed")
    assert counts(store) == (1, 0)


def test_two_doorbells_publish_each_job_once(ops, store, publisher, app_conn, settings):
    ids = ops.submit_many([{"job_type": "noop"} for _ in range(300)], connection=app_conn)
    app_conn.commit()
    bells = [Doorbell.from_settings(settings, f"bell{i}") for i in range(2)]
    barrier = threading.Barrier(2)

    def drain(bell: Doorbell) -> None:
        barrier.wait()
        bell.run_once(timeout=0)

    threads = [threading.Thread(target=drain, args=(b,)) for b in bells]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert sum(b.published for b in bells) == len(ids)
        wait_for(lambda: ready(publisher) == len(ids), 10, what=f"{len(ids)} ready messages")
        assert counts(store) == (len(ids), 0)
    finally:
        for b in bells:
            b.stop()


def test_a_refused_submit_leaves_the_applications_transaction_usable(ops, store, app_conn):
    app_conn.execute("INSERT INTO orders VALUES (3)")
    with pytest.raises(InvalidInput, match="does not exist"):
        ops.submit("t_record", {}, depends_on=[999_999], connection=app_conn)
    app_conn.execute("INSERT INTO orders VALUES (4)")  # the savepoint kept the transaction alive
    app_conn.commit()
    assert app_conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 2
    assert counts(store) == (0, 0)


def test_autocommit_connection_commits_the_job_at_once(ops, store, settings):
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        job_id = ops.submit("noop", {}, connection=conn)
    assert ops.get(job_id)["state"] == "queued"
    assert counts(store) == (1, 1)


def test_an_unknown_handle_is_refused_in_one_line(ops):
    with pytest.raises(InvalidInput, match="connection must be a psycopg 3 connection"):
        ops.submit("noop", {}, connection=object())


def test_counts_stay_exact_from_a_connection_with_its_own_search_path(ops, store, app_conn):
    """The count trigger finds job_counts whoever fires it (041 pins its search_path)."""
    ops.submit("noop", {}, connection=app_conn)
    ops.submit_many([{"job_type": "noop"}, {"job_type": "noop", "delay": 60}], connection=app_conn)
    app_conn.commit()
    assert store.job_counts()["by_state"] == {"queued": 2, "scheduled": 1}
