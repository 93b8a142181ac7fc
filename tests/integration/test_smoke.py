"""The shortest path through the system: submit, a worker runs it, Postgres shows it completed."""

from conftest import wait_for


def test_submitted_job_completes_on_a_worker(ops, start_worker):
    job_id = ops.submit("noop", {"n": 1})
    start_worker()
    job = wait_for(
        lambda: ops.get(job_id)["state"] == "completed" and ops.get(job_id), what="job completed"
    )
    assert job["attempts"] == 1
    assert [a["outcome"] for a in job["attempt_history"]] == ["completed"]
