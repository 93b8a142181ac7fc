"""Bulk submits validate the options of a batch once per distinct set of them (jq_cli.ops.batch_prep):
every job must still be held to exactly the rules of a single submit, its own payload checked,
its type's @job defaults applied, and the batch written all or none."""

from __future__ import annotations

import json

import pytest
from jq_cli import job
from jq_cli.errors import InvalidInput


@job("t_bulk_defaults", queue="other", priority="high", max_retries=7)
def t_bulk_defaults(payload: dict, ctx) -> None:
    """A type whose @job defaults every job of a batch must receive."""


def count_jobs(store) -> int:
    return store._one("SELECT count(*) AS n FROM jobs")["n"]


def rows(store, ids: list[int]) -> list[dict]:
    return store._all(
        "SELECT id, job_type, queue, priority, state, max_retries, payload FROM jobs"
        " WHERE id = ANY(%s) ORDER BY id",
        (ids,),
    )


def test_each_job_keeps_its_own_payload_and_options(ops, store):
    jobs = [{"job_type": "noop", "payload": {"i": i}} for i in range(5)]
    jobs += [{"job_type": "noop", "payload": {"i": 5}, "queue": "other", "priority": "low"}]
    jobs += [{"job_type": "noop", "payload": {"i": 6}, "delay": 60}]
    ids = ops.submit_many(jobs)
    got = rows(store, ids)
    assert [r["id"] for r in got] == ids
    assert [r["payload"] for r in got] == [{"i": i} for i in range(7)]
    assert [(r["queue"], r["priority"], r["state"]) for r in got] == [
        *[("default", 2, "queued")] * 5,
        ("other", 1, "queued"),
        ("default", 2, "scheduled"),
    ]
    assert store.job_counts()["by_state"] == {"queued": 6, "scheduled": 1}


def test_a_later_payload_failing_its_types_model_names_its_job_and_writes_nothing(ops, store):
    good = {"to": "a@example.com", "subject": "s", "body": "b"}
    jobs = [{"job_type": "send_email", "payload": dict(good)} for _ in range(3)]
    jobs[2]["payload"]["to"] = "not-an-address"
    with pytest.raises(InvalidInput, match=r"^job 3: payload for send_email: to"):
        ops.submit_many(jobs)
    assert count_jobs(store) == 0


def test_a_later_payload_failing_a_registered_schema_names_its_job(ops, store):
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
    }
    store.job_type_register(["t_remote_bulk"], "remote-worker", [json.dumps(schema)])
    jobs = [{"job_type": "t_remote_bulk", "payload": {"n": n}} for n in range(3)]
    assert len(ops.submit_many(jobs)) == 3
    jobs.append({"job_type": "t_remote_bulk", "payload": {"n": "four"}})
    with pytest.raises(InvalidInput, match=r"^job 4: payload for t_remote_bulk: n:"):
        ops.submit_many(jobs)
    assert count_jobs(store) == 3


def test_every_job_of_a_batch_gets_its_types_defaults_unless_it_gives_its_own(ops, store):
    jobs = [{"job_type": "t_bulk_defaults", "payload": {"i": i}} for i in range(3)]
    jobs.append({"job_type": "t_bulk_defaults", "payload": {"i": 3}, "queue": "reports"})
    got = rows(store, ops.submit_many(jobs))
    assert [(r["queue"], r["priority"], r["max_retries"]) for r in got] == [
        *[("other", 3, 7)] * 3,
        ("reports", 3, 7),
    ]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [({1: "x"}, "payload"), ({"x": float("nan")}, "NaN"), ([1], "payload"), (None, "payload")],
)
def test_a_later_bad_payload_is_refused_as_a_single_submit_would_be(ops, store, payload, fragment):
    jobs = [{"job_type": "noop", "payload": {"i": i}} for i in range(3)]
    jobs.append({"job_type": "noop", "payload": payload})
    with pytest.raises(InvalidInput, match=rf"^job 4: .*{fragment}"):
        ops.submit_many(jobs)
    assert count_jobs(store) == 0


def test_unique_jobs_in_a_batch_are_keyed_by_their_own_payloads(ops, store):
    jobs = [
        {"job_type": "noop", "payload": {"order": 1}, "unique_for": "1h"},
        {"job_type": "noop", "payload": {"order": 2}, "unique_for": "1h"},
        {"job_type": "noop", "payload": {"order": 1}, "unique_for": "1h"},
    ]
    first, second, again = ops.submit_many(jobs)
    assert first == again and first != second
    assert count_jobs(store) == 2


def test_a_batch_keeps_per_job_retry_settings_and_time_limits_where_given(ops, store):
    # The bulk COPY leaves these columns out when no job of the batch sets one (store/jobs.py).
    plain = ops.submit_many([{"job_type": "noop", "payload": {"i": i}} for i in range(2)])
    tuned = ops.submit_many(
        [
            {"job_type": "noop", "payload": {}},
            {"job_type": "noop", "payload": {}, "time_limit": "5s", "retry_jitter": 0.5},
            {"job_type": "noop", "payload": {}, "retry_base_delay": 1, "retry_max_delay": 9},
        ]
    )
    got = store._all(
        "SELECT retry_base_delay, retry_max_delay, retry_jitter, time_limit FROM jobs"
        " WHERE id = ANY(%s) ORDER BY id",
        (plain + tuned,),
    )
    assert [tuple(r.values()) for r in got] == [
        (None, None, None, None),
        (None, None, None, None),
        (None, None, None, None),
        (None, None, 0.5, 5.0),
        (1.0, 9.0, None, None),
    ]
