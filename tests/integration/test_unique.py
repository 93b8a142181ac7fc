"""Unique jobs: a second submit of the same work within the period returns the first."""

from __future__ import annotations

import threading

import pytest
from jq_cli import job
from jq_cli.client import Client
from jq_cli.errors import InvalidInput

from conftest import wait_for


def job_count(store) -> int:
    return store._one("SELECT count(*) AS n FROM jobs")["n"]


def test_second_submit_of_the_same_payload_returns_the_first_job(ops, store):
    first = ops.submit("noop", {"n": 1, "tag": "a"}, unique_for="1h")
    again = ops.submit("noop", {"tag": "a", "n": 1}, unique_for="1h")  # keys in another order
    other = ops.submit("noop", {"n": 2, "tag": "a"}, unique_for="1h")
    assert again == first
    assert other != first
    assert job_count(store) == 2


def test_chosen_payload_keys_decide_what_is_the_same_job(ops, store):
    first = ops.submit("noop", {"host": "db1", "n": 1}, unique_for="1h", unique_on=("host",))
    same_host = ops.submit("noop", {"host": "db1", "n": 2}, unique_for="1h", unique_on=["host"])
    other_host = ops.submit("noop", {"host": "db2", "n": 1}, unique_for="1h", unique_on=["host"])
    assert same_host == first
    assert other_host != first
    with pytest.raises(InvalidInput, match="no key 'host'"):
        ops.submit("noop", {"n": 1}, unique_for="1h", unique_on=["host"])
    with pytest.raises(InvalidInput, match="give unique_for too"):
        ops.submit("noop", {"host": "x"}, unique_on=["host"])
    with pytest.raises(InvalidInput, match="unique_for"):
        ops.submit("noop", {}, unique_for="soon")


def test_after_the_period_a_new_job_is_created(ops, store):
    first = ops.submit("noop", {"n": 1}, unique_for=0.5)
    until = store._one("SELECT unique_until FROM jobs WHERE id = %s", (first,))["unique_until"]
    wait_for(lambda: store.now() > until, 10, what="the unique period to end")
    assert ops.submit("noop", {"n": 1}, unique_for=0.5) != first


def test_unique_for_on_the_job_decorator_is_the_default_of_its_submits(ops, store):
    @job("t_unique_default", unique_for="1h", unique_on=("host",))
    def handler(payload, ctx):
        return None

    first = ops.submit("t_unique_default", {"host": "a", "n": 1})
    assert ops.submit("t_unique_default", {"host": "a", "n": 2}) == first
    assert job_count(store) == 1


def test_concurrent_submits_of_one_unique_job_create_one(settings, store):
    clients = [Client(settings) for _ in range(8)]
    for c in clients:  # connect first, so that the threads race on the submit itself
        c.store.require_schema()
    barrier = threading.Barrier(len(clients))
    ids: list[int] = []
    lock = threading.Lock()

    def submit(client: Client) -> None:
        barrier.wait()
        job_id = client.submit("noop", {"report": "daily"}, unique_for="1h")
        with lock:
            ids.append(job_id)

    threads = [threading.Thread(target=submit, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for c in clients:
        c.close()
    assert len(ids) == len(clients)
    assert len(set(ids)) == 1
    assert job_count(store) == 1


def test_unique_submit_many_finds_its_own_earlier_line(ops, store):
    ids = ops.submit_many(
        [
            {"job_type": "noop", "payload": {"n": 1}, "unique_for": "10m"},
            {"job_type": "noop", "payload": {"n": 1}, "unique_for": "10m"},
            {"job_type": "noop", "payload": {"n": 2}},
        ]
    )
    assert ids[0] == ids[1] != ids[2]
    assert job_count(store) == 2
