"""Durations (30s, 1.5h, 7d) and instants (ISO 8601) as the command line and job files give them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from jq_cli.errors import InvalidInput
from jq_cli.model.durations import parse_duration, parse_instant


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("30", 30.0),
        (" 5 m ", 300.0),
        ("1.5h", 5400.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        ("250ms", 0.25),
        ("0", 0.0),
        (12, 12.0),
        (0.5, 0.5),
    ],
)
def test_durations_in_every_unit(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "-5s", "5x", "1h30m", "", "s", float("nan"), -1, True])
def test_bad_durations_name_the_field(text):
    with pytest.raises(InvalidInput, match=r"^delay: "):
        parse_duration(text, "delay")


def test_infinite_durations_are_refused():
    with pytest.raises(InvalidInput, match="non-negative duration"):
        parse_duration(float("inf"))


def test_instants_keep_their_offset_and_naive_ones_are_utc():
    assert parse_instant("2030-01-02T03:04:05Z") == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_instant(" 2030-01-02T03:04:05 ") == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    paris = parse_instant("2030-01-02T03:04:05+01:00")
    assert paris.utcoffset() == timedelta(hours=1)
    assert paris == datetime(2030, 1, 2, 2, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("text", ["tomorrow", "2030-13-01", "03:04"])
def test_bad_instants_name_the_field(text):
    with pytest.raises(InvalidInput, match=r"^at: cannot parse"):
        parse_instant(text)
