"""Limits (jq_cli.model.limits): the `10/s` spelling of a rate, and what one limit may say, with
the error each wrong spelling gets. No services."""

from __future__ import annotations

import pytest
from jq_cli.errors import InvalidInput
from jq_cli.model.limits import Limit, parse_rate


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/s", (10, 1.0)),
        ("10/sec", (10, 1.0)),
        ("100/m", (100, 60.0)),
        ("100/min", (100, 60.0)),
        ("3/h", (3, 3600.0)),
        ("1/d", (1, 86400.0)),
        ("5/2s", (5, 2.0)),
        ("5/0.5s", (5, 0.5)),
        ("5/30", (5, 30.0)),  # a bare number is seconds
        (" 7 / 2 M ", (7, 120.0)),  # spaces and case do not matter
    ],
)
def test_rates_are_starts_per_period_in_seconds(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["10", "10/", "ten/s", "10/fortnight", "/s", "-1/s", "10/s/s"])
def test_a_rate_that_is_not_n_per_period_is_refused_with_examples(text):
    with pytest.raises(InvalidInput) as caught:
        parse_rate(text)
    assert caught.value.message == f"rate {text!r} is not N/PERIOD (e.g. 10/s, 100/m, 5/2s)"


@pytest.mark.parametrize("text", ["0/s", "5/0s", "5/0"])
def test_a_rate_must_allow_a_start_in_a_positive_period(text):
    with pytest.raises(InvalidInput) as caught:
        parse_rate(text)
    assert caught.value.message == (
        f"rate {text!r} must allow at least 1 start per a positive period"
    )


def test_a_limit_is_built_from_its_parts():
    limit = Limit.build(concurrency=3, rate="10/m", key="tenant")
    assert limit == Limit(3, (10, 60.0), "tenant")
    assert not limit.empty
    assert Limit.build().empty
    assert Limit.build(concurrency=1).rate is None
    assert Limit.build(rate="1/s").concurrency is None


def test_a_concurrency_below_one_is_refused():
    with pytest.raises(InvalidInput, match="concurrency must be 1 or more, got 0"):
        Limit.build(concurrency=0)


@pytest.mark.parametrize("key", ["1st", "a-b", "a.b", "", "x" * 65])
def test_a_limit_key_must_be_a_payload_field_name(key):
    with pytest.raises(InvalidInput) as caught:
        Limit.build(concurrency=1, key=key)
    assert caught.value.message == f"limit key {key!r} must be a payload field name"


def test_a_limit_key_may_be_any_identifier_up_to_64_characters():
    assert Limit.build(concurrency=1, key="_" + "x" * 63).key == "_" + "x" * 63
    assert Limit.build(concurrency=1, key="Tenant_ID").key == "Tenant_ID"
