"""Rolling deploys and submit-time schemas: a job whose type the receiving worker lacks is never
dead-lettered for that; it goes to a live worker that has the type, or waits (scheduled, no
attempt spent) until one starts. Workers register each type's payload schema, and every submit
path checks payloads against it before anything is written."""

from __future__ import annotations

import json
import threading

import pytest
from jq_cli.errors import InvalidInput
from jq_cli.handlers import load_builtins
from jq_cli.handlers.registry import Registry
from jq_cli.worker.daemon import Worker
from pydantic import BaseModel

from conftest import wait_for


class Only(BaseModel):
    n: int


def only_b(payload: Only, ctx) -> dict:
    return {"n": payload.n, "by": "b"}


def registry(with_b: bool) -> Registry:
    reg = Registry(handlers=dict(load_builtins().handlers))
    if with_b:
        reg.register("t_only_b", only_b, Only)
    return reg


@pytest.fixture
def run_worker(settings):
    started: list[tuple[Worker, threading.Thread]] = []

    def start(name: str, with_b: bool) -> Worker:
        w = Worker(settings, registry(with_b), name=name, concurrency=2)
        t = threading.Thread(target=w.run, daemon=True)
        t.start()
        started.append((w, t))
        wait_for(lambda: w.consumer.connected.is_set(), 15, what=f"worker {name} connected")
        return w

    yield start
    for w, t in started:
        w.forced.set()
        w.request_stop()
        t.join(15)


def test_job_no_live_worker_can_run_waits_then_runs_on_the_deploy(
    ops, store, run_worker, start_scheduler
):
    store.job_type_register(["t_only_b"], "long-gone-worker")  # known, but nobody live has it:
    store._run("UPDATE worker_types SET seen_at = now() - interval '1 hour'")  # it went away
    start_scheduler()
    old = run_worker("old", with_b=False)
    job_id = ops.submit("t_only_b", {"n": 3}, max_retries=0)

    def waiting():
        job = ops.get(job_id)
        return job if job["state"] == "scheduled" and job["attempt_history"] else None

    job = wait_for(
        waiting, 20, what=lambda: f"the job to wait for a worker with its type: {ops.get(job_id)}"
    )
    assert job["attempts"] == 0  # no attempt spent
    assert "no live worker" in job["last_error"]
    assert job["attempt_history"][0]["outcome"] == "interrupted"
    assert old.handed_over >= 1
    run_worker("new", with_b=True)
    done = wait_for(
        lambda: (j := ops.get(job_id))["state"] in ("completed", "dead") and j,
        60,
        what="the job to run",
    )
    assert done["state"] == "completed" and done["result"] == {"n": 3, "by": "b"}
    assert done["attempts"] == 1


def test_jobs_reach_the_worker_that_has_their_type(ops, run_worker, start_scheduler):
    start_scheduler()
    run_worker("has-b", with_b=True)
    lacking = run_worker("lacks-b", with_b=False)
    ids = ops.submit_many([{"job_type": "t_only_b", "payload": {"n": i}} for i in range(30)])

    def all_done():
        jobs = [ops.get(i) for i in ids]
        return jobs if all(j["state"] in ("completed", "dead", "cancelled") for j in jobs) else None

    jobs = wait_for(all_done, 90, what="every job to end")
    assert [j["state"] for j in jobs] == ["completed"] * len(ids)
    assert all(j["result"]["by"] == "b" for j in jobs)
    # the lacking worker handed over what it received, on the live-elsewhere path
    assert lacking.handed_over > 0


def test_submit_checks_the_registered_schema_of_a_type_it_does_not_import(ops, store, run_cli):
    schema = Only.model_json_schema()
    store.job_type_register(["t_remote"], "remote-worker", [json.dumps(schema)])
    with pytest.raises(InvalidInput, match="payload for t_remote: n"):
        ops.submit("t_remote", {"n": "three"})
    with pytest.raises(InvalidInput, match="'n' is a required property"):
        ops.submit_many([{"job_type": "t_remote", "payload": {}}])
    assert ops.get(ops.submit("t_remote", {"n": 3}))["state"] == "queued"
    bad = run_cli("submit", "t_remote", "--payload", '{"n": []}')
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith("jq: error: payload for t_remote")
    count = store._one("SELECT count(*) AS c FROM jobs")["c"]
    assert count == 1  # only the valid one was written


def test_a_client_sees_a_schema_registered_anew_once_its_copy_expires(ops, store, monkeypatch):
    # A client keeps a type's schema for ops/prepare.py SCHEMA_TTL (30 s, README), shortened here.
    monkeypatch.setattr("jq_cli.ops.prepare.SCHEMA_TTL", 0.3)
    strict = {"type": "object", "properties": {"n": {"type": "integer"}}}
    store.job_type_register(["t_evolving"], "remote-worker", [json.dumps(strict)])
    with pytest.raises(InvalidInput, match="payload for t_evolving: n"):
        ops.submit_many([{"job_type": "t_evolving", "payload": {"n": "three"}}])
    loose = {"type": "object", "properties": {"n": {"type": ["integer", "string"]}}}
    store.job_type_register(["t_evolving"], "remote-worker", [json.dumps(loose)])

    def accepted() -> bool:
        try:
            return bool(ops.submit_many([{"job_type": "t_evolving", "payload": {"n": "three"}}]))
        except InvalidInput:
            return False

    wait_for(accepted, 10, what="the new schema to be seen by the client")


def test_a_worker_registers_its_payload_schemas(ops, store, run_worker):
    run_worker("schema-b", with_b=True)
    known, schema = store.job_type_schema("t_only_b")
    assert known and schema["properties"]["n"]["type"] == "integer"


@pytest.mark.parametrize("payload", ['{"x": NaN}', '{"x": Infinity}', '{"x": -Infinity}'])
def test_submit_of_nan_exits_2_with_one_line(run_cli, store, payload):
    result = run_cli("submit", "noop", "--payload", payload)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "jq: error:" in result.stderr
    assert store._one("SELECT count(*) AS c FROM jobs")["c"] == 0


def test_bulk_line_with_nan_is_refused(ops):
    with pytest.raises(InvalidInput, match="NaN or Infinity"):
        ops.submit_many([{"job_type": "noop", "payload": {"x": float("nan")}}])


def test_submit_where_the_handler_is_not_imported_applies_its_registered_defaults(
    ops, store, run_cli
):
    defaults = {"queue": "reports", "priority": "high", "max_retries": 9, "time_limit": 12.0}
    store.job_type_register(["t_remote_defaults"], "remote-worker", [None], [json.dumps(defaults)])
    done = run_cli("submit", "t_remote_defaults")
    assert done.returncode == 0, done.stderr
    job = ops.get(int(done.stdout))
    assert (job["queue"], job["priority"], job["max_retries"], job["time_limit"]) == (
        "reports",
        "high",
        9,
        12.0,
    )
    over = run_cli(
        "submit", "t_remote_defaults", "--queue", "other", "--new-queue", "--max-retries", "1"
    )
    assert over.returncode == 0, over.stderr
    job = ops.get(int(over.stdout))
    assert (job["queue"], job["priority"], job["max_retries"]) == ("other", "high", 1)
