"""Every outcome a worker produces reaches Postgres: N jobs through a real worker, and each one
ends completed with exactly one attempt, closed, by that worker. A worker that loses outcomes
(in its batches, its queue or its group commit) leaves jobs running or attempts open here."""

from __future__ import annotations

from conftest import wait_for

N = 60


def test_every_job_through_a_worker_ends_completed_with_exactly_one_attempt(ops, start_worker):
    priorities = ("high", "medium", "low")
    ids = ops.submit_many(
        [{"job_type": "noop", "payload": {"i": i}, "priority": priorities[i % 3]} for i in range(N)]
    )
    start_worker(name="outcomes")

    def states() -> dict[str, list[int]]:
        by_state: dict[str, list[int]] = {}
        for job_id in ids:
            by_state.setdefault(ops.get(job_id)["state"], []).append(job_id)
        return by_state

    # Generous for a loaded machine: the N jobs take about a second here.
    wait_for(
        lambda: set(states()) <= {"completed", "dead", "cancelled"},
        60,
        what=lambda: f"all {N} jobs to end; by state: {states()}",
    )
    assert set(states()) == {"completed"}, states()
    for job_id in ids:
        job = ops.get(job_id)
        history = [(a["number"], a["worker"], a["outcome"]) for a in job["attempt_history"]]
        assert history == [(1, "outcomes", "completed")], (job_id, history)
        assert job["attempts"] == 1 and job["attempt_history"][0]["finished_at"] is not None
