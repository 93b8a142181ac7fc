"""Limits that hold across every worker: three workers against a concurrency limit
per payload key, a rate limit and a queue limit set from the CLI; the attempts' timestamps show
the limit never exceeded and reached. A job held back is no attempt: it waits as limited."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from jq_cli.handlers import job
from jq_cli.store import Store

from conftest import make_settings, wait_for

CLOSED = "127.0.0.1:1"  # nothing listens on port 1: Redis refused at once


@job("limited_by_host", concurrency=2, concurrency_key="host")
def limited_by_host(payload, ctx):
    """Sleeps a little, two per host at most."""
    time.sleep(payload.get("sleep", 0.2))


@job("one_per_host", concurrency=1, concurrency_key="host")
def one_per_host(payload, ctx):
    """A tenth of a second, one per host at a time: ten a second per host."""
    time.sleep(0.1)


@job("rate_limited", rate="5/s")
def rate_limited(payload, ctx):
    """Does nothing, five starts a second at most."""


def attempts_of(store: Store, ids: list[int]) -> list[dict]:
    return store._all(
        "SELECT a.job_id, a.started_at, a.finished_at, j.payload FROM attempts a"
        " JOIN jobs j ON j.id = a.job_id WHERE a.job_id = ANY(%s) ORDER BY a.started_at",
        (ids,),
    )


def most_at_once(rows: list[dict]) -> int:
    """The largest number of attempts running at the same moment."""
    edges = sorted(
        [(r["started_at"], 1) for r in rows] + [(r["finished_at"], -1) for r in rows],
        key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
    )
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def most_per_window(rows: list[dict], window: timedelta) -> int:
    starts = [r["started_at"] for r in rows]
    return max(sum(1 for s in starts if t <= s < t + window) for t in starts)


def run_three_workers(start_worker, start_scheduler, settings=None) -> None:
    kwargs = {"settings": settings} if settings is not None else {}
    for _ in range(3):
        start_worker(concurrency=4, queues=["default", "reports"], **kwargs)
    start_scheduler(**kwargs)  # queues again what a limit held back


def test_a_concurrency_limit_per_key_holds_across_three_workers(
    ops, store, start_worker, start_scheduler
):
    ids = {
        host: [ops.submit("limited_by_host", {"host": host, "sleep": 0.3}) for _ in range(8)]
        for host in ("a.example", "b.example")
    }
    every = ids["a.example"] + ids["b.example"]
    run_three_workers(start_worker, start_scheduler)
    wait_for(lambda: store.job_count_limited() > 0, 30, what="a job held back by the limit")
    held = store._one("SELECT id, limited_by FROM jobs WHERE limited_by IS NOT NULL LIMIT 1")
    assert "concurrency 2 of type:limited_by_host:host=" in held["limited_by"]
    wait_for(
        lambda: set(store.job_states(every).values()) == {"completed"},
        90,
        what="every limited job to complete",
    )
    rows = attempts_of(store, every)
    assert len(rows) == len(every)  # held back was never an attempt
    for host, host_ids in ids.items():
        mine = [r for r in rows if r["job_id"] in host_ids]
        assert most_at_once(mine) == 2, host  # never over the limit, and it was reached


MISSING = object()  # a payload without the key field


def test_a_concurrency_limit_holds_for_every_kind_of_key_value(
    ops, store, start_worker, start_scheduler
):
    """The key's value is one function of the payload, in PostgreSQL, for the keys the claim
    locks and the running jobs it counts: a missing field, JSON null, numbers, a string that
    spells a number, nested values and non-ASCII text each form one key of their own."""
    values = [MISSING, None, 1, "1", 2.5, ["é"], {"b": [1, {"c": "ü"}], "a": None}, "é"]
    ids: dict[int, list[int]] = {}
    for n, value in enumerate(values):
        payload = {"sleep": 0.3} if value is MISSING else {"host": value, "sleep": 0.3}
        ids[n] = [ops.submit("limited_by_host", payload) for _ in range(6)]
    every = [i for group in ids.values() for i in group]
    run_three_workers(start_worker, start_scheduler)
    wait_for(
        lambda: set(store.job_states(every).values()) == {"completed"},
        120,
        what="every limited job to complete",
    )
    rows = attempts_of(store, every)
    assert len(rows) == len(every)
    for n, group in ids.items():
        mine = [r for r in rows if r["job_id"] in group]
        assert most_at_once(mine) <= 2, repr(values[n])


def test_a_limited_key_starts_its_jobs_in_submit_order(ops, store, start_worker, start_scheduler):
    """A burst of 30, then a feed at 80 % of the key's capacity: jobs held back by the limit
    are not overtaken by newer arrivals of the same priority and key."""
    start_worker(concurrency=4)
    start_worker(concurrency=4)
    start_scheduler()
    every = [ops.submit("one_per_host", {"host": "h"}) for _ in range(30)]
    begin = time.monotonic()
    for n in range(24):  # 8 a second against a capacity of 10: paced, not waited on
        time.sleep(max(0.0, begin + n / 8 - time.monotonic()))
        every.append(ops.submit("one_per_host", {"host": "h"}))
    wait_for(
        lambda: set(store.job_states(every).values()) == {"completed"},
        120,
        what="every job of the key to complete",
    )
    rows = attempts_of(store, every)
    assert len(rows) == len(every)
    assert most_at_once(rows) == 1
    started = [r["job_id"] for r in rows]  # in start order
    inversions = sum(1 for i, a in enumerate(started) for b in started[i + 1 :] if a > b)
    assert inversions == 0, started


def test_a_rate_limit_holds_across_three_workers(ops, store, start_worker, start_scheduler):
    every = [ops.submit("rate_limited", {"n": n}) for n in range(20)]
    run_three_workers(start_worker, start_scheduler)
    wait_for(
        lambda: set(store.job_states(every).values()) == {"completed"},
        90,
        what="every rate limited job to complete",
    )
    rows = attempts_of(store, every)
    assert len(rows) == len(every)
    assert most_per_window(rows, timedelta(seconds=1)) == 5


def test_a_queue_limit_from_the_cli_holds_and_stats_and_show_say_limited(
    ops, store, run_cli, start_worker, start_scheduler
):
    # Limited before its first job: a new queue on purpose (without --new-queue, exit 2).
    set_limit = run_cli("queue", "limit", "reports", "--concurrency", "1", "--new-queue", "--json")
    assert set_limit.returncode == 0, set_limit.stderr
    assert json.loads(set_limit.stdout)["concurrency"] == 1
    every = [
        ops.submit("limited_by_host", {"host": f"h{n}", "sleep": 0.3}, queue="reports")
        for n in range(5)
    ]
    run_three_workers(start_worker, start_scheduler)
    wait_for(lambda: store.job_count_limited() > 0, 30, what="a job held back")
    limited = store._one("SELECT id FROM jobs WHERE state = 'scheduled' AND limited_by IS NOT NULL")
    if limited is not None:  # it may have been queued again meanwhile
        shown = run_cli("show", str(limited["id"])).stdout
        assert "limited" in shown or "running" in shown or "completed" in shown
    assert "limited" in run_cli("stats", "--json").stdout
    wait_for(lambda: set(store.job_states(every).values()) == {"completed"}, 90, what="done")
    assert most_at_once(attempts_of(store, every)) == 1
    listed = {q["name"]: q for q in json.loads(run_cli("queue", "list", "--json").stdout)["queues"]}
    assert listed["reports"]["limit"] == "1 at once"
    assert [r["action"] for r in store.audit_list(action="queue.limit")] == ["queue.limit"]

    assert run_cli("queue", "limit", "reports", "--rate", "ten").returncode == 2
    assert run_cli("queue", "limit", "reports", "--concurrency", "0").returncode == 2
    assert run_cli("queue", "limit", "reports").returncode == 0  # no limit any more
    assert store.limit_rows() == [r for r in store.limit_rows() if r["scope"] == "type"]


def test_limits_hold_with_redis_down_because_they_live_in_postgres(
    settings, ops, store, start_worker, start_scheduler
):
    no_redis = make_settings(settings.namespace, redis_url=f"redis://{CLOSED}/0")
    ids = [ops.submit("limited_by_host", {"host": "a.example", "sleep": 0.2}) for _ in range(6)]
    run_three_workers(start_worker, start_scheduler, no_redis)
    wait_for(
        lambda: set(store.job_states(ids).values()) == {"completed"},
        90,
        what="the limited jobs with Redis down",
    )
    rows = attempts_of(store, ids)
    assert len(rows) == len(ids) and most_at_once(rows) == 2


def test_a_bad_limit_on_a_handler_is_refused_when_it_is_declared():
    from jq_cli.errors import InvalidInput

    with pytest.raises(InvalidInput):
        job("bad_limit", rate="5 per second")
    with pytest.raises(InvalidInput):
        job("bad_limit", concurrency=0)
