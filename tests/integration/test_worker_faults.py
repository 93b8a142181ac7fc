"""Real database faults under a running worker: its PostgreSQL backend terminated
(pg_terminate_backend) at any step of the dispatcher (claim, ack, duplicate check, finish,
renewal) must leave nothing stranded: every job ends, and consumption resumes within seconds."""

from __future__ import annotations

import threading
import time

import psycopg
from jq_cli.broker import Message, Publisher

import handlers_for_tests  # noqa: F401
from conftest import wait_for


def terminate_worker_backends(settings, worker_name: str) -> int:
    """Terminate the worker's PostgreSQL session(s); returns how many were cut."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (f"jq-worker {worker_name}",),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def states(store, ids) -> dict[str, int]:
    rows = store._all(
        "SELECT state, count(*) AS n FROM jobs WHERE id = ANY(%s) GROUP BY state", (ids,)
    )
    return {r["state"]: r["n"] for r in rows}


def test_terminated_backend_mid_drain_strands_no_job(ops, store, settings, start_worker):
    ids = ops.submit_many([{"job_type": "t_record", "payload": {}} for _ in range(400)])
    w = start_worker(name="cut-worker", concurrency=4, prefetch=8)
    cuts = 0
    stop = threading.Event()
    publisher = Publisher(settings.rabbitmq_url, settings.namespace)

    def cutter() -> None:
        nonlocal cuts
        while not stop.is_set():
            cuts += terminate_worker_backends(settings, "cut-worker")
            # duplicates of jobs already claimed send the dispatcher down its duplicate check
            publisher.publish([Message(i, "default", 2) for i in ids[:5]])
            stop.wait(0.15)

    t = threading.Thread(target=cutter, daemon=True)
    t.start()
    try:
        wait_for(
            lambda: cuts >= 5 and states(store, ids).get("completed", 0) > 50,
            60,
            what="several cuts while jobs complete",
        )
    finally:
        stop.set()
        t.join(5)
        publisher.close()
    # Once PostgreSQL answers again, everything drains: nothing sits unacknowledged or stranded.
    # A claim whose commit the cut hid is rescued by its lease (a `lost` attempt), which
    # needs the scheduler; without one every job must still end completed or be running.
    wait_for(
        lambda: (
            states(store, ids).get("completed", 0) + states(store, ids).get("running", 0)
            == len(ids)
        ),
        60,
        what=lambda: f"all jobs completed or running, got {states(store, ids)}",
    )
    assert w.thread.is_alive()
    assert cuts >= 5


def test_consumption_resumes_within_seconds_after_repeated_cuts(
    ops, store, settings, start_worker, start_scheduler
):
    start_scheduler()
    w = start_worker(name="resume-worker", concurrency=2, prefetch=2)
    first = ops.submit_many(
        [{"job_type": "t_sleep", "payload": {"seconds": 0.05}} for _ in range(40)]
    )
    deadline = time.monotonic() + 5
    cut = 0
    while time.monotonic() < deadline:
        cut += terminate_worker_backends(settings, "resume-worker")
        time.sleep(0.05)
    assert cut > 0
    wait_for(
        lambda: states(store, first).get("completed", 0) == len(first),
        60,
        what=lambda: f"the first jobs to complete, got {states(store, first)}",
    )
    # The prefetch window is free again: fresh work is consumed promptly.
    later = ops.submit_many([{"job_type": "noop", "payload": {}} for _ in range(20)])
    wait_for(
        lambda: states(store, later).get("completed", 0) == len(later),
        20,
        what=lambda: f"fresh jobs to complete, got {states(store, later)}",
    )
    assert w.thread.is_alive()
    history = [a["outcome"] for i in first for a in ops.get(i)["attempt_history"]]
    assert history.count("completed") == len(first)
