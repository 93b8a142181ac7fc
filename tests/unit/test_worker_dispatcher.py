"""The dispatcher's other duties, with stand-ins: cancels and time limits reach the handler (ask,
interrupt, abandon), a job that comes back while an older run is alive, handlers' progress."""

from __future__ import annotations

import contextlib
import time

from jq_cli.errors import DatabaseUnavailable
from jq_cli.handlers.registry import ForcedCancel, JobTimeout

from .worker_standins import claimed_job, delivery, worker_parts


def started(w, *jobs):
    w.store.queue(*jobs)
    w.deliver(*(delivery(j.id, tag=j.id) for j in jobs))
    w.dispatcher.cycle()
    return w.pool.submitted[-len(jobs) :]


def test_a_heard_cancel_asks_the_handler_then_interrupts_then_abandons_it():
    w = worker_parts()
    (running,) = started(w, claimed_job(1))
    grace = w.dispatcher.settings.stop_grace
    now = time.monotonic()
    w.cancels.heard.append(1)
    w.dispatcher.dispatch_once(now)
    assert running.cancel.is_set() and running.cancel_seen == now and not w.pool.interrupted
    w.dispatcher.dispatch_once(now + grace)  # ignored the flag: raised into
    assert w.pool.interrupted == [(running, ForcedCancel)] and running.stop_reason == "cancelled"
    w.dispatcher.dispatch_once(now + 2 * grace)  # ignored that too: abandoned, and ended for it
    assert w.pool.abandoned_jobs == [running]
    w.dispatcher.cycle()
    assert w.store.calls[-1] == ("finish_and_claim", [1], [])
    assert not w.dispatcher.running


def test_a_job_past_its_time_limit_is_interrupted_with_a_timeout():
    w = worker_parts()
    (running,) = started(w, claimed_job(1, time_limit=5.0))
    assert running.limit == 5.0 and running.deadline == running.started + 5.0
    w.dispatcher.dispatch_once(running.deadline - 0.01)
    assert not w.pool.interrupted
    w.dispatcher.dispatch_once(running.deadline)
    assert w.pool.interrupted == [(running, JobTimeout)] and running.cancel.is_set()
    w.complete(running, "timeout")  # it yielded: its own outcome counts
    w.dispatcher.dispatch_once(running.deadline + 1)
    assert w.store.states[1] == "retrying" and not w.dispatcher.running


def test_a_job_that_was_asked_to_cancel_before_its_claim_starts_cancelled():
    w = worker_parts()
    (running,) = started(w, claimed_job(1, cancel_requested=True))
    assert running.cancel.is_set() and running.cancel_seen is not None


def test_the_time_limit_is_the_jobs_then_its_handlers_then_the_workers():
    w = worker_parts()
    limit = w.dispatcher._time_limit
    assert limit(claimed_job(1, time_limit=3.0)) == 3.0
    assert limit(claimed_job(1)) is None  # no default here


def test_a_job_that_comes_back_stops_its_older_run_which_then_counts_for_nothing():
    w = worker_parts()
    (old,) = started(w, claimed_job(1))
    (new,) = started(w, claimed_job(1, run_count=2))
    assert old.lost and old.cancel.is_set() and w.dispatcher.running[1] is new
    w.complete(old, "failed")  # the old run's late outcome must not drop the new run
    w.dispatcher.cycle()
    assert w.dispatcher.running == {1: new}


def test_progress_is_written_coalesced_and_kept_while_postgresql_is_away():
    w = worker_parts()
    (running,) = started(w, claimed_job(1))
    w.dispatcher.progress.put(1, 10.0, "a")
    w.dispatcher.progress.put(1, 20.0, "b")
    w.store.refuse["job_progress"] = DatabaseUnavailable("postgresql://x", "gone")
    now = time.monotonic()
    with contextlib.suppress(DatabaseUnavailable):
        w.dispatcher.dispatch_once(now)
    w.dispatcher.dispatch_once(now + 1)
    assert w.store.named("progress") == [("progress", {1: (20.0, "b")})] * 2
    w.complete(running)
    w.dispatcher.progress.put(1, 90.0, None)  # reported after its outcome: not written
    w.dispatcher.cycle()
    assert w.dispatcher.progress.take() == {}
