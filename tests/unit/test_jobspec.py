"""The one validation of a submitted job (CLI, bulk files, Python API, HTTP): every check happens
before anything is written, and each refusal names the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from jq_cli.errors import InvalidInput
from jq_cli.model.jobspec import (
    MAX_DEPTH,
    JobRequest,
    check_name,
    encode_payload,
    parse_payload_text,
    parse_priority,
)
from jq_cli.model.states import Priority


def test_a_minimal_job_gets_the_defaults():
    job = JobRequest.parse({"job_type": "noop"})
    new = job.to_new_job("{}", default_max_retries=3)
    assert (new.job_type, new.queue, new.priority, new.max_retries) == ("noop", "default", 2, 3)
    assert new.delay is None and new.run_at is None and new.idempotency_key is None


def test_every_field_reaches_the_new_job():
    job = JobRequest.parse(
        {
            "job_type": "send_email",
            "payload": {"to": "a@example.com"},
            "priority": "HIGH",
            "max_retries": 0,
            "queue": "reports",
            "delay": "90s",
            "idempotency_key": "k-1",
            "retry_base_delay": 1.5,
            "retry_max_delay": 60,
            "retry_jitter": 0.5,
        }
    )
    new = job.to_new_job('{"to":"a@example.com"}', default_max_retries=3)
    assert new.priority == Priority.HIGH.amqp == 3
    assert (new.max_retries, new.queue, new.delay, new.idempotency_key) == (
        0,
        "reports",
        90.0,
        "k-1",
    )
    assert (new.retry_base_delay, new.retry_max_delay, new.retry_jitter) == (1.5, 60.0, 0.5)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "job_type: Field required"),
        ({"job_type": "9lives"}, "job_type: not a valid job type name"),
        ({"job_type": "noop", "queue": "a b"}, "queue: not a valid queue name"),
        ({"job_type": "noop", "priority": "urgent"}, "priority"),
        ({"job_type": "noop", "max_retries": -1}, "max_retries"),
        ({"job_type": "noop", "max_retries": 101}, "max_retries"),
        ({"job_type": "noop", "delay": "soon"}, "delay: cannot parse 'soon'"),
        ({"job_type": "noop", "delay": "400d"}, "delay: must be at most 366 days"),
        ({"job_type": "noop", "delay": 5, "run_at": "2099-01-01T00:00:00Z"}, "not both"),
        ({"job_type": "noop", "run_at": "2000-01-01T00:00:00Z"}, "more than a day in the past"),
        ({"job_type": "noop", "run_at": "2999-01-01T00:00:00Z"}, "in the future"),
        ({"job_type": "noop", "idempotency_key": ""}, "idempotency_key"),
        ({"job_type": "noop", "idempotency_key": "a\x00b"}, "printable"),
        ({"job_type": "noop", "retry_jitter": 2}, "retry_jitter"),
        ({"job_type": "noop", "colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_jobs_are_refused_naming_the_field(data, fragment):
    with pytest.raises(InvalidInput) as caught:
        JobRequest.parse(data, where="line 3")
    assert caught.value.message.startswith("line 3: ")
    assert fragment in caught.value.message


def test_a_job_that_is_not_an_object_is_refused():
    with pytest.raises(InvalidInput, match="a job must be a JSON object, got list"):
        JobRequest.parse([1, 2])


def test_a_naive_run_at_is_taken_as_utc():
    when = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0, tzinfo=None)
    job = JobRequest.parse({"job_type": "noop", "run_at": when})
    assert job.run_at == when.replace(tzinfo=UTC)


def test_payloads_are_encoded_compactly_and_checked():
    assert encode_payload({"a": [1, "é"]}, 100) == '{"a":[1,"é"]}'
    deep: dict = {}
    node = deep
    for _ in range(MAX_DEPTH):
        node["x"] = {}
        node = node["x"]
    for payload, fragment in [
        ([1], "must be a JSON object, got list"),
        (deep, f"nested deeper than {MAX_DEPTH}"),
        ({"x": object()}, "not JSON-serialisable"),
        ({"x": "a\x00b"}, "NUL character"),
        ({"x": "\ud800"}, "lone surrogate"),
        ({"x": "y" * 100}, "more than the cap of 50"),
    ]:
        with pytest.raises(InvalidInput, match=fragment):
            encode_payload(payload, 50)


def nested(levels: int, container: str = "dict") -> dict:
    """A payload whose deepest value sits `levels` containers down (the payload itself is one)."""
    node: object = 1
    for _ in range(levels - 1):
        node = {"x": node} if container == "dict" else [node]
    return {"x": node}


@pytest.mark.parametrize("container", ["dict", "list"])
def test_depth_is_exact_at_the_limit_whatever_the_containers(container):
    # The depth walk runs only when the text holds enough brackets: these are just under and just
    # over the limit, so the shortcut must neither refuse the one nor let the other through.
    encode_payload(nested(MAX_DEPTH - 1, container), 10_000)
    with pytest.raises(InvalidInput, match=f"nested deeper than {MAX_DEPTH}"):
        encode_payload(nested(MAX_DEPTH, container), 10_000)


def test_brackets_inside_strings_do_not_make_a_flat_payload_deep():
    assert encode_payload({"x": "[{" * 100}, 10_000) == '{"x":"' + "[{" * 100 + '"}'


def test_a_payload_nested_past_pythons_limit_or_holding_itself_is_refused_as_too_deep():
    with pytest.raises(InvalidInput, match="nested deeper"):
        encode_payload(nested(100_000, "list"), 10**9)
    looped: dict = {}
    looped["self"] = looped
    with pytest.raises(InvalidInput, match="nested deeper"):
        encode_payload(looped, 10_000)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_payloads_with_nan_or_infinity_are_refused_before_anything_is_written(number):
    with pytest.raises(InvalidInput, match="payload"):
        encode_payload({"x": number}, 100)


def test_payload_text_must_be_a_json_object():
    assert parse_payload_text('{"a": 1}') == {"a": 1}
    with pytest.raises(InvalidInput, match=r"payload is not valid JSON: .* line 1 column 2"):
        parse_payload_text("{oops}")
    with pytest.raises(InvalidInput, match="payload file must be a JSON object, got int"):
        parse_payload_text("3", "payload file")
    assert json.loads(encode_payload(parse_payload_text('{"k": [true]}'), 100)) == {"k": [True]}


def test_names_and_priorities():
    assert check_name("a.b-c_9", "queue") == "a.b-c_9"
    for bad in ("", "1a", "a b", "a" * 101, 5):
        with pytest.raises(InvalidInput, match="is not a valid name"):
            check_name(bad, "queue")
    assert parse_priority("Low") is Priority.LOW and parse_priority(Priority.HIGH) is Priority.HIGH
    with pytest.raises(InvalidInput, match="priority must be high, medium or low, got 'top'"):
        parse_priority("top")
