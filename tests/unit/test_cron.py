"""Cron arithmetic on fixed instants: fire times across daylight-saving changes, misfire plans, and
the validation of expressions and zones. No services: jq_cli.model.cron does no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from jq_cli.errors import InvalidInput
from jq_cli.model import cron

UTC = UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(times, zone=BERLIN) -> list[str]:
    return [t.astimezone(zone).strftime("%m-%d %H:%M:%S%z") for t in times]


def test_daily_tick_in_the_skipped_hour_fires_once_shifted_by_the_gap():
    # 2024-03-31: Berlin jumps from 02:00 CET to 03:00 CEST; 02:30 does not exist that day.
    times = cron.fire_times("30 2 * * *", "Europe/Berlin", datetime(2024, 3, 29, 12, tzinfo=UTC), 4)
    assert local(times) == [
        "03-30 02:30:00+0100",
        "03-31 03:30:00+0200",
        "04-01 02:30:00+0200",
        "04-02 02:30:00+0200",
    ]


def test_daily_tick_in_the_repeated_hour_fires_once_at_its_first_pass():
    # 2024-10-27: Berlin goes back from 03:00 CEST to 02:00 CET; 02:30 happens twice.
    times = cron.fire_times(
        "30 2 * * *", "Europe/Berlin", datetime(2024, 10, 26, 12, tzinfo=UTC), 3
    )
    assert local(times) == ["10-27 02:30:00+0200", "10-28 02:30:00+0100", "10-29 02:30:00+0100"]


def test_daily_tick_keeps_its_wall_clock_time_across_both_changes():
    times = cron.fire_times("0 9 * * *", "Europe/Berlin", datetime(2024, 1, 1, tzinfo=UTC), 366)
    assert {t.astimezone(BERLIN).strftime("%H:%M") for t in times} == {"09:00"}
    assert len({t.date() for t in times}) == 366  # one per day, none twice, none lost


def test_hourly_schedule_follows_real_time_through_both_changes():
    spring = cron.fire_times("0 * * * *", "Europe/Berlin", datetime(2024, 3, 30, 23, tzinfo=UTC), 5)
    assert [t.strftime("%H:%M") for t in spring] == [
        "00:00",
        "01:00",
        "02:00",
        "03:00",
        "04:00",
    ]  # UTC
    autumn = cron.fire_times(
        "*/30 * * * *", "Europe/Berlin", datetime(2024, 10, 26, 23, 45, tzinfo=UTC), 6
    )
    assert local(autumn) == [
        "10-27 02:00:00+0200",
        "10-27 02:30:00+0200",
        "10-27 02:00:00+0100",
        "10-27 02:30:00+0100",
        "10-27 03:00:00+0100",
        "10-27 03:30:00+0100",
    ]
    day = cron.fire_times(
        "0 * * * *",
        "Europe/Berlin",
        datetime(2024, 10, 26, 22, tzinfo=UTC) - timedelta(seconds=1),
        26,
    )
    assert (
        sum(t.astimezone(BERLIN).date().isoformat() == "2024-10-27" for t in day) == 25
    )  # a 25-hour day


def test_named_hours_in_new_york_fire_once_on_both_change_days():
    spring = cron.fire_times(
        "15 1,2,3 * * *", "America/New_York", datetime(2024, 3, 10, 4, tzinfo=UTC), 3
    )
    assert local(spring, NEW_YORK) == [
        "03-10 01:15:00-0500",
        "03-10 03:15:00-0400",
        "03-11 01:15:00-0400",
    ]
    autumn = cron.fire_times(
        "15 1,2,3 * * *", "America/New_York", datetime(2024, 11, 3, 4, tzinfo=UTC), 3
    )
    assert local(autumn, NEW_YORK) == [
        "11-03 01:15:00-0400",
        "11-03 02:15:00-0500",
        "11-03 03:15:00-0500",
    ]


def test_every_second_schedule_is_strictly_increasing_across_a_change():
    times = cron.fire_times(
        "* * * * * *", "Europe/Berlin", datetime(2024, 10, 27, 0, 59, 58, tzinfo=UTC), 4
    )
    assert [t.strftime("%H:%M:%S") for t in times] == [
        "00:59:59",
        "01:00:00",
        "01:00:01",
        "01:00:02",
    ]


def test_misfire_once_fires_one_job_for_many_missed_ticks_keyed_by_the_latest():
    now = datetime(2025, 6, 1, 12, 0, 0, 500000, tzinfo=UTC)
    plan = cron.plan("0 0 1 1 *", "UTC", datetime(2020, 1, 1, tzinfo=UTC), now, "once", 60)
    assert plan.fire_time == datetime(2025, 1, 1, tzinfo=UTC)
    assert plan.next_fire_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert plan.missed == 5
    dense = cron.plan(
        "* * * * * *", "UTC", datetime(2025, 5, 1, tzinfo=UTC), now, "once", 60
    )  # bisected
    assert dense.fire_time == datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
    assert dense.next_fire_at == datetime(2025, 6, 1, 12, 0, 1, tzinfo=UTC)


def test_misfire_skip_fires_nothing_for_ticks_missed_beyond_the_grace():
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)
    plan = cron.plan("0 0 1 1 *", "UTC", datetime(2020, 1, 1, tzinfo=UTC), now, "skip", 60)
    assert plan.fire_time is None and plan.missed == 6
    assert plan.next_fire_at == datetime(2026, 1, 1, tzinfo=UTC)
    # A scheduler merely late by its polling interval still fires the tick (the normal case).
    late = cron.plan("0 12 * * *", "UTC", now, now + timedelta(seconds=0.4), "skip", 60)
    assert late.fire_time == now and late.missed == 0


@pytest.mark.parametrize(
    "expr, fragment",
    [
        ("", "empty"),
        ("* * *", "3 fields"),
        ("* * * * * * *", "7 fields"),
        ("61 * * * *", "out of range"),
        ("* 24 * * *", "out of range"),
        ("0 0 31 2 *", "never fires"),
        ("@sometimes", "unknown alias"),
        ("a b c d e", "invalid cron expression"),
        ("H * * * *", "invalid cron expression"),
    ],
)
def test_bad_expressions_are_refused_with_a_clear_message(expr, fragment):
    with pytest.raises(InvalidInput) as exc:
        cron.check_cron(expr)
    assert fragment in exc.value.message


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "Europe/Berlin ", "/UTC"])
def test_bad_zones_are_refused(zone):
    with pytest.raises(InvalidInput, match="unknown time zone"):
        cron.parse_zone(zone)


def test_expression_is_normalised_and_aliases_accepted():
    assert cron.check_cron("  0   9 * *  MON-FRI ") == "0 9 * * MON-FRI"
    assert cron.check_cron("@Hourly") == "@hourly"
    assert cron.check_cron("*/5 * * * * *") == "*/5 * * * * *"
