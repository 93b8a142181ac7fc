"""Each scheduler duty's run_once() against stand-ins: what it asks the store, what it publishes,
and the counts it returns. No services."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from jq_cli.errors import BrokerUnavailable
from jq_cli.scheduler import cron as cron_duty
from jq_cli.scheduler import promote, prune, rescue
from jq_cli.scheduler.cron import CronFirer
from jq_cli.scheduler.promote import Promoter
from jq_cli.scheduler.prune import Pruner, backlog_left
from jq_cli.scheduler.rescue import Rescuer
from jq_cli.scheduler.sweep import REPUBLISH_LIMIT, Sweeper, held_by_workers

from .scheduler_standins import FixedCensus, RecordingPublisher, ScriptedStore, job

BROKER_AWAY = BrokerUnavailable("amqp://127.0.0.1:1/", "connection refused")

# -- promote ------------------------------------------------------------------------------------


def test_promoter_publishes_the_due_jobs_and_counts_them():
    store = ScriptedStore(job_promote_due=[[job(1, priority=3), job(2, queue="mail")]])
    publisher = RecordingPublisher()
    assert Promoter(store, publisher).run_once() == 2
    assert store.asked("job_promote_due") == [(promote.BATCH,)]
    assert [(m.job_id, m.queue, m.priority) for m in publisher.published] == [
        (1, "default", 3),
        (2, "mail", 2),
    ]


def test_promoter_asks_again_while_batches_come_back_full(monkeypatch):
    monkeypatch.setattr(promote, "BATCH", 2)
    store = ScriptedStore(job_promote_due=[[job(1), job(2)], [job(3), job(4)], [job(5)]])
    publisher = RecordingPublisher()
    assert Promoter(store, publisher).run_once() == 5
    assert len(store.asked("job_promote_due")) == 3
    assert publisher.ids() == [1, 2, 3, 4, 5]


def test_promoter_with_nothing_due_publishes_nothing():
    store = ScriptedStore(job_promote_due=[[]])
    publisher = RecordingPublisher()
    assert Promoter(store, publisher).run_once() == 0
    assert publisher.published == []


def test_promoter_counts_what_it_promoted_when_the_broker_is_away(caplog):
    # The jobs are queued in PostgreSQL all the same; the sweeper publishes them later.
    store = ScriptedStore(job_promote_due=[[job(1), job(2)]])
    with caplog.at_level(logging.WARNING, logger="jq.scheduler"):
        assert Promoter(store, RecordingPublisher(fail=BROKER_AWAY)).run_once() == 2
    assert any("event=publish_deferred jobs=2" in r.getMessage() for r in caplog.records)


# -- rescue -------------------------------------------------------------------------------------


def test_rescuer_counts_by_new_state_and_publishes_only_the_requeued(caplog):
    rows = [
        job(1, state="queued"),
        job(2, state="dead"),
        job(3, state="cancelled"),
        job(4, state="queued"),
    ]
    store = ScriptedStore(job_rescue_expired=[rows])
    publisher = RecordingPublisher()
    with caplog.at_level(logging.WARNING, logger="jq.scheduler"):
        counts = Rescuer(store, publisher).run_once()
    assert counts == {"queued": 2, "dead": 1, "cancelled": 1}
    assert store.asked("job_rescue_expired") == [(rescue.BATCH,)]
    assert publisher.ids() == [1, 4]
    assert [r.getMessage() for r in caplog.records] == [
        "event=jobs_rescued count=4 ids=[1, 2, 3, 4]"
    ]


def test_rescuer_with_no_expired_lease_returns_no_counts_and_says_nothing(caplog):
    publisher = RecordingPublisher()
    with caplog.at_level(logging.INFO, logger="jq.scheduler"):
        assert Rescuer(ScriptedStore(job_rescue_expired=[[]]), publisher).run_once() == {}
    assert publisher.published == [] and caplog.records == []


def test_rescuer_works_off_a_backlog_batch_by_batch(monkeypatch):
    monkeypatch.setattr(rescue, "BATCH", 1)
    store = ScriptedStore(job_rescue_expired=[[job(1, state="queued")], [job(2, state="dead")], []])
    assert Rescuer(store, RecordingPublisher()).run_once() == {"queued": 1, "dead": 1}
    assert len(store.asked("job_rescue_expired")) == 3


# -- sweep --------------------------------------------------------------------------------------


def counts(*queued: tuple[str, int, int]) -> dict:
    """A job_counts answer: (queue, priority, n) per row of queued jobs."""
    return {
        "by_state": {"queued": sum(n for _, _, n in queued)},
        "queued": [{"queue": q, "priority": p, "n": n} for q, p, n in queued],
    }


def sweeper(store, publisher, workers=(), republish_after=15.0, prefetch=0) -> Sweeper:
    census = FixedCensus(None if workers is None else list(workers))
    return Sweeper(store, publisher, census, republish_after, prefetch)


def test_sweeper_republishes_as_many_as_the_broker_lacks():
    store = ScriptedStore(
        job_counts=[counts(("default", 1, 3), ("default", 3, 2))],
        queue_paused=[set()],
        job_republish_claim=[[job(7), job(8), job(9), job(10)]],
    )
    publisher = RecordingPublisher(depths={"default": 1})
    assert sweeper(store, publisher, republish_after=20.0).run_once() == 4
    # Five queued, one ready: four missing, picked among those published over 20 s ago.
    assert store.asked("job_republish_claim") == [("default", 20.0, 4)]
    assert publisher.ids() == [7, 8, 9, 10]


def test_sweeper_leaves_the_deliveries_a_busy_worker_holds():
    busy = {"concurrency": 2, "running": 2, "prefetch": 3, "queues": ["default"]}
    store = ScriptedStore(
        job_counts=[counts(("default", 2, 6))],
        queue_paused=[set()],
        job_republish_claim=[[job(1)]],
    )
    publisher = RecordingPublisher(depths={"default": 2})
    assert sweeper(store, publisher, workers=[busy]).run_once() == 1
    assert store.asked("job_republish_claim") == [("default", 15.0, 1)]  # 6 - 2 ready - 3 held


def test_sweeper_with_every_message_accounted_for_claims_nothing():
    store = ScriptedStore(job_counts=[counts(("default", 2, 2))], queue_paused=[set()])
    publisher = RecordingPublisher(depths={"default": 2})
    assert sweeper(store, publisher).run_once() == 0
    assert store.asked("job_republish_claim") == [] and publisher.published == []


def test_sweeper_skips_paused_queues():
    store = ScriptedStore(
        job_counts=[counts(("default", 2, 1), ("held", 2, 5))],
        queue_paused=[{"held"}],
        job_republish_claim=[[job(1)]],
    )
    publisher = RecordingPublisher(depths={})
    assert sweeper(store, publisher).run_once() == 1
    assert publisher.depths_asked == [["default"]]
    assert store.asked("job_republish_claim") == [("default", 15.0, 1)]


def test_sweeper_with_nothing_queued_asks_neither_the_broker_nor_the_pauses():
    store = ScriptedStore(job_counts=[counts()])
    publisher = RecordingPublisher()
    assert sweeper(store, publisher).run_once() == 0
    assert publisher.depths_asked == [] and store.asked("queue_paused") == []


def test_sweeper_without_redis_counts_ready_messages_only():
    store = ScriptedStore(
        job_counts=[counts(("default", 2, 3))],
        queue_paused=[set()],
        job_republish_claim=[[job(1), job(2), job(3)]],
    )
    assert sweeper(store, RecordingPublisher(), workers=None).run_once() == 3
    assert store.asked("job_republish_claim") == [("default", 15.0, 3)]


def test_sweeper_finds_nothing_stale_when_the_jobs_were_just_published():
    store = ScriptedStore(
        job_counts=[counts(("default", 2, 3))], queue_paused=[set()], job_republish_claim=[[]]
    )
    publisher = RecordingPublisher()
    assert sweeper(store, publisher).run_once() == 0
    assert publisher.published == []


def test_sweeper_republishes_at_most_its_limit_per_queue():
    store = ScriptedStore(
        job_counts=[counts(("default", 2, REPUBLISH_LIMIT + 10))],
        queue_paused=[set()],
        job_republish_claim=[[job(1)]],
    )
    sweeper(store, RecordingPublisher()).run_once()
    assert store.asked("job_republish_claim") == [("default", 15.0, REPUBLISH_LIMIT)]


def test_sweeper_raises_when_the_broker_cannot_give_its_counts():
    store = ScriptedStore(job_counts=[counts(("default", 2, 3))], queue_paused=[set()])
    with pytest.raises(BrokerUnavailable):
        sweeper(store, RecordingPublisher(fail=BROKER_AWAY)).run_once()


def test_sweeper_warns_per_queue_it_republished(caplog):
    store = ScriptedStore(
        job_counts=[counts(("a", 2, 2), ("b", 2, 1))],
        queue_paused=[set()],
        job_republish_claim=[lambda queue, age, n: [job(i, queue=queue) for i in range(n)]],
    )
    with caplog.at_level(logging.INFO, logger="jq.scheduler"):
        assert sweeper(store, RecordingPublisher()).run_once() == 3
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            "event=messages_republished queue=a count=2 queued=2 broker_ready=0 held=0",
        ),
        (
            logging.WARNING,
            "event=messages_republished queue=b count=1 queued=1 broker_ready=0 held=0",
        ),
    ]


def test_held_by_workers_counts_only_busy_workers_by_their_prefetch():
    workers = [
        {"concurrency": 4, "running": 1, "prefetch": 8, "queues": ["a"]},  # a free slot: holds none
        {"concurrency": 2, "running": 2, "prefetch": 5, "queues": ["a", "b"]},
        {"concurrency": 3, "running": 3, "queues": ["a"]},  # no prefetch reported: the setting
        {"concurrency": 1, "running": 1},  # no queues
    ]
    assert held_by_workers(workers, default_prefetch=7) == {"a": 12, "b": 5}
    # Without the setting either, a busy worker holds as many as its slots.
    assert held_by_workers(workers[2:3], default_prefetch=0) == {"a": 3}
    assert held_by_workers([], default_prefetch=7) == {}


# -- cron ---------------------------------------------------------------------------------------

NOW = datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC)


def due(name: str = "nightly", **more) -> dict:
    row = {
        "name": name,
        "cron": "* * * * *",
        "timezone": "UTC",
        "next_fire_at": NOW - timedelta(seconds=30),
        "misfire": "once",
    }
    return row | more


def fired(job_id: int, schedule: str = "nightly") -> dict:
    return job(job_id, state="queued", schedule_name=schedule, fire_time=NOW)


def test_cron_firer_publishes_the_jobs_of_the_ticks_fired(caplog):
    store = ScriptedStore(schedule_fire_due=[([fired(1), fired(2, "hourly")], [due(), due()])])
    publisher = RecordingPublisher()
    firer = CronFirer(store, publisher, misfire_grace=60.0, default_max_retries=4)
    with caplog.at_level(logging.INFO, logger="jq.scheduler"):
        assert firer.run_once() == 2
    ((limit, planner, retries),) = store.asked("schedule_fire_due")
    assert (limit, planner, retries) == (cron_duty.CRON_BATCH, firer.plan, 4)
    assert publisher.ids() == [1, 2]
    assert [r.getMessage() for r in caplog.records] == [
        f"event=schedule_fired schedule=nightly fire_time={NOW.isoformat()} job=1",
        f"event=schedule_fired schedule=hourly fire_time={NOW.isoformat()} job=2",
    ]


def test_cron_firer_goes_on_while_whole_batches_were_planned(monkeypatch):
    monkeypatch.setattr(cron_duty, "CRON_BATCH", 2)
    store = ScriptedStore(
        schedule_fire_due=[([fired(1), fired(2)], [due(), due()]), ([fired(3)], [due()])]
    )
    assert CronFirer(store, RecordingPublisher(), 60.0, 3).run_once() == 3
    assert len(store.asked("schedule_fire_due")) == 2


def test_cron_firer_with_nothing_due_fires_nothing():
    publisher = RecordingPublisher()
    store = ScriptedStore(schedule_fire_due=[([], [])])
    assert CronFirer(store, publisher, 60.0, 3).run_once() == 0
    assert publisher.published == []


def test_cron_plan_fires_the_tick_that_has_come():
    plan = CronFirer(ScriptedStore(), RecordingPublisher(), 60.0, 3).plan(due(), NOW)
    assert plan is not None
    assert plan.fire_time == NOW - timedelta(seconds=30)
    assert plan.next_fire_at == NOW + timedelta(seconds=30)
    assert plan.missed == 0


def test_cron_plan_of_a_broken_schedule_is_none_and_logged(caplog):
    firer = CronFirer(ScriptedStore(), RecordingPublisher(), 60.0, 3)
    with caplog.at_level(logging.ERROR, logger="jq.scheduler"):
        assert firer.plan(due(timezone="Nowhere/Atlantis"), NOW) is None
    assert [r.getMessage().split(" error=")[0] for r in caplog.records] == [
        "event=schedule_broken schedule=nightly"
    ]


def test_cron_plan_logs_the_ticks_missed_and_skips_them_past_the_grace(caplog):
    late = due(misfire="skip", next_fire_at=NOW - timedelta(minutes=10, seconds=30))
    # The latest tick is 30 s late, beyond a grace of 10 s: under `skip` nothing fires.
    firer = CronFirer(
        ScriptedStore(), RecordingPublisher(), misfire_grace=10.0, default_max_retries=3
    )
    with caplog.at_level(logging.WARNING, logger="jq.scheduler"):
        plan = firer.plan(late, NOW)
    assert plan is not None and plan.fire_time is None and plan.missed == 11
    assert plan.next_fire_at == NOW + timedelta(seconds=30)
    (record,) = caplog.records
    assert record.getMessage().startswith("event=schedule_misfire schedule=nightly policy=skip")
    assert "missed=11 fired=- next=" in record.getMessage()


# -- prune --------------------------------------------------------------------------------------


def pruning(left: dict[str, int]):
    """A job_prune answer that deletes from `left` (rows old enough, per state) up to the limit."""

    def job_prune(state: str, age: float, limit: int) -> int:
        n = min(limit, left.get(state, 0))
        left[state] = left.get(state, 0) - n
        return n

    return job_prune


def test_pruner_deletes_per_state_by_its_retention_in_bounded_batches(monkeypatch):
    monkeypatch.setattr(prune, "PRUNE_BATCH", 2)
    monkeypatch.setattr(prune, "PRUNE_BATCHES", 3)
    left = {"completed": 5, "dead": 9, "cancelled": 0}
    store = ScriptedStore(job_prune=[pruning(left)], audit_prune=[0])
    pruner = Pruner(store, {"completed": 60.0, "dead": 120.0, "cancelled": 30.0}, 0)
    assert pruner.run_once() == {"completed": 5, "dead": 6}
    assert store.asked("job_prune") == [
        ("completed", 60.0, 2),
        ("completed", 60.0, 2),
        ("completed", 60.0, 2),  # a short batch: done
        ("dead", 120.0, 2),
        ("dead", 120.0, 2),
        ("dead", 120.0, 2),  # PRUNE_BATCHES full ones: the rest waits for the next pass
        ("cancelled", 30.0, 2),
    ]
    assert store.asked("audit_prune") == []  # an audit retention of 0 keeps the log forever
    assert left["dead"] == 3


def test_pruner_keeps_a_state_whose_retention_is_zero():
    store = ScriptedStore(job_prune=[pruning({"completed": 3, "dead": 3})], audit_prune=[0])
    assert Pruner(store, {"completed": 0, "dead": 10.0}, 0).run_once() == {"dead": 3}
    assert [call[0] for call in store.asked("job_prune")] == ["dead"]


def test_pruner_prunes_the_audit_log_by_its_own_retention(caplog):
    store = ScriptedStore(job_prune=[0], audit_prune=[4])
    with caplog.at_level(logging.INFO, logger="jq.scheduler"):
        assert Pruner(store, {"completed": 10.0}, 86400.0).run_once() == {"audit": 4}
    assert store.asked("audit_prune") == [(86400.0, prune.PRUNE_BATCH)]
    assert [r.getMessage() for r in caplog.records] == [
        "event=audit_pruned count=4 older_than=86400.0s"
    ]


def test_pruner_takes_its_retentions_from_the_settings():
    from jq_cli.config import Settings

    settings = Settings(
        retention_completed=1.0, retention_dead=2.0, retention_cancelled=3.0, audit_retention=4.0
    )
    pruner = Pruner.from_settings(ScriptedStore(), settings)
    assert pruner.retention == {"completed": 1.0, "dead": 2.0, "cancelled": 3.0}
    assert pruner.audit_retention == 4.0


def test_backlog_is_left_only_when_a_state_filled_every_batch():
    full = prune.PRUNE_BATCH * prune.PRUNE_BATCHES
    assert backlog_left({"completed": full}) is True
    assert backlog_left({"completed": full - 1, "dead": 3}) is False
    assert backlog_left({}) is False
