"""The enqueue routine's steps and the one preparation of a job, with no database: the steps are a
generator answered here by hand (docs/design.md, Code layout: ops; one routine for sync and
async)."""

from __future__ import annotations

from typing import Any

import pytest
from jq_cli.config import Settings
from jq_cli.errors import Conflict, InvalidInput
from jq_cli.model.jobspec import JobRequest
from jq_cli.ops.prepare import TypeRules, prepare, request_of
from jq_cli.store.enqueue import Step, enqueue_steps
from jq_cli.store.records import Inserted, NewJob

ROW = {"id": 7, "state": "queued", "queue": "default", "priority": 2}


def job(**fields: Any) -> NewJob:
    return NewJob("noop", '{"n": 1}', "default", 2, 3, **fields)


def drive(steps: Any, answers: list[Any]) -> tuple[list[Step], list[Inserted]]:
    """Answer each step with the next of `answers`; returns the steps seen and the result."""
    seen: list[Step] = []
    try:
        step = next(steps)
        while True:
            seen.append(step)
            step = steps.send(answers.pop(0))
    except StopIteration as end:
        return seen, end.value


def test_a_plain_job_is_one_statement() -> None:
    seen, result = drive(enqueue_steps("ns", [job()]), [ROW])
    assert len(seen) == 1 and "INSERT" in str(seen[0].query)
    assert result == [Inserted(7, "queued", "default", 2, True)]


def test_a_reused_key_of_the_same_request_returns_its_job() -> None:
    same = {**ROW, "job_type": "noop", "same_payload": True}
    seen, result = drive(enqueue_steps("ns", [job(idempotency_key="k")]), [None, same])
    assert len(seen) == 2
    assert result == [Inserted(7, "queued", "default", 2, False)]


def test_a_reused_key_of_another_payload_is_a_conflict() -> None:
    other = {**ROW, "job_type": "noop", "same_payload": False}
    with pytest.raises(Conflict, match="another payload"):
        drive(enqueue_steps("ns", [job(idempotency_key="k")]), [None, other])


def test_a_unique_job_reused_key_of_another_payload_is_a_conflict() -> None:
    other = {**ROW, "job_type": "noop", "same_payload": False}
    steps = enqueue_steps("ns", [job(idempotency_key="k", unique_key="u", unique_for=60.0)])
    with pytest.raises(Conflict):
        drive(steps, [None, None, None, other])  # lock, no unique job, insert met the key


def test_a_key_whose_job_keeps_vanishing_is_refused() -> None:
    with pytest.raises(InvalidInput, match="vanished"):
        drive(enqueue_steps("ns", [job(idempotency_key="k")]), [None, None] * 3)


def test_queued_jobs_go_to_the_outbox_with_a_notify() -> None:
    seen, _ = drive(enqueue_steps("ns", [job()], outbox=True), [ROW, None, None])
    assert [s.fetch for s in seen] == ["one", "none", "none"]
    assert seen[2].params == {"channel": "ns_enqueued"}


def settings() -> Settings:
    return Settings(_env_file=None)


def test_prepare_applies_defaults_only_where_the_request_left_a_field() -> None:
    rules = TypeRules(lambda p: p, {"queue": "images", "priority": "high", "max_retries": 7})
    new = prepare(request_of("noop", {}, {"queue": None}), rules, settings())
    assert (new.queue, new.priority, new.max_retries) == ("images", 3, 7)
    given = prepare(request_of("noop", {}, {"priority": "low"}), rules, settings())
    assert (given.queue, given.priority) == ("images", 1)


def test_prepare_refuses_what_the_types_check_refuses() -> None:
    def check(payload: Any) -> None:
        raise InvalidInput("payload for noop: width: Field required")

    with pytest.raises(InvalidInput, match="width"):
        prepare(JobRequest.parse({"job_type": "noop"}), TypeRules(check), settings())


def test_prepare_keys_a_unique_job_by_its_types_default_period() -> None:
    rules = TypeRules(lambda p: p, unique_for=3600.0, unique_on=("host",))
    a = prepare(request_of("noop", {"host": "a", "n": 1}, {}), rules, settings())
    b = prepare(request_of("noop", {"host": "a", "n": 2}, {}), rules, settings())
    assert a.unique_key == b.unique_key is not None and a.unique_for == 3600.0
