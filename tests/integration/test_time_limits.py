"""Time limits and cancels that end: a handler past its limit ends its attempt `timeout` (retried
by its policy), in the thread pool by an exception raised into its thread (a thread stuck in a
C call is abandoned and replaced), in the process pool by killing its process; `jq cancel`
ends a running job that ignores it."""

from __future__ import annotations

import os

import poison_handlers  # noqa: F401  (t_hang, t_limited)
from conftest import make_settings, wait_for

TERMINAL = ("completed", "dead", "cancelled")


def ended(ops, job_id: int, timeout: float = 30) -> dict:
    def done():
        job = ops.get(job_id)
        return job if job["state"] in TERMINAL else None

    return wait_for(
        done, timeout, what=lambda: f"job {job_id} to end, is {ops.get(job_id)['state']}"
    )


def outcomes(job: dict) -> list[str]:
    return [a["outcome"] for a in job["attempt_history"]]


def test_handler_declared_limit_times_out_and_is_retried_by_its_policy(
    ops, start_worker, start_scheduler
):
    start_scheduler()
    w = start_worker(concurrency=2)
    job_id = ops.submit("t_limited", {})  # @job(time_limit="1s", max_retries=1)
    job = ended(ops, job_id)
    assert job["state"] == "dead"
    assert outcomes(job) == ["timeout", "timeout"]
    assert "time limit of 1s" in job["attempt_history"][0]["error"]
    # the slot is free: a short job still runs
    quick = ops.submit("t_limited", {"seconds": 0})
    assert ended(ops, quick)["state"] == "completed"
    assert w.worker.timeouts >= 2


def test_per_job_limit_overrides_and_a_blocked_thread_is_abandoned(ops, start_worker):
    w = start_worker(concurrency=1)
    job_id = ops.submit("t_hang", {"mode": "block", "seconds": 30}, time_limit="0.5s")
    job = ended(ops, job_id)
    assert job["state"] == "dead" and outcomes(job) == ["timeout"]
    assert ops.get(job_id)["time_limit"] == 0.5
    # the one slot has a new thread: the next job runs while the old thread still sleeps
    after = ops.submit("noop", {})
    assert ended(ops, after)["state"] == "completed"
    info = w.worker.heartbeat_info()
    assert info["abandoned"] == 1, info


def test_worker_default_limit_applies_to_jobs_without_one(ops, settings, start_worker):
    start_worker(settings=make_settings(settings.namespace, worker_time_limit=0.5))
    job = ended(ops, ops.submit("t_hang", {"mode": "loop", "seconds": 60}))
    assert outcomes(job) == ["timeout"]


def test_process_pool_kills_the_job_process_past_its_limit(ops, spawn):
    tests_dir = os.path.dirname(__file__)
    proc = spawn(
        "worker",
        "--import",
        "poison_handlers",
        "--pool",
        "process",
        "--concurrency",
        "1",
        extra_env={"PYTHONPATH": tests_dir},
    )
    try:
        job_id = ops.submit("t_hang", {"mode": "block", "seconds": 60}, time_limit="1s")
        job = ended(ops, job_id, 40)
        assert outcomes(job) == ["timeout"], job
        after = ops.submit("noop", {})
        assert ended(ops, after, 30)["state"] == "completed"
        assert proc.poll() is None
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_cancel_ends_a_running_job_that_ignores_it(ops, start_worker):
    w = start_worker(concurrency=1)
    job_id = ops.submit("t_hang", {"mode": "loop", "seconds": 120})
    wait_for(lambda: ops.get(job_id)["state"] == "running", 15, what="the job to run")
    ops.cancel([job_id])
    job = ended(ops, job_id, 15)
    assert job["state"] == "cancelled" and outcomes(job) == ["cancelled"]
    assert ended(ops, ops.submit("noop", {}))["state"] == "completed"  # its slot is free
    assert w.worker.heartbeat_info()["abandoned"] == 0  # it yielded: no thread was abandoned


def test_cancel_ends_a_job_blocked_in_a_c_call(ops, start_worker):
    w = start_worker(concurrency=1)
    job_id = ops.submit("t_hang", {"mode": "block", "seconds": 60})
    wait_for(lambda: ops.get(job_id)["state"] == "running", 15, what="the job to run")
    ops.cancel([job_id])
    job = ended(ops, job_id, 20)
    assert job["state"] == "cancelled"
    assert ended(ops, ops.submit("noop", {}))["state"] == "completed"
    assert w.worker.heartbeat_info()["abandoned"] == 1
