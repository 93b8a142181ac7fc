"""The guards of the store's conditional updates (DESIGN invariant 2), one by one, called directly.

Every state change is one `UPDATE ... WHERE <condition>`; a weakened condition is the bug that
runs a job twice, resurrects a finished one or lets a stale worker overwrite a newer run. Each
test here offers an update every row it must refuse, and checks that those rows did not change
at all (every column, and their attempts), beside the rows it must change.

Most jobs are brought to their state by the store's own transitions. A few rows are forged with
one UPDATE into combinations the code never leaves behind (a finished job still naming a worker,
a lease on a job that is not running): each part of a condition must hold by itself, not only
because another column happens to be NULL.
"""

from __future__ import annotations

from typing import Any

import pytest
from jq_cli.store import Finish, NewJob, Store

W1, W2 = "host:1:w1", "host:2:w2"
TTL = 60.0
STATES = ("scheduled", "queued", "running", "retrying", "completed", "dead", "cancelled")


def insert(store: Store, **kw: Any) -> int:
    return store.job_insert(NewJob("noop", "{}", "default", 2, kw.pop("max_retries", 3), **kw)).id


def ids_of(rows: Any) -> list[int]:
    """The job ids of a query's returned rows (dicts today; typed rows tomorrow)."""
    return sorted(r["id"] if isinstance(r, dict) else r.id for r in rows)


def claim(store: Store, job_id: int, worker: str = W1) -> int:
    """Claim a queued job; returns the run it opened."""
    (row,) = store.job_claim([job_id], worker, TTL)
    return row["run_count"] if isinstance(row, dict) else row.run_count


def snapshot(store: Store, job_id: int) -> tuple[dict, list[dict]]:
    """Every column of the job and of its attempts: what "unchanged" means here."""
    job = store._one("SELECT * FROM jobs WHERE id = %s", (job_id,))
    attempts = store._all("SELECT * FROM attempts WHERE job_id = %s ORDER BY number", (job_id,))
    return job, attempts


def state(store: Store, job_id: int) -> str:
    return store._one("SELECT state FROM jobs WHERE id = %s", (job_id,))["state"]


def forge(store: Store, job_id: int, assignments: str) -> None:
    """Put a row into a combination the code never leaves (see the module's docstring)."""
    store._run(f"UPDATE jobs SET {assignments} WHERE id = %s", (job_id,))


@pytest.fixture
def every_state(store: Store) -> dict[str, int]:
    """One job in each state, each reached through the store's own transitions."""
    jobs = {"scheduled": insert(store, delay=3600.0), "queued": insert(store)}
    jobs["running"] = insert(store)
    claim(store, jobs["running"])
    for name, finish in (
        ("completed", lambda i, r: Finish(i, r, "completed", result_json='{"ok": true}')),
        ("retrying", lambda i, r: Finish(i, r, "failed", error="boom", retry_in=3600.0)),
        ("dead", lambda i, r: Finish(i, r, "failed", error="boom")),
    ):
        jobs[name] = insert(store)
        assert store.job_finish([finish(jobs[name], claim(store, jobs[name]))], W1) == {
            jobs[name]: name
        }
    jobs["cancelled"] = insert(store)
    assert store.job_cancel([jobs["cancelled"]]) == {jobs["cancelled"]: "cancelled"}
    assert {name: state(store, i) for name, i in jobs.items()} == {s: s for s in STATES}
    return jobs


def assert_unchanged(store: Store, before: dict[int, tuple], except_ids: set[int]) -> None:
    for job_id, old in before.items():
        if job_id not in except_ids:
            assert snapshot(store, job_id) == old, f"job {job_id} ({old[0]['state']}) was changed"


def snapshots(store: Store, ids: Any) -> dict[int, tuple]:
    return {i: snapshot(store, i) for i in ids}


# -- claim: only a queued job, and only once ---------------------------------------------------


def test_claim_takes_only_the_queued_job_and_leaves_every_other_state_alone(store, every_state):
    before = snapshots(store, every_state.values())
    claimed = store.job_claim(list(every_state.values()), W2, TTL)
    assert ids_of(claimed) == [every_state["queued"]]
    assert_unchanged(store, before, {every_state["queued"]})
    job, attempts = snapshot(store, every_state["queued"])
    assert (job["state"], job["worker"], job["attempts"]) == ("running", W2, 1)
    assert [(a["number"], a["worker"], a["outcome"]) for a in attempts] == [(1, W2, "running")]


def test_a_second_claim_of_a_running_job_gets_nothing(store):
    job_id = insert(store)
    claim(store, job_id, W1)
    before = snapshot(store, job_id)
    assert store.job_claim([job_id], W2, TTL) == []
    assert snapshot(store, job_id) == before  # still W1's, one attempt


# -- finish: only the claimer's current run ----------------------------------------------------


def test_finish_from_another_worker_changes_nothing(store):
    job_id = insert(store)
    run = claim(store, job_id, W1)
    before = snapshot(store, job_id)[0]
    assert store.job_finish([Finish(job_id, run, "completed", result_json="{}")], W2) == {}
    assert snapshot(store, job_id)[0] == before


def test_finish_of_an_older_run_changes_nothing_and_the_current_run_still_finishes(store):
    job_id = insert(store)
    first = claim(store, job_id, W1)
    assert ids_of(store.job_hand_back([job_id], W1)) == [job_id]
    second = claim(store, job_id, W1)  # the same worker got it back: only the run tells them apart
    assert second == first + 1
    before = snapshot(store, job_id)
    assert store.job_finish([Finish(job_id, first, "failed", error="late")], W1) == {}
    assert snapshot(store, job_id) == before
    assert store.job_finish([Finish(job_id, second, "completed", result_json="{}")], W1) == {
        job_id: "completed"
    }


def test_finish_of_a_job_that_is_no_longer_running_changes_nothing(store, every_state):
    # A second outcome for a finished job: the duplicate report a retried batch would send.
    done = every_state["completed"]
    run = snapshot(store, done)[0]["run_count"]
    before = snapshot(store, done)
    assert store.job_finish([Finish(done, run, "failed", error="again")], W1) == {}
    assert snapshot(store, done) == before
    # A retrying job that still names its worker and run: the state alone must refuse it.
    retrying = every_state["retrying"]
    forge(store, retrying, f"worker = '{W1}'")
    before = snapshot(store, retrying)
    run = before[0]["run_count"]
    assert store.job_finish([Finish(retrying, run, "completed", result_json="{}")], W1) == {}
    assert snapshot(store, retrying) == before


# -- renew: only this worker's running jobs ----------------------------------------------------


def test_renew_extends_only_this_workers_running_jobs(store, every_state):
    mine, theirs = every_state["running"], insert(store)
    claim(store, theirs, W2)
    forge(store, every_state["queued"], f"worker = '{W1}'")  # not running: state alone refuses
    store._run(  # leases about to end, so that a renewal shows
        "UPDATE jobs SET lease_expires_at = now() + interval '1 second' WHERE id = ANY(%s)",
        ([mine, theirs],),
    )
    before = snapshots(store, [*every_state.values(), theirs])
    renewed = store.job_lease_renew([*every_state.values(), theirs], W1, TTL)
    assert list(renewed) == [mine]
    assert_unchanged(store, before, {mine})
    assert snapshot(store, mine)[0]["lease_expires_at"] > before[mine][0]["lease_expires_at"]


# -- rescue: only running jobs whose lease has expired -----------------------------------------


def test_rescue_takes_back_only_running_jobs_whose_lease_expired(store, every_state):
    expired, live = every_state["running"], insert(store)
    claim(store, live, W2)
    forge(store, expired, "lease_expires_at = now() - interval '1 second'")
    # Finished and waiting jobs with a worker and a lease long past: the state alone refuses.
    for name in ("retrying", "completed", "queued"):
        forge(
            store,
            every_state[name],
            f"worker = '{W1}', lease_expires_at = now() - interval '1 hour'",
        )
    before = snapshots(store, [*every_state.values(), live])
    assert ids_of(store.job_rescue_expired(100)) == [expired]
    assert_unchanged(store, before, {expired})
    job, attempts = snapshot(store, expired)
    assert (job["state"], job["worker"]) == ("queued", None)
    assert attempts[-1]["outcome"] == "lost"


# -- hand back: only this worker's running jobs ------------------------------------------------


def test_hand_back_returns_only_this_workers_running_jobs(store, every_state):
    mine, theirs = every_state["running"], insert(store)
    claim(store, theirs, W2)
    forge(store, every_state["completed"], f"worker = '{W1}'")  # finished: state alone refuses
    before = snapshots(store, [*every_state.values(), theirs])
    assert ids_of(store.job_hand_back([*every_state.values(), theirs], W1)) == [mine]
    assert_unchanged(store, before, {mine})
    job, attempts = snapshot(store, mine)
    assert (job["state"], job["attempts"], attempts[-1]["outcome"]) == ("queued", 0, "interrupted")


# -- promote: only scheduled and retrying jobs that are due ------------------------------------


def test_promote_moves_only_due_scheduled_and_retrying_jobs(store, every_state):
    due_scheduled, due_retrying = insert(store, delay=3600.0), every_state["retrying"]
    forge(store, due_scheduled, "run_at = now() - interval '1 second'")
    forge(store, due_retrying, "run_at = now() - interval '1 second'")
    # Every other job has a run_at in the past too (except the scheduled one, due in an hour).
    for name in ("queued", "running", "completed", "dead", "cancelled"):
        forge(store, every_state[name], "run_at = now() - interval '1 hour'")
    before = snapshots(store, [*every_state.values(), due_scheduled])
    promoted = store.job_promote_due(100)
    assert ids_of(promoted) == sorted([due_scheduled, due_retrying])
    assert_unchanged(store, before, {due_scheduled, due_retrying})
    assert state(store, due_scheduled) == state(store, due_retrying) == "queued"


# -- retry: only dead and cancelled jobs -------------------------------------------------------


def test_retry_brings_back_only_dead_and_cancelled_jobs(store, every_state):
    before = snapshots(store, every_state.values())
    retried = store.job_retry(list(every_state.values()))
    assert ids_of(retried) == sorted([every_state["dead"], every_state["cancelled"]])
    assert_unchanged(store, before, {every_state["dead"], every_state["cancelled"]})
    for name in ("dead", "cancelled"):
        job, attempts = snapshot(store, every_state[name])
        assert (job["state"], job["attempts"]) == ("queued", 0)
        assert attempts == before[every_state[name]][1]  # the history is kept


# -- cancel: only jobs not finished, and a running one only once -------------------------------


def test_cancel_changes_only_jobs_not_finished_and_asks_a_running_job_once(store, every_state):
    before = snapshots(store, every_state.values())
    changed = store.job_cancel(list(every_state.values()))
    assert changed == {
        every_state["scheduled"]: "cancelled",
        every_state["queued"]: "cancelled",
        every_state["retrying"]: "cancelled",
        every_state["running"]: "running",  # asked to stop; its worker ends it
    }
    assert_unchanged(store, before, set(changed))
    running = snapshot(store, every_state["running"])
    assert running[0]["cancel_requested"] and running[0]["finished_at"] is None
    assert store.job_cancel([every_state["running"]]) == {}  # asked already: nothing changes
    assert snapshot(store, every_state["running"]) == running


def test_finish_from_another_worker_leaves_the_holders_attempt_open(store):
    job_id = insert(store)
    run = claim(store, job_id, W1)
    before = snapshot(store, job_id)[1]
    store.job_finish([Finish(job_id, run, "completed", result_json="{}")], W2)
    assert snapshot(store, job_id)[1] == before
