"""Errors PostgreSQL raises for a statement (not an outage) leave the store as jq errors that keep
the driver's error as their cause, and the connection stays usable."""

from __future__ import annotations

import psycopg
import pytest
from jq_cli.errors import Conflict, StoreError
from jq_cli.store import Store


def test_a_query_error_leaving_the_store_is_a_store_error_with_its_cause(store: Store) -> None:
    with pytest.raises(StoreError) as caught:
        store._all("SELECT no_such_column FROM jobs")  # query: a deliberate mistake
    assert isinstance(caught.value.__cause__, psycopg.errors.UndefinedColumn)
    assert "no_such_column" in caught.value.message
    # Not an outage: the connection was kept, and the next query works on it.
    assert store.has_session()
    assert store.job_states([1]) == {}


def test_a_unique_violation_leaving_the_store_is_a_conflict(store: Store) -> None:
    store.job_type_register(["dup"], "w1")
    with pytest.raises(Conflict) as caught:
        store._run(
            "INSERT INTO job_types (name, registered_by) VALUES ('dup', 'w2')"  # query: a duplicate
        )
    assert isinstance(caught.value.__cause__, psycopg.errors.UniqueViolation)
    assert "job_types_pkey" in caught.value.message
    assert store.job_type_exists("dup")


def test_a_failed_transaction_rolls_back_and_is_reported(store: Store) -> None:
    row = {
        "name": "s1",
        "job_type": "noop",
        "cron": "* * * * *",
        "timezone": "UTC",
        "payload": "{}",
        "priority": 2,
        "max_retries": None,
        "queue": "default",
        "misfire": "once",
        "enabled": True,
        "next_fire_at": store.now(),
    }
    # The same name twice in one apply: the second insert fails, and the first is rolled back.
    with pytest.raises(Conflict) as caught:
        store.schedule_apply([row, dict(row)], [], [])
    assert isinstance(caught.value.__cause__, psycopg.errors.UniqueViolation)
    assert store.schedule_list() == []
