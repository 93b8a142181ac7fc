"""Claiming ahead by measured run time: a worker claims short jobs in large batches
and sizes the broker's prefetch window by their run time, yet a high-priority job submitted
behind a backlog of low ones waits behind no more than the claim-ahead budget of work."""

from __future__ import annotations

import time

from jq_cli.client import Client
from jq_cli.store import Store
from jq_cli.worker.claim_ahead import AHEAD_BUDGET

import handlers_for_tests  # noqa: F401  (registers the t_* job types for in-process workers)
from conftest import wait_for
from handlers_for_tests import read_log

SHORT = 0.005  # seconds each backlog job sleeps: 50 ms of budget on 2 slots is 20 of them


def completed(store: Store, ids: list[int]) -> int:
    return store._one(
        "SELECT count(*) AS n FROM jobs WHERE id = ANY(%s) AND state = 'completed'", (ids,)
    )["n"]


def test_a_high_job_behind_a_backlog_waits_only_behind_the_claim_ahead_budget(
    ops: Client, store: Store, start_worker, tmp_path
):
    log_path = str(tmp_path / "starts.log")
    w = start_worker(concurrency=2)
    low = {"seconds": SHORT, "log": log_path}
    lows = ops.submit_many([{"job_type": "t_sleep", "payload": low, "priority": "low"}] * 600)
    # Once some have run, the worker knows their run time and claims ahead by it.
    wait_for(lambda: completed(store, lows) >= 100, 60, what="100 backlog jobs completed")
    assert w.worker.prefetch > 2, "the prefetch window did not grow for short jobs"
    submitted = time.time()
    high = ops.submit("t_sleep", {"seconds": SHORT, "log": log_path}, priority="high")
    wait_for(lambda: completed(store, [high]) == 1, 30, what="the high job")
    starts = [e for e in read_log(log_path) if e["event"] == "start"]
    high_start = next(e["t"] for e in starts if e["job"] == high)
    behind = [e for e in starts if e["job"] != high and submitted < e["t"] < high_start]
    # Started between the high job's submit and its start: what the two slots were running, what
    # was claimed ahead (AHEAD_BUDGET of slot time: 20 jobs), and one claim's batch in flight.
    # Claiming the whole backlog ahead would put hundreds there.
    bound = 2 + int(AHEAD_BUDGET * 2 / SHORT) * 2
    assert len(behind) <= bound, f"{len(behind)} low jobs started after the high one was submitted"
    wait_for(lambda: completed(store, lows) == len(lows), 60, what="the whole backlog")


def test_the_prefetch_window_shrinks_back_for_long_jobs(ops: Client, store: Store, start_worker):
    w = start_worker(concurrency=2)
    shorts = ops.submit_many([{"job_type": "noop", "payload": {"i": i}} for i in range(300)])
    wait_for(lambda: completed(store, shorts) == len(shorts), 60, what="the short jobs")
    wait_for(lambda: w.worker.prefetch > 10, 10, what="a window grown for short jobs")
    # The heartbeat carries the window as it is: the sweeper subtracts what a busy worker holds.
    assert w.worker.heartbeat_info()["prefetch"] == w.worker.prefetch
    longs = [ops.submit("t_sleep", {"seconds": 0.6}) for _ in range(6)]
    wait_for(lambda: completed(store, longs) == len(longs), 60, what="the long jobs")
    # 0.6 s jobs on two slots: 50 ms of budget claims none ahead, so the window is the slots.
    wait_for(lambda: w.worker.prefetch <= 3, 10, what=lambda: f"prefetch {w.worker.prefetch}")
