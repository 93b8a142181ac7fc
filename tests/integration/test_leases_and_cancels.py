"""Cheap leases, prompt cancels: a worker renews its leases every third of the lease, a
renewal is a HOT update (no new index entries), and a cancel reaches a running handler through
LISTEN/NOTIFY within moments, also when it was sent while the worker's listener was cut off."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid

import pytest
from jq_cli.errors import JqError
from jq_cli.worker.cancel_listener import CancelListener

import handlers_for_tests  # noqa: F401  (registers the t_* job types for in-process workers)
from conftest import make_settings, wait_for
from handlers_for_tests import read_log


@pytest.fixture
def log_path(tmp_path) -> str:
    return str(tmp_path / "executions.log")


def lease_of(store, job_id: int):
    row = store._one("SELECT lease_expires_at FROM jobs WHERE id = %s", (job_id,))
    return row["lease_expires_at"] if row else None


def listener_pids(store, worker: str) -> list[int]:
    rows = store._all(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
        (f"jq-cancels {worker}",),
    )
    return [r["pid"] for r in rows]


def cancel_seen_after(log_path: str, job_id: int, asked: float) -> float | None:
    """Seconds from the cancel's commit to the handler seeing ctx.cancelled, once it has."""
    for event in read_log(log_path):
        if event["job"] == job_id and event["event"] == "cancelled":
            return float(event["t"]) - asked
    return None


def test_a_lease_renewal_is_a_hot_update(ops, store):
    job_id = ops.submit("noop", {})
    store.job_claim([job_id], "w", 30)

    def updates() -> tuple[int, int]:
        # This session's counts not yet sent to the statistics (pg_stat_xact_*): before and after
        # the renewals, so that the difference is exactly theirs.
        row = store._one(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
            " WHERE relid = 'jobs'::regclass"
        )
        return (row["n_tup_upd"], row["n_tup_hot_upd"]) if row else (0, 0)

    with store.conn.transaction(force_rollback=True):
        before = updates()
        for n in range(10):
            # now() stands still within a transaction: a lease one second longer each time, so
            # that every renewal changes the column's value, as renewals over time do.
            assert store.job_lease_renew([job_id], "w", 31 + n) == {job_id: False}
        after = updates()
    assert (after[0] - before[0], after[1] - before[1]) == (10, 10)  # ten updates, all HOT
    # And nothing indexes the lease any more (the rescue reads it from the running rows' heap).
    indexed = store._all(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'jobs'"
        " AND indexdef LIKE '%%lease_expires_at%%'",
        (store.namespace,),
    )
    assert indexed == []


def leases_of(store, ids: list[int]) -> dict[int, object]:
    rows = store._all("SELECT id, lease_expires_at FROM jobs WHERE id = ANY(%s)", (ids,))
    return {r["id"]: r["lease_expires_at"] for r in rows}


def test_a_worker_renews_a_lease_no_more_often_than_every_third_of_it(
    ops, settings, store, start_worker, log_path
):
    ttl = 6.0  # renewals every 2 s; the worker used to renew every second whatever the lease
    start_worker(
        name=f"cadence-{uuid.uuid4().hex[:6]}",
        settings=make_settings(settings.namespace, lease_ttl=ttl),
    )
    # Four jobs claimed a quarter of a third apart. One timer for all running jobs renewed each at
    # its next tick, however soon after its claim (once 8 ms after): at most one of the four could
    # have waited a whole third for its first renewal. Each job's own lease sets its renewals.
    seen: dict[int, list] = {}  # each job's distinct leases, in order

    def look(until: float) -> None:
        while time.monotonic() < until:
            for job_id, lease in leases_of(store, list(seen)).items():
                if lease is not None and (not seen[job_id] or lease != seen[job_id][-1]):
                    seen[job_id].append(lease)
            time.sleep(0.05)

    for _ in range(4):
        job_id = ops.submit("t_sleep", {"seconds": 9, "log": log_path})
        seen[job_id] = []
        wait_for(lambda j=job_id: lease_of(store, j), 15, what="the job to be claimed")
        look(time.monotonic() + ttl / 3 / 4)
    look(time.monotonic() + 5.0)
    # A lease is the database's now() + ttl at its claim or renewal: gaps between leases are gaps
    # between renewals (the first one: from the claim), measured by the database's clock.
    gaps = {i: [(b - a).total_seconds() for a, b in itertools.pairwise(s)] for i, s in seen.items()}
    assert all(gaps.values()), f"a job not renewed within 5 s of its claim plus a 6 s lease: {gaps}"
    # Strict: never sooner than a third of the lease after the job's claim or last renewal.
    assert min(g for each in gaps.values() for g in each) >= ttl / 3, gaps
    # And not much later either (a renewal may wait a tenth of a third to join others).
    assert max(g for each in gaps.values() for g in each) < ttl / 3 * 1.5, gaps


def test_a_cancel_reaches_a_running_handler_within_a_second_without_a_renewal(
    ops, settings, store, start_worker, log_path
):
    # A minute's lease: its renewal comes every 20 s, so only the NOTIFY can bring the cancel in time.
    start_worker(
        name=f"prompt-{uuid.uuid4().hex[:6]}",
        settings=make_settings(settings.namespace, lease_ttl=60.0),
    )
    job_id = ops.submit("t_sleep", {"seconds": 30, "log": log_path})
    wait_for(lambda: any(e["event"] == "start" for e in read_log(log_path)), 15, what="the start")
    lease = lease_of(store, job_id)
    assert ops.cancel([job_id]).changed == {job_id: "cancelling"}
    asked = time.time()  # the cancel has committed
    latency = wait_for(
        lambda: cancel_seen_after(log_path, job_id, asked), 10, what="the handler to see it"
    )
    assert latency < 1.0, latency
    # Not by a renewal: the lease was not rewritten meanwhile (the outcome may have cleared it).
    assert lease_of(store, job_id) in (lease, None)
    job = wait_for(
        lambda: (j := ops.get(job_id))["state"] == "cancelled" and j, 10, what="cancelled"
    )
    assert [a["outcome"] for a in job["attempt_history"]] == ["cancelled"]


def test_a_cancel_sent_while_the_listener_was_cut_off_arrives_when_it_reconnects(
    ops, settings, store
):
    """The listener alone, driven by hand: the notification is sent while no session listens (so
    PostgreSQL drops it), and the pending cancel is read back after the reconnect."""
    worker = f"cut-{uuid.uuid4().hex[:6]}"
    job_id = ops.submit("noop", {})
    assert [j.id for j in store.job_claim([job_id], worker, 60)] == [job_id]
    listener = CancelListener(settings, worker, threading.Event())
    try:
        listener.run_once(timeout=0)
        [pid] = listener_pids(store, worker)
        store._one("SELECT pg_terminate_backend(%s)", (pid,))
        wait_for(lambda: listener_pids(store, worker) == [], 10, what="the listener's backend gone")
        assert ops.cancel([job_id]).changed == {job_id: "cancelling"}
        heard: list[int] = []

        def caught_up() -> bool:
            with contextlib.suppress(JqError):  # the cut connection says so once, then reconnects
                listener.run_once(timeout=0.1)
            heard.extend(listener.take())
            return job_id in heard

        wait_for(caught_up, 10, what="the cancel read back after the reconnect")
        assert listener_pids(store, worker) not in ([], [pid])
    finally:
        listener.store.close()


def test_a_worker_whose_listener_was_cut_off_still_stops_a_cancelled_handler_promptly(
    ops, settings, store, start_worker, log_path
):
    worker = f"relisten-{uuid.uuid4().hex[:6]}"
    start_worker(name=worker, settings=make_settings(settings.namespace, lease_ttl=60.0))
    job_id = ops.submit("t_sleep", {"seconds": 30, "log": log_path})
    wait_for(lambda: any(e["event"] == "start" for e in read_log(log_path)), 15, what="the start")
    [pid] = wait_for(lambda: listener_pids(store, worker), 10, what="the worker's listener")
    store._one("SELECT pg_terminate_backend(%s)", (pid,))
    assert ops.cancel([job_id]).changed == {job_id: "cancelling"}
    asked = time.time()
    # Whether the cancel came before the reconnect (read back) or after (notified), the handler
    # sees it within moments, long before the lease's renewal in 20 s.
    latency = wait_for(
        lambda: cancel_seen_after(log_path, job_id, asked), 10, what="the handler to see it"
    )
    assert latency < 3.0, latency
    new = wait_for(lambda: listener_pids(store, worker), 10, what="the listener back")
    assert new != [pid]
