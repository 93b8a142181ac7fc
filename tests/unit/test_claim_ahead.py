"""claim_ahead: how far a worker claims beyond its free slots, and when it goes to PostgreSQL."""

from __future__ import annotations

import pytest
from jq_cli.worker.claim_ahead import (
    AHEAD_BUDGET,
    FINISH_LINGER,
    MAX_AHEAD,
    RunTimes,
    ahead_allowed,
    pace,
    should_resize,
    wanted_prefetch,
)


def measured(**means: float) -> RunTimes:
    runtimes = RunTimes()
    for job_type, seconds in means.items():
        runtimes.observe(job_type, seconds)
    return runtimes


def test_nothing_is_claimed_ahead_before_a_run_time_was_measured():
    assert ahead_allowed(RunTimes(), 8, {}) == 0
    assert wanted_prefetch(RunTimes(), 8) == 8


def test_the_moving_mean_follows_new_run_times_per_type_and_overall():
    runtimes = measured(short=0.001)
    for _ in range(200):
        runtimes.observe("long", 1.0)
    assert runtimes.mean("short") == pytest.approx(0.001)
    assert runtimes.mean("long") == pytest.approx(1.0)
    assert runtimes.mean("never_seen") == runtimes.mean() == pytest.approx(1.0, rel=1e-3)


def test_claimed_ahead_work_fits_the_budget_of_the_pools_time():
    runtimes = measured(noop=0.002)
    ahead = ahead_allowed(runtimes, 4, {})
    assert ahead == int(AHEAD_BUDGET * 4 / 0.002)  # 100 jobs of 2 ms on 4 slots: 50 ms each
    # What already waits counts against it, by its own type's run time.
    runtimes.observe("slow", 0.05)
    assert ahead_allowed(runtimes, 4, {"slow": 3}) < ahead_allowed(runtimes, 4, {"noop": 3})
    assert ahead_allowed(runtimes, 4, {"slow": 4}) == 0  # 200 ms of slot time already waits


def test_long_jobs_are_claimed_only_for_free_slots_and_short_ones_at_most_max_ahead():
    assert ahead_allowed(measured(video=30.0), 8, {}) == 0
    assert wanted_prefetch(measured(video=30.0), 8) == 8
    assert ahead_allowed(measured(noop=1e-6), 8, {}) == MAX_AHEAD
    assert wanted_prefetch(measured(noop=1e-6), 8) == 8 + MAX_AHEAD


def test_the_prefetch_window_changes_only_on_a_large_move():
    assert not should_resize(100, 150) and not should_resize(100, 60)
    assert should_resize(100, 200) and should_resize(100, 50)


def pace_of(**kw):
    base = dict(busy=0, waiting={}, inbox=0, outcomes=0, oldest_outcome_age=0.0, stopping=False)
    return pace(measured(noop=0.001), 4, **{**base, **kw})


def test_an_idle_worker_records_an_outcome_at_once():
    step = pace_of(outcomes=1)
    assert step.now


def test_a_busy_pool_with_work_claimed_ahead_holds_outcomes_for_its_next_claim():
    waiting = {"noop": 150}  # 150 ms of 1 ms jobs on 4 slots: more than half the budget
    assert not pace_of(busy=4, waiting=waiting, inbox=50, outcomes=10).now
    assert pace_of(busy=4, waiting=waiting, outcomes=10, oldest_outcome_age=FINISH_LINGER).now
    assert pace_of(busy=4, waiting=waiting, outcomes=MAX_AHEAD).now


def test_a_pool_running_low_claims_now_and_an_idle_slot_is_filled_at_once():
    assert pace_of(busy=4, waiting={"noop": 10}, inbox=50).now
    step = pace_of(busy=3, inbox=1)
    assert step.now and step.claim >= 1


def test_a_stopping_worker_claims_nothing_and_flushes_what_it_holds():
    step = pace_of(busy=4, waiting={"noop": 150}, inbox=50, outcomes=3, stopping=True)
    assert step.claim == 0 and step.now


def test_a_cancel_event_made_lazily_still_wakes_its_waiter():
    import threading
    import time

    from jq_cli.worker.pools import CancelEvent

    flag = CancelEvent()
    assert not flag.is_set() and not flag.wait(0.01)
    waited: list[bool] = []
    waiter = threading.Thread(target=lambda: waited.append(flag.wait(5)))
    waiter.start()
    time.sleep(0.05)  # the waiter is inside wait(): set() must reach it through the event
    begun = time.monotonic()
    flag.set()
    waiter.join(5)
    assert waited == [True] and time.monotonic() - begun < 1
    assert CancelEvent().wait(0) is False
    already = CancelEvent()
    already.set()
    assert already.wait(0) and already.is_set()
