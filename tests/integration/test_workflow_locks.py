"""Finish batches that settle the same children take their locks in one order: no deadlock
between workers completing shared parents, and every child released once (docs/design.md,
Invariant 8)."""

from __future__ import annotations

import logging
import threading

import psycopg
from jq_cli import job
from jq_cli.store import Store
from jq_cli.store.records import Finish

from conftest import wait_for


@job("t_fan_in")
def t_fan_in(payload: dict, ctx) -> dict:
    return {"parents": len(ctx.parent_results or [])}


def _blocked(store: Store, pid: int) -> bool:
    row = store._one(
        "SELECT wait_event_type = 'Lock' AS blocked FROM pg_stat_activity WHERE pid = %s", (pid,)
    )
    return bool(row and row["blocked"])


def test_finish_batches_settling_shared_children_in_opposite_orders_do_not_deadlock(
    ops, settings, store, caplog
):
    """Batch A completes a1, a2, a3 (parents of c1, x, c2: its trigger settles them in that
    order); batch B b1, b2 (of c2, c1). A third session holds x, so that A waits on it holding
    c1 while B takes c2 and waits for c1: unless each batch locks its children first, in id
    order, A then waits for c2 and the two wait for each other."""
    a1, a2, a3, b1, b2 = (ops.submit("noop", {}) for _ in range(5))
    x = ops.submit("noop", {}, depends_on=[a2])
    c1 = ops.submit("noop", {}, depends_on=[a1, b2])
    c2 = ops.submit("noop", {}, depends_on=[a3, b1])
    stores = [Store(settings.database_url, settings.namespace) for _ in range(2)]
    batches = {"wa": [a1, a2, a3], "wb": [b1, b2]}
    for s, (worker, parents) in zip(stores, batches.items(), strict=True):
        assert len(s.job_claim(parents, worker, 60)) == len(parents)
    results: dict[str, object] = {}

    def finish(s: Store, worker: str) -> None:
        try:
            done = [Finish(p, 1, "completed", "{}") for p in batches[worker]]
            results[worker] = s.job_finish(done, worker)
        except Exception as exc:  # the test's verdict, below
            results[worker] = exc

    caplog.set_level(logging.WARNING, logger="jq.store")
    threads = [
        threading.Thread(target=finish, args=(s, w)) for s, w in zip(stores, batches, strict=True)
    ]
    holder = psycopg.connect(settings.database_url)
    try:
        holder.execute(f"SET search_path = {settings.namespace}")
        holder.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (x,))
        for s, thread, worker in zip(stores, threads, batches, strict=True):
            thread.start()
            pid = s.conn.info.backend_pid
            # With its children locked first, B may finish at once: A holds none of them yet.
            wait_for(
                lambda pid=pid, worker=worker: _blocked(store, pid) or worker in results,
                10,
                what=f"{worker} to wait or finish",
            )
    finally:
        holder.rollback()
        holder.close()
    for thread in threads:
        thread.join(30)
    for s in stores:
        s.close()
    assert results == {
        "wa": {a1: "completed", a2: "completed", a3: "completed"},
        "wb": {b1: "completed", b2: "completed"},
    }
    assert "deadlock" not in caplog.text
    for child in (x, c1, c2):
        assert (ops.get(child)["state"], ops.get(child)["pending_parents"]) == ("queued", 0)
    outbox = store._all("SELECT job_id FROM job_outbox WHERE job_id = ANY(%s)", ([x, c1, c2],))
    assert sorted(r["job_id"] for r in outbox) == [x, c1, c2]


def test_two_workers_completing_shared_parents_release_each_child_once(
    ops, start_worker, start_scheduler, caplog
):
    """Many small fan-ins: four parents, two children waiting for all four."""
    children: list[int] = []
    for _ in range(40):
        parents = [ops.submit("noop", {}) for _ in range(4)]
        children.append(ops.submit("t_fan_in", {}, depends_on=parents))
        children.append(ops.submit("t_fan_in", {}, depends_on=parents[::-1]))
    caplog.set_level(logging.INFO)
    start_scheduler()
    start_worker(concurrency=8)
    start_worker(concurrency=8)

    def all_done() -> bool:
        return all(ops.get(c)["state"] == "completed" for c in children)

    wait_for(all_done, 60, interval=0.2, what="every child completed")
    for child in children:
        row = ops.get(child)
        assert row["result"] == {"parents": 4} and len(row["attempt_history"]) == 1
    assert "deadlock" not in caplog.text
    assert "database_unavailable" not in caplog.text
