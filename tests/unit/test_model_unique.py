"""Unique-job keys (jq_cli.model.unique): the same work gives the same key whatever the order of
its payload, other work another, and a missing `unique_on` key is refused. No services."""

from __future__ import annotations

import pytest
from jq_cli.errors import InvalidInput
from jq_cli.model.unique import unique_key


def test_the_key_is_the_job_type_and_a_digest_of_the_payload():
    key = unique_key("email", {"to": "a@b"}, None)
    job_type, digest = key.split(":")
    assert job_type == "email" and len(digest) == 32 and int(digest, 16) >= 0


def test_the_same_payload_in_another_order_is_the_same_work():
    assert unique_key("t", {"a": 1, "b": [1, 2]}, None) == unique_key(
        "t", {"b": [1, 2], "a": 1}, None
    )


def test_another_payload_or_job_type_is_other_work():
    assert unique_key("t", {"a": 1}, None) != unique_key("t", {"a": 2}, None)
    assert unique_key("t", {"a": 1}, None) != unique_key("u", {"a": 1}, None)


def test_unique_on_keys_only_look_at_those_keys():
    first = unique_key("t", {"user": 7, "at": "09:00"}, ["user"])
    assert first == unique_key("t", {"user": 7, "at": "10:00"}, ["user"])
    assert first != unique_key("t", {"user": 8, "at": "09:00"}, ["user"])
    # The order and repetition of the names in unique_on do not matter.
    assert unique_key("t", {"a": 1, "b": 2}, ["b", "a", "b"]) == unique_key(
        "t", {"a": 1, "b": 2}, ["a", "b"]
    )


def test_an_empty_unique_on_means_the_whole_payload():
    assert unique_key("t", {"a": 1}, []) == unique_key("t", {"a": 1}, None)


def test_a_unique_on_key_the_payload_lacks_is_refused():
    with pytest.raises(InvalidInput, match="unique_on: the payload has no key 'user'"):
        unique_key("t", {"account": 1}, ["account", "user"])


def test_values_json_cannot_write_are_keyed_by_their_text():
    from datetime import date

    assert unique_key("t", {"d": date(2026, 1, 5)}, None) == unique_key(
        "t", {"d": "2026-01-05"}, None
    )
