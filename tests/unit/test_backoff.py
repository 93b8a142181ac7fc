"""The back-off policy (DESIGN: min(max, base * 2**(n-1)) plus a jitter in [0, jitter * delay])."""

from __future__ import annotations

import random

import pytest
from jq_cli.model.retry import Backoff


@pytest.mark.parametrize(("attempt", "expected"), [(1, 2.0), (2, 4.0), (3, 8.0), (8, 256.0)])
def test_delay_doubles_from_the_base_without_jitter(attempt, expected):
    assert Backoff(base=2.0, maximum=300.0, jitter=0.0).delay(attempt) == expected


def test_delay_is_capped_at_the_maximum_even_for_huge_attempt_numbers():
    policy = Backoff(base=2.0, maximum=300.0, jitter=0.0)
    assert policy.delay(9) == 300.0
    assert policy.delay(10_000) == 300.0  # no overflow: the exponent is bounded


def test_attempt_numbers_below_one_count_as_the_first():
    policy = Backoff(base=3.0, maximum=100.0, jitter=0.0)
    assert policy.delay(0) == policy.delay(-4) == policy.delay(1) == 3.0


def test_jitter_stays_within_its_fraction_and_spreads_the_delays():
    policy = Backoff(base=2.0, maximum=300.0, jitter=0.1)
    rng = random.Random(7)
    delays = [policy.delay(3, rng) for _ in range(500)]
    assert all(8.0 <= d <= 8.8 for d in delays)
    assert max(delays) - min(delays) > 0.6  # spread over most of the band, not one value
    assert len(set(delays)) > 400


def test_overrides_replace_only_what_they_name():
    policy = Backoff(base=2.0, maximum=300.0, jitter=0.1)
    assert policy.with_overrides(None, None, None) == policy
    assert policy.with_overrides(5.0, None, 0.0) == Backoff(5.0, 300.0, 0.0)
    assert policy.with_overrides(None, 10.0, None) == Backoff(2.0, 10.0, 0.1)
