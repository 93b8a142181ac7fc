"""A network that goes silent: a route to PostgreSQL stalled behind chaos.proxy's
FaultProxy, which stops forwarding while its kernel still acknowledges every byte, so neither TCP
keepalives nor tcp_user_timeout can see anything wrong; only a deadline of jq's own can. Loopback
only: the proxy listens on 127.0.0.1 and forwards to the test PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from chaos.proxy import FaultProxy
from jq_cli.errors import DatabaseUnavailable
from jq_cli.store import Store
from jq_cli.store.base import Timeouts

import handlers_for_tests  # noqa: F401  (registers the t_* job types for in-process workers)
from conftest import DATABASE_URL, wait_for

PG_PORT = urlsplit(DATABASE_URL).port or 5432


def through(proxy: FaultProxy, url: str = DATABASE_URL) -> str:
    """The database URL with its host and port replaced by the proxy's listener."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    auth = f"{netloc[0]}@" if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{proxy.port('pg')}"))


@pytest.fixture
def pg_proxy() -> Iterator[FaultProxy]:
    proxy = FaultProxy({"pg": PG_PORT}).start()
    yield proxy
    proxy.stall(False)
    proxy.stop()


def test_a_statement_with_no_answer_is_abandoned_at_the_deadline(settings, pg_proxy):
    store = Store(through(pg_proxy), settings.namespace, timeouts=Timeouts(deadline=1.0))
    try:
        assert store.schema_version() > 0
        pg_proxy.stall(True)
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="no answer within 1s"):
            store.schema_version()
        waited = time.monotonic() - started
        # Without the deadline this call would wait for the stall to end, however long.
        assert waited < 10, waited
        assert not store.has_session()  # dropped: the next call opens a fresh connection
        pg_proxy.stall(False)
        assert store.schema_version() > 0
    finally:
        store.shutdown()


def test_connections_carry_keepalives_and_timeouts(settings):
    store = Store(settings.database_url, settings.namespace, timeouts=settings.db_timeouts())
    try:
        row = store._one("SHOW statement_timeout")
        assert row is not None and row["statement_timeout"] == "1min"
        params = store.conn.info.get_parameters()
        assert params["keepalives"] == "1" and params["tcp_user_timeout"] == "15000"
    finally:
        store.close()


def test_a_blackholed_leader_stops_leading_and_the_standby_leads_within_30s(
    ops, settings, store, pg_proxy, start_scheduler
):
    cut_off = start_scheduler(
        settings=settings.model_copy(update={"database_url": through(pg_proxy)}), name="cut-off"
    )
    wait_for(lambda: cut_off.leader, 20, what="the scheduler behind the proxy to lead")
    standby = start_scheduler(name="standby")
    wait_for(lambda: store.leader_current() == "cut-off", 10, what="the lease row")
    assert not standby.leader
    pg_proxy.stall(True)
    stalled_at = time.monotonic()
    wait_for(lambda: standby.leader, 30, what="the standby to lead")
    took_over = time.monotonic() - stalled_at
    # The standby leads one lease after the last renewal, in the database's time.
    assert store.leader_current() == "standby"
    wait_for(lambda: not cut_off.leader, 30, what="the cut-off leader to stop leading")
    job_id = ops.submit("noop", {}, delay=0.1)
    wait_for(lambda: ops.get(job_id)["state"] == "queued", 15, what="the standby to promote")
    pg_proxy.stall(False)
    wait_for(lambda: cut_off.store.has_session(), 30, what="the cut-off scheduler to reconnect")
    # Back on the network, the old leader finds the lease taken and stays a standby.
    for _ in range(3):
        assert cut_off.run_once() == {"leader": False}
    assert standby.leader and store.leader_current() == "standby"
    assert took_over < 30, took_over


def test_a_worker_whose_database_route_stalls_is_rescued_and_records_no_stale_outcome(
    ops, settings, store, pg_proxy, start_worker, start_scheduler
):
    cut_off = start_worker(
        settings=settings.model_copy(update={"database_url": through(pg_proxy)}),
        name="cut-off",
        concurrency=1,
    )
    job_id = ops.submit("t_sleep", {"seconds": 2})
    wait_for(lambda: ops.get(job_id)["state"] == "running", 15, what="the job to start")
    assert ops.get(job_id)["worker"] == "cut-off"
    pg_proxy.stall(True)  # its handler finishes, but the outcome cannot reach the database
    start_scheduler(name="rescuer")
    wait_for(
        lambda: (
            ops.get(job_id)["worker"] not in (None, "cut-off")
            or ops.get(job_id)["state"] == "queued"
        ),
        30,
        what="the job to be rescued after its lease",
    )
    # Its AMQP route still works, so the re-published message may go to it again and wait there
    # for its database; the route comes back.
    pg_proxy.stall(False)
    job = wait_for(
        lambda: (j := ops.get(job_id))["state"] == "completed" and j, 60, what="the job to end"
    )
    wait_for(lambda: not cut_off.worker.running, 30, what="the cut-off worker to let go of it")
    job = ops.get(job_id)
    # The first attempt's outcome, held back by the stall, was refused (its run was rescued): the
    # history says lost, and the job ended once, by the second attempt.
    outcomes = [a["outcome"] for a in job["attempt_history"]]
    assert outcomes == ["lost", "completed"], outcomes
    assert job["attempts"] == 2 and job["state"] == "completed"


def test_pgbouncer_in_transaction_mode_is_refused_plainly(settings):
    """A listener that answers the startup packet as PgBouncer does when it will not take
    jq's session options (one ErrorResponse): the error says PgBouncer is not supported."""
    import socket
    import struct
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]

    def answer() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while True:
                    head = conn.recv(8)
                    if len(head) < 8:
                        break
                    length, code = struct.unpack("!ii", head)
                    conn.recv(max(0, length - 8))
                    if code in (80877103, 80877104):  # SSL or GSS request: not here
                        conn.sendall(b"N")
                        continue
                    fields = b"SFATAL\0VFATAL\0C08P01\0Munsupported startup parameter: options\0\0"
                    conn.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)
                    break

    threading.Thread(target=answer, daemon=True).start()
    store = Store(f"postgresql://jq@127.0.0.1:{port}/jq", settings.namespace)
    try:
        with pytest.raises(
            DatabaseUnavailable, match="PgBouncer in transaction mode is not supported"
        ):
            store.schema_version()
    finally:
        server.close()
