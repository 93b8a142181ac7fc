"""The scheduler around its duties, against stand-ins: leadership by a lease, the order of the
duties in a pass and only while it leads, the cadence of the periodic ones, what an error in a
duty does, reloads; and the gauges and the doorbell. No services."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from jq_cli.config import Settings
from jq_cli.errors import BrokerUnavailable, DatabaseUnavailable, InvalidInput, StoreError
from jq_cli.scheduler import daemon, prune
from jq_cli.scheduler.daemon import Scheduler
from jq_cli.scheduler.doorbell import Doorbell
from jq_cli.scheduler.gauges import GAUGE_EVERY, Gauges
from jq_cli.scheduler.leadership import Leadership

from .scheduler_standins import FakeClock, FixedCensus, RecordingPublisher, ScriptedStore, job

DB_AWAY = DatabaseUnavailable("postgresql://127.0.0.1:1/jq", "connection refused")


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "namespace": "unit",
        "scheduler_interval": 0.5,
        "republish_after": 15.0,
        "leader_lease": 10.0,
    }
    return Settings(**(base | overrides))


# -- leadership ---------------------------------------------------------------------------------


def test_leadership_holds_the_lease_counted_from_before_the_statement(caplog):
    clock = FakeClock(100.0)

    def acquire(holder: str, lease: float) -> float:
        clock.advance(2.0)  # a slow round trip
        return 9.5  # the database's count of what is left

    store = ScriptedStore(leader_acquire=[acquire])
    leadership = Leadership(store, "a", 10.0, clock)
    with caplog.at_level(logging.INFO, logger="jq.scheduler"):
        assert leadership.campaign() is True
        assert leadership.campaign() is True  # a renewal says nothing
    assert store.asked("leader_acquire") == [("a", 10.0), ("a", 10.0)]
    assert leadership.leader is True
    assert leadership.lease_until == 102.0 + 9.5  # sent at 102, not answered at 104
    assert [r.getMessage() for r in caplog.records] == ["event=leadership_acquired scheduler=a"]


def test_leadership_ends_when_its_own_clock_passes_the_lease(caplog):
    clock = FakeClock(0.0)
    leadership = Leadership(ScriptedStore(leader_acquire=[5.0]), "a", 10.0, clock)
    leadership.campaign()
    clock.advance(4.9)
    assert leadership.leading() is True
    clock.advance(0.1)
    with caplog.at_level(logging.WARNING, logger="jq.scheduler"):
        assert leadership.leading() is False
        assert leadership.leading() is False  # said once
    assert leadership.leader is False
    assert [r.getMessage() for r in caplog.records] == [
        "event=leadership_lost scheduler=a reason=lease_expired"
    ]


def test_leadership_is_lost_when_another_holds_the_lease(caplog):
    leadership = Leadership(ScriptedStore(leader_acquire=[5.0, None]), "a", 10.0, FakeClock())
    assert leadership.campaign() is True
    with caplog.at_level(logging.WARNING, logger="jq.scheduler"):
        assert leadership.campaign() is False
    assert leadership.leading() is False
    assert [r.getMessage() for r in caplog.records] == [
        "event=leadership_lost scheduler=a reason=lease_taken"
    ]


def test_a_follower_neither_leads_nor_says_so(caplog):
    leadership = Leadership(ScriptedStore(leader_acquire=[None]), "b", 10.0, FakeClock())
    with caplog.at_level(logging.INFO, logger="jq.scheduler"):
        assert leadership.campaign() is False
    assert leadership.leading() is False and caplog.records == []


def test_leadership_is_released_only_by_a_leader():
    store = ScriptedStore(leader_acquire=[5.0], leader_release=[None])
    leadership = Leadership(store, "a", 10.0, FakeClock())
    leadership.release()
    assert store.asked("leader_release") == []
    leadership.campaign()
    leadership.release()
    assert store.asked("leader_release") == [("a",)]
    assert leadership.leader is False


def test_a_dropped_leadership_leads_again_only_after_a_renewal():
    store = ScriptedStore(leader_acquire=[5.0])
    leadership = Leadership(store, "a", 10.0, FakeClock())
    leadership.campaign()
    leadership.drop()
    assert leadership.leading() is False
    assert leadership.campaign() is True


# -- the scheduler's pass -----------------------------------------------------------------------


class Duty:
    """A duty that records its turn in a shared journal and returns `result` (or raises it)."""

    def __init__(self, name: str, journal: list[str], result: Any = 0, effect=None) -> None:
        self.name, self.journal, self.result, self.effect = name, journal, result, effect

    def run_once(self) -> Any:
        self.journal.append(self.name)
        if self.effect is not None:
            self.effect()
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def scheduler(lease_left: Any = 10.0, clock: FakeClock | None = None, **overrides: Any):
    """A scheduler on stand-ins, its duties replaced by journaling ones."""
    store = ScriptedStore(leader_acquire=[lease_left], leader_release=[None])
    s = Scheduler(
        settings(**overrides),
        name="s1",
        store=store,  # type: ignore[arg-type]
        publisher=RecordingPublisher(),  # type: ignore[arg-type]
        census=FixedCensus([]),  # type: ignore[arg-type]
        clock=clock or FakeClock(),
    )
    journal: list[str] = []
    s.cron = Duty("cron", journal, 1)  # type: ignore[assignment]
    s.promoter = Duty("promote", journal, 2)  # type: ignore[assignment]
    s.rescuer = Duty("rescue", journal, {"queued": 3})  # type: ignore[assignment]
    s.pruner = Duty("prune", journal, {})  # type: ignore[assignment]
    s.sweeper = Duty("sweep", journal, 4)  # type: ignore[assignment]
    return s, journal


def test_a_leader_runs_every_duty_in_order_and_reports_what_each_did():
    s, journal = scheduler()
    report = s.run_once()
    assert journal == ["cron", "promote", "rescue", "prune", "sweep"]
    assert {k: v for k, v in report.items() if k != "pass_seconds"} == {
        "leader": True,
        "fired": 1,
        "promoted": 2,
        "rescued": {"queued": 3},
        "pruned": {},
        "republished": 4,
    }
    assert report["pass_seconds"] == 0.0  # the stand-in clock did not move


def test_a_follower_runs_no_duty():
    s, journal = scheduler(lease_left=None)
    assert s.run_once() == {"leader": False}
    assert journal == [] and s.leader is False


def test_a_pass_that_outlives_the_lease_stops_before_the_next_duty():
    clock = FakeClock()
    s, journal = scheduler(lease_left=5.0, clock=clock)
    s.promoter = Duty("promote", journal, 2, effect=lambda: clock.advance(6.0))  # type: ignore[assignment]
    assert s.run_once() == {"leader": False, "fired": 1, "promoted": 2}
    assert journal == ["cron", "promote"]


def test_a_duty_that_fails_on_an_outage_ends_the_pass_and_the_leadership():
    s, journal = scheduler()
    s.promoter = Duty("promote", journal, DB_AWAY)  # type: ignore[assignment]
    with pytest.raises(DatabaseUnavailable):
        s.run_once()
    assert journal == ["cron", "promote"]  # rescue, prune and sweep wait for the next pass
    assert s.leader is False


def test_a_duty_that_fails_on_a_bug_ends_the_pass_and_propagates():
    s, journal = scheduler()
    s.rescuer = Duty("rescue", journal, KeyError("state"))  # type: ignore[assignment]
    with pytest.raises(KeyError):
        s.run_once()
    assert journal == ["cron", "promote", "rescue"]


def test_a_sweep_without_the_broker_counts_zero_and_the_pass_goes_on():
    s, journal = scheduler()
    s.sweeper = Duty("sweep", journal, BrokerUnavailable("amqp://x/", "refused"))  # type: ignore[assignment]
    report = s.run_once()
    assert report["republished"] == 0 and report["leader"] is True


def test_prune_and_sweep_run_at_their_own_cadence():
    clock = FakeClock()
    s, journal = scheduler(clock=clock, republish_after=6.0)  # a sweep every 2 s
    s.run_once()
    journal.clear()
    clock.advance(1.0)
    s.run_once()
    assert journal == ["cron", "promote", "rescue"]
    journal.clear()
    clock.advance(1.0)
    s.run_once()
    assert journal == ["cron", "promote", "rescue", "sweep"]
    journal.clear()
    clock.advance(daemon.PRUNE_EVERY)
    s.run_once()
    assert journal == ["cron", "promote", "rescue", "prune", "sweep"]


def test_a_sweep_comes_at_most_once_a_second_however_short_republish_after():
    clock = FakeClock()
    s, journal = scheduler(clock=clock, republish_after=0.3)
    s.run_once()
    clock.advance(0.5)
    journal.clear()
    s.run_once()
    assert "sweep" not in journal
    clock.advance(0.5)
    journal.clear()
    s.run_once()
    assert "sweep" in journal


def test_a_prune_that_left_a_backlog_goes_on_at_the_next_pass():
    full = {"completed": prune.PRUNE_BATCH * prune.PRUNE_BATCHES}
    s, journal = scheduler()
    s.pruner = Duty("prune", journal, full)  # type: ignore[assignment]
    s.run_once()
    journal.clear()
    s.run_once()
    assert "prune" in journal


def test_the_gauges_run_only_with_metrics_and_every_few_seconds():
    from jq_cli.observe.metrics import DaemonMetrics

    clock = FakeClock()
    s, journal = scheduler(clock=clock)
    assert s.gauges is None
    s.run_once()
    s.metrics = DaemonMetrics("scheduler")
    assert isinstance(s.gauges, Gauges)
    s.gauges = Duty("gauges", journal)  # type: ignore[assignment]
    journal.clear()
    s.run_once()
    assert journal[-1] == "gauges"
    assert s.metrics.registry.get_sample_value("jq_scheduler_leader") == 1
    journal.clear()
    clock.advance(GAUGE_EVERY - 0.1)
    s.run_once()
    assert "gauges" not in journal


def test_the_scheduler_composes_its_duties_from_its_inputs_and_settings():
    s = Scheduler(
        settings(republish_after=30.0, worker_prefetch=7, misfire_grace=5.0, retention_dead=9.0),
        name="s1",
        store=ScriptedStore(),  # type: ignore[arg-type]
        publisher=RecordingPublisher(),  # type: ignore[arg-type]
        census=FixedCensus([]),  # type: ignore[arg-type]
    )
    assert s.sweeper.store is s.store and s.sweeper.census is s.census
    assert (s.sweeper.republish_after, s.sweeper.default_prefetch) == (30.0, 7)
    assert s.cron.misfire_grace == 5.0 and s.pruner.retention["dead"] == 9.0
    assert s.promoter.publisher is s.publisher and s.rescuer.publisher is s.publisher
    assert s.leadership.name == "s1" and s.leadership.lease == 10.0


# -- the loop -----------------------------------------------------------------------------------


def test_a_good_step_waits_the_interval():
    s, _ = scheduler(scheduler_interval=0.7)
    assert s.step(3.0) == 0.7 and s.leader is True


def test_an_outage_backs_off_doubling_up_to_five_seconds_and_drops_the_lead(caplog):
    s, _ = scheduler()
    s.run_once()
    s.leadership.store = ScriptedStore(leader_acquire=[DB_AWAY])  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="jq.scheduler"):
        assert s.step(0.5) == 1.0
        assert s.step(4.0) == 5.0
    assert s.leader is False
    unavailable = [r for r in caplog.records if "event=service_unavailable" in r.getMessage()]
    assert len(unavailable) == 1  # said once per outage


def test_a_statement_postgres_refuses_ends_the_loop():
    s, journal = scheduler()
    s.cron = Duty("cron", journal, StoreError("column published_at does not exist"))  # type: ignore[assignment]
    with pytest.raises(StoreError):
        s.step(0.5)


def quiet_store() -> ScriptedStore:
    """A store with a lease to give and nothing for any duty to do."""
    return ScriptedStore(
        leader_acquire=[10.0],
        schedule_fire_due=[([], [])],
        job_promote_due=[[]],
        job_rescue_expired=[[]],
        job_prune=[0],
        audit_prune=[0],
        job_counts=[{"by_state": {}, "queued": []}],
    )


def composed(store: ScriptedStore, **overrides: Any) -> Scheduler:
    """A scheduler with its real duties on stand-in services."""
    return Scheduler(
        settings(**overrides),
        name="s1",
        store=store,  # type: ignore[arg-type]
        publisher=RecordingPublisher(),  # type: ignore[arg-type]
        census=FixedCensus([]),  # type: ignore[arg-type]
        clock=FakeClock(),
    )


def test_a_follower_asks_the_store_for_nothing_but_the_lease():
    store = ScriptedStore(leader_acquire=[None])
    assert composed(store).run_once() == {"leader": False}
    assert [call[0] for call in store.calls] == ["leader_acquire"]


def test_a_quiet_pass_of_the_real_duties_asks_each_query_once_and_reports_nothing_done():
    store = quiet_store()
    report = composed(store).run_once()
    assert {k: v for k, v in report.items() if k != "pass_seconds"} == {
        "leader": True,
        "fired": 0,
        "promoted": 0,
        "rescued": {},
        "pruned": {},
        "republished": 0,
    }
    assert [call[0] for call in store.calls] == [
        "leader_acquire",
        "schedule_fire_due",
        "job_promote_due",
        "job_rescue_expired",
        "job_prune",  # completed
        "job_prune",  # dead
        "job_prune",  # cancelled
        "audit_prune",
        "job_counts",  # the sweep: nothing queued, so nothing more to ask
    ]


def test_a_reload_rebuilds_the_duties_from_the_new_settings_but_keeps_the_services():
    store = quiet_store()
    s = composed(store)
    root = logging.getLogger()
    fresh = settings(
        republish_after=60.0,
        leader_lease=20.0,
        retention_completed=5.0,
        misfire_grace=1.0,
        namespace="other",
        log_level=logging.getLevelName(root.level).lower(),
    )
    s._reload_settings = lambda: fresh
    s.request_reload()
    assert s.step(0.5) == 0.5
    assert not s.reload_requested.is_set()
    # The pass after the reload ran with the new settings, on the same connections.
    assert store.asked("leader_acquire") == [("s1", 20.0)]
    assert ("completed", 5.0, prune.PRUNE_BATCH) in store.asked("job_prune")
    assert s.sweeper.republish_after == 60.0 and s.cron.misfire_grace == 1.0
    assert s.sweeper.store is store and s.cron.publisher is s.publisher
    assert s.settings.namespace == "unit"  # its connections were made for this one


def test_a_reload_that_fails_keeps_the_settings(caplog):
    s, _ = scheduler()
    before = s.settings

    def broken() -> Settings:
        raise InvalidInput("invalid setting republish_after")

    s._reload_settings = broken
    s.request_reload()
    with caplog.at_level(logging.ERROR, logger="jq.scheduler"):
        s.step(0.5)
    assert s.settings is before
    assert any("event=reload_failed" in r.getMessage() for r in caplog.records)


# -- gauges -------------------------------------------------------------------------------------


def test_gauges_show_depth_by_state_and_priority_and_the_workers_alive():
    from jq_cli.observe.metrics import DaemonMetrics

    metrics = DaemonMetrics("scheduler")
    store = ScriptedStore(
        job_counts=[
            {
                "by_state": {"queued": 5, "running": 1},
                "queued": [
                    {"queue": "a", "priority": 3, "n": 2},
                    {"queue": "b", "priority": 3, "n": 1},
                    {"queue": "a", "priority": 1, "n": 2},
                ],
            }
        ]
    )
    reading = Gauges(store, FixedCensus([{}, {}]), metrics).run_once()  # type: ignore[arg-type]
    assert reading.by_state == {"queued": 5, "running": 1} and reading.workers == 2
    sample = metrics.registry.get_sample_value
    assert sample("jq_jobs", {"state": "queued", "priority": "all"}) == 5
    assert sample("jq_jobs", {"state": "queued", "priority": "high"}) == 3
    assert sample("jq_jobs", {"state": "queued", "priority": "low"}) == 2
    assert sample("jq_workers_alive") == 2


def test_gauges_keep_the_workers_count_while_redis_is_away():
    from jq_cli.observe.metrics import DaemonMetrics

    metrics = DaemonMetrics("scheduler")
    metrics.workers.set(3)
    store = ScriptedStore(job_counts=[{"by_state": {}, "queued": []}])
    reading = Gauges(store, FixedCensus(None), metrics).run_once()  # type: ignore[arg-type]
    assert reading.workers is None
    assert metrics.registry.get_sample_value("jq_workers_alive") == 3


# -- doorbell -----------------------------------------------------------------------------------


class Outbox:
    """An outbox stand-in: drains `pending` in batches through the doorbell's publish."""

    def __init__(self, pending: list[dict], session: bool = True) -> None:
        self.pending = pending
        self.session = session
        self.listens = 0
        self.waits: list[float] = []

    def outbox_listen(self) -> None:
        self.listens += 1
        self.session = True

    def has_session(self) -> bool:
        return self.session

    def job_outbox_drain(self, limit: int, publish) -> int:
        batch, self.pending = self.pending[:limit], self.pending[limit:]
        if batch:
            publish(batch)
        return len(batch)

    def outbox_wait(self, timeout: float) -> None:
        self.waits.append(timeout)


def test_doorbell_listens_drains_in_batches_and_waits(monkeypatch):
    from jq_cli.scheduler import doorbell

    monkeypatch.setattr(doorbell, "DRAIN_BATCH", 2)
    outbox, publisher = Outbox([job(i) for i in range(5)]), RecordingPublisher()
    bell = Doorbell(outbox, publisher)  # type: ignore[arg-type]
    assert bell.run_once(timeout=0.25) == 5
    assert publisher.ids() == [0, 1, 2, 3, 4] and bell.published == 5
    assert outbox.listens == 1 and outbox.waits == [0.25]
    assert bell.run_once(timeout=0) == 0
    assert outbox.listens == 1 and outbox.waits == [0.25]  # no wait asked for


def test_doorbell_listens_again_once_its_session_is_gone():
    outbox = Outbox([])
    bell = Doorbell(outbox, RecordingPublisher())  # type: ignore[arg-type]
    bell.run_once(timeout=0)
    outbox.session = False
    bell.run_once(timeout=0)
    assert outbox.listens == 2


def test_doorbell_raises_when_the_broker_is_away_and_counts_nothing():
    outbox = Outbox([job(1)])
    bell = Doorbell(outbox, RecordingPublisher(fail=BrokerUnavailable("amqp://x/", "refused")))  # type: ignore[arg-type]
    with pytest.raises(BrokerUnavailable):
        bell.run_once(timeout=0)
    assert bell.published == 0
