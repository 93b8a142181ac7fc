"""Async handlers, Snooze and Retry: `async def` handlers run on the worker's event loop, many at
a time within the concurrency, beside sync ones; a handler can ask to run later."""

from __future__ import annotations

import time

import poison_handlers  # noqa: F401  (t_async, t_snooze, t_retry)
from conftest import wait_for

TERMINAL = ("completed", "dead", "cancelled")


def ended(ops, ids: list[int], timeout: float = 30) -> list[dict]:
    def done():
        jobs = [ops.get(i) for i in ids]
        return jobs if all(j["state"] in TERMINAL for j in jobs) else None

    return wait_for(done, timeout, what=f"jobs {ids} to end")


def test_async_handlers_run_concurrently_beside_sync_ones(ops, start_worker):
    start_worker(concurrency=8)
    started = time.monotonic()
    ids = ops.submit_many([{"job_type": "t_async", "payload": {"seconds": 1.0}} for _ in range(8)])
    sync = ops.submit("noop", {})
    jobs = ended(ops, [*ids, sync])
    elapsed = time.monotonic() - started
    assert all(j["state"] == "completed" for j in jobs)
    assert {j["result"]["job"] for j in jobs[:-1]} == set(ids)  # ran, not a coroutine object
    # eight one-second sleeps overlapped on the loop (serial would take eight seconds)
    starts = sorted(j["started_at"] for j in jobs[:-1])
    assert (starts[-1] - starts[0]).total_seconds() < 1.0, starts
    assert elapsed > 0


def test_async_handler_failure_is_retried_and_progress_is_stored(ops, start_worker):
    start_worker(concurrency=2)
    job_id = ops.submit("t_async", {"fail": True}, max_retries=0)
    job = ended(ops, [job_id])[0]
    assert job["state"] == "dead"
    assert "ValueError: async failure" in job["attempt_history"][0]["error"]


def test_async_handler_past_its_time_limit_ends_timeout(ops, start_worker):
    start_worker(concurrency=2)
    job_id = ops.submit("t_async", {"seconds": 60}, time_limit="0.5s", max_retries=0)
    job = ended(ops, [job_id])[0]
    assert [a["outcome"] for a in job["attempt_history"]] == ["timeout"]


def test_cancel_ends_a_running_async_job(ops, start_worker):
    start_worker(concurrency=2)
    job_id = ops.submit("t_async", {"seconds": 60})
    wait_for(lambda: ops.get(job_id)["state"] == "running", 15, what="the job to run")
    ops.cancel([job_id])
    assert ended(ops, [job_id], 15)[0]["state"] == "cancelled"


def test_snooze_reruns_without_spending_an_attempt(ops, start_worker, start_scheduler, tmp_path):
    start_scheduler()
    start_worker()
    job_id = ops.submit("t_snooze", {"marker": str(tmp_path / "runs"), "times": 2})
    job = ended(ops, [job_id])[0]
    assert job["state"] == "completed"  # max_retries=0, yet it ran three times
    assert [a["outcome"] for a in job["attempt_history"]] == ["snoozed", "snoozed", "completed"]
    assert job["result"] == {"runs": 3, "attempt": 1}
    assert job["attempts"] == 1


def test_retry_spends_an_attempt_with_its_own_delay(ops, start_worker, start_scheduler):
    start_scheduler()
    start_worker()
    job_id = ops.submit("t_retry", {"delay": 1.5})
    job = ended(ops, [job_id])[0]
    assert job["state"] == "completed" and job["result"] == {"attempt": 2}
    first, second = job["attempt_history"]
    assert first["outcome"] == "failed" and "not yet" in first["error"]
    gap = (second["started_at"] - first["finished_at"]).total_seconds()
    assert 1.4 <= gap < 10, gap  # its own delay, not the 0.2 s back-off of the test settings


def test_handler_declared_defaults_apply_unless_the_submit_overrides(ops):
    from jq_cli import job

    @job("t_declared", queue="reports", priority="high", max_retries=7, time_limit="45s")
    def declared(payload, ctx):
        return None

    plain = ops.get(ops.submit("t_declared", {}))
    assert (plain["queue"], plain["priority"], plain["max_retries"], plain["time_limit"]) == (
        "reports",
        "high",
        7,
        45.0,
    )
    over = ops.get(ops.submit("t_declared", {}, queue="other", priority="low", max_retries=1))
    assert (over["queue"], over["priority"], over["max_retries"]) == ("other", "low", 1)
