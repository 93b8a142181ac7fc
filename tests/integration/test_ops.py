"""The operations layer (jq_cli.client) in-process, against the real services: submit and its
validation, idempotency, bulk submit, delays, listing, retry, cancel, purge and stats."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from jq_cli.client import Client
from jq_cli.errors import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    SchemaNotMigrated,
    ServiceUnavailable,
)
from jq_cli.store import Finish, Store

from conftest import make_settings, wait_for

VALID_PAYLOADS = {
    "noop": {"anything": [1, 2, {"goes": True}]},
    "send_email": {"to": "ops@example.com", "subject": "hello", "body": "world"},
    "process_video": {
        "video_url": "https://example.com/v/clip.mov",
        "output_format": "webm",
        "duration": 1,
    },
    "scrape_website": {"url": "https://example.com/", "selector": "div.content > h1"},
}

INVALID_PAYLOADS = [
    ("send_email", {"to": "not-an-address", "subject": "s", "body": "b"}, "to"),
    ("send_email", {"to": "a@example.com", "body": "b"}, "subject"),
    (
        "send_email",
        {"to": "a@example.com", "subject": "s", "body": "b", "cc": "x@example.com"},
        "cc",
    ),
    (
        "send_email",
        {"to": "a@example.com", "subject": "s", "body": "b", "failure_rate": 2},
        "failure_rate",
    ),
    ("process_video", {"video_url": "ftp://example.com/a.mov"}, "video_url"),
    (
        "process_video",
        {"video_url": "https://example.com/a.mov", "output_format": "exe"},
        "output_format",
    ),
    ("process_video", {"video_url": "https://example.com/a.mov", "duration": 0}, "duration"),
    ("scrape_website", {"url": "https://example.com", "selector": "div[["}, "selector"),
    ("scrape_website", {"url": "file:///etc/passwd", "selector": "h1"}, "url"),
    ("scrape_website", {"selector": "h1"}, "url"),
]


# -- helpers ------------------------------------------------------------------------------------


def count_jobs(store: Store, **where: object) -> int:
    clauses = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    return store._one(f"SELECT count(*) AS n FROM jobs WHERE {clauses}", where)["n"]


def count_attempts(store: Store) -> int:
    return store._one("SELECT count(*) AS n FROM attempts")["n"]


def finish(store: Store, job_id: int, outcome: str, error: str | None = None) -> None:
    """Drive a queued job through one attempt as a worker would: claim it, record `outcome`
    (a failure with no retry left makes it dead)."""
    claimed = store.job_claim([job_id], "test-worker", 30)
    assert [c.id for c in claimed] == [job_id]
    changed = store.job_finish(
        [Finish(job_id, claimed[0].run_count, outcome, error=error)], "test-worker"
    )
    assert changed == {job_id: {"completed": "completed", "failed": "dead"}[outcome]}


def dead_job(ops: Client, store: Store, job_type: str = "noop", error: str = "boom") -> int:
    job_id = ops.submit(
        job_type, {"n": 1} if job_type == "noop" else VALID_PAYLOADS[job_type], max_retries=0
    )
    finish(store, job_id, "failed", error)
    return job_id


def completed_job(ops: Client, store: Store) -> int:
    job_id = ops.submit("noop", {})
    finish(store, job_id, "completed")
    return job_id


@pytest.fixture
def reader(settings) -> Client:
    """A second Client with its own connections: sees only what the first one committed."""
    with Client(settings) as other:
        yield other


# -- submit ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("job_type", sorted(VALID_PAYLOADS))
def test_submit_of_each_builtin_type_is_committed_before_it_returns(ops, store, job_type):
    job_id = ops.submit(
        job_type, VALID_PAYLOADS[job_type], priority="high", max_retries=5, queue="other"
    )
    # A separate connection sees the row at once: it was committed, not merely inserted.
    row = store.job_get(job_id)
    assert row["job_type"] == job_type
    assert row["payload"] == VALID_PAYLOADS[job_type]
    assert row["state"] == "queued"
    assert (row["priority"], row["max_retries"], row["queue"]) == (3, 5, "other")
    assert row["attempts"] == 0 and row["attempt_history"] == []


def test_submit_uses_the_default_max_retries_and_medium_priority(ops, reader):
    job = reader.get(ops.submit("noop"))
    assert job["max_retries"] == ops.settings.default_max_retries
    assert job["priority"] == "medium"
    assert job["payload"] == {}


@pytest.mark.parametrize(("job_type", "payload", "field"), INVALID_PAYLOADS)
def test_submit_rejects_a_payload_failing_the_types_schema(ops, store, job_type, payload, field):
    with pytest.raises(InvalidInput) as err:
        ops.submit(job_type, payload)
    assert job_type in err.value.message and field in err.value.message
    assert err.value.exit_code == 2
    assert count_jobs(store) == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"job_type": "no_such_type"}, "unknown job type 'no_such_type'"),
        ({"job_type": "bad type!"}, "job_type"),
        ({"job_type": "noop", "payload": [1, 2]}, "payload"),
        ({"job_type": "noop", "priority": "urgent"}, "priority"),
        ({"job_type": "noop", "max_retries": -1}, "max_retries"),
        ({"job_type": "noop", "max_retries": 101}, "max_retries"),
        ({"job_type": "noop", "queue": "no spaces"}, "queue"),
        ({"job_type": "noop", "delay": "soon"}, "delay"),
        ({"job_type": "noop", "delay": "-5s"}, "delay"),
        ({"job_type": "noop", "delay": 5, "run_at": "2099-01-01T00:00:00Z"}, "not both"),
        ({"job_type": "noop", "run_at": "yesterday"}, "run_at"),
        ({"job_type": "noop", "run_at": "2001-01-01T00:00:00Z"}, "in the past"),
        ({"job_type": "noop", "idempotency_key": ""}, "idempotency_key"),
        ({"job_type": "noop", "payload": {"s": "nul\x00byte"}}, "NUL"),
    ],
)
def test_submit_rejects_invalid_input_and_writes_nothing(ops, store, kwargs, fragment):
    with pytest.raises(InvalidInput) as err:
        ops.submit(**kwargs)
    assert fragment in err.value.message
    assert count_jobs(store) == 0


def test_submit_rejects_a_payload_over_the_size_limit(settings, store):
    with (
        Client(settings.model_copy(update={"max_payload_bytes": 100})) as small,
        pytest.raises(InvalidInput, match="more than the cap of 100"),
    ):
        small.submit("noop", {"blob": "x" * 200})
    assert count_jobs(store) == 0


def test_a_second_submit_with_the_same_idempotency_key_returns_the_first_job(ops, reader, store):
    first = ops.submit("send_email", VALID_PAYLOADS["send_email"], idempotency_key="order-42")
    # Another client (another connection), the same request: still the first job.
    second = reader.submit("send_email", VALID_PAYLOADS["send_email"], idempotency_key="order-42")
    assert second == first
    # Another payload or type under the key is another request: a conflict naming the first job.
    with pytest.raises(Conflict, match=f"job {first}"):
        reader.submit(
            "send_email",
            {**VALID_PAYLOADS["send_email"], "subject": "again"},
            idempotency_key="order-42",
        )
    with pytest.raises(Conflict, match="another type"):
        reader.submit("noop", VALID_PAYLOADS["send_email"], idempotency_key="order-42")
    assert count_jobs(store) == 1
    assert store.job_get(first)["payload"]["subject"] == "hello"
    assert ops.submit("noop", idempotency_key="order-43") != first
    assert count_jobs(store) == 2


def test_submit_many_inserts_every_job_in_order(ops, store):
    jobs = [
        {"job_type": "noop", "payload": {"i": i}, "priority": ["low", "medium", "high"][i % 3]}
        for i in range(30)
    ]
    ids = ops.submit_many(jobs)
    assert len(ids) == 30 and len(set(ids)) == 30
    assert [store.job_get(i)["payload"]["i"] for i in ids] == list(range(30))
    assert count_jobs(store) == 30


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ({"job_type": "no_such_type"}, "unknown job type"),
        ({"job_type": "noop", "priority": "urgent"}, "priority"),
        ({"job_type": "noop", "colour": "red"}, "colour"),
        ({"job_type": "send_email", "payload": {"to": "nobody"}}, "payload for send_email"),
        ("not an object", "JSON object"),
    ],
)
def test_submit_many_with_one_bad_job_writes_nothing(ops, store, bad, fragment):
    jobs = [{"job_type": "noop"}, {"job_type": "noop"}, bad, {"job_type": "noop"}]
    with pytest.raises(InvalidInput) as err:
        ops.submit_many(jobs)
    assert err.value.message.startswith("job 3: ")
    assert fragment in err.value.message
    assert count_jobs(store) == 0


def test_submit_many_honours_idempotency_keys_within_and_across_batches(ops, store):
    before = ops.submit("noop", idempotency_key="k-old")
    ids = ops.submit_many(
        [
            {"job_type": "noop", "idempotency_key": "k-new"},
            {"job_type": "noop"},
            {"job_type": "noop", "idempotency_key": "k-new"},
            {"job_type": "noop", "idempotency_key": "k-old"},
        ]
    )
    assert ids[0] == ids[2]
    assert ids[3] == before
    assert count_jobs(store) == 3


def test_submit_with_a_delay_is_scheduled_with_run_at_in_the_future(ops, store):
    job_id = ops.submit("noop", delay="30s")
    row = store.job_get(job_id)
    assert row["state"] == "scheduled"
    now = store.now()
    assert now + timedelta(seconds=25) < row["run_at"] <= now + timedelta(seconds=31)
    assert row["published_at"] is None  # nothing to publish until the scheduler promotes it


def test_submit_at_a_future_time_is_scheduled_at_that_time(ops, store):
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    job_id = ops.submit("noop", run_at=when.isoformat())
    row = store.job_get(job_id)
    assert row["state"] == "scheduled"
    assert row["run_at"] == when


def test_submit_many_mixes_due_and_delayed_jobs(ops, store):
    ids = ops.submit_many([{"job_type": "noop"}, {"job_type": "noop", "delay": "1h"}])
    assert [store.job_get(i)["state"] for i in ids] == ["queued", "scheduled"]


def test_submit_with_the_broker_down_still_commits_the_job(settings, store):
    # RabbitMQ is transport only: the job is safe in Postgres, and the sweeper publishes it later.
    down = settings.model_copy(update={"rabbitmq_url": "amqp://guest:guest@127.0.0.1:1/"})
    with Client(down) as o:
        job_id = o.submit("noop")
    assert store.job_get(job_id)["state"] == "queued"


def test_operations_on_an_unmigrated_namespace_raise_schema_not_migrated(settings):
    never = settings.model_copy(update={"namespace": f"t{uuid.uuid4().hex[:12]}"})
    with Client(never) as o, pytest.raises(SchemaNotMigrated, match="jq db migrate") as err:
        o.submit("noop")
    assert err.value.exit_code == 3


def test_operations_with_the_database_down_raise_service_unavailable_without_the_password(settings):
    down = settings.model_copy(update={"database_url": "postgresql://jq:hunter2@127.0.0.1:1/jq"})
    with Client(down) as o, pytest.raises(ServiceUnavailable) as err:
        o.submit("noop")
    assert err.value.exit_code == 3
    assert "postgresql://jq:***@127.0.0.1:1/jq" in err.value.message
    assert "hunter2" not in err.value.message


# -- read -----------------------------------------------------------------------------------------


def test_get_of_a_missing_job_raises_not_found(ops):
    with pytest.raises(NotFound, match="job 987654 not found"):
        ops.get(987654)


def test_list_filters_and_orders_newest_first(ops):
    a = ops.submit("noop", priority="high")
    b = ops.submit("send_email", VALID_PAYLOADS["send_email"], queue="other")
    c = ops.submit("noop", priority="low", queue="reports")
    d = ops.submit("noop", delay="1h")
    assert [j["id"] for j in ops.list_jobs()] == [d, c, b, a]
    assert [j["id"] for j in ops.list_jobs(state="scheduled")] == [d]
    assert [j["id"] for j in ops.list_jobs(state="queued")] == [c, b, a]
    assert [j["id"] for j in ops.list_jobs(job_type="send_email")] == [b]
    assert [j["id"] for j in ops.list_jobs(priority="high")] == [a]
    assert [j["id"] for j in ops.list_jobs(priority="LOW")] == [c]
    assert [j["id"] for j in ops.list_jobs(queue="reports")] == [c]
    assert [j["id"] for j in ops.list_jobs(limit=2)] == [d, c]
    assert [j["id"] for j in ops.list_jobs(since=3600)] == [d, c, b, a]
    assert ops.list_jobs(job_type="process_video") == []
    assert all(j["priority"] in ("high", "medium", "low") for j in ops.list_jobs())


def test_list_since_excludes_older_jobs(ops, store):
    old = ops.submit("noop")
    store._run("UPDATE jobs SET created_at = now() - interval '2 hours' WHERE id = %s", (old,))
    new = ops.submit("noop")
    assert [j["id"] for j in ops.list_jobs(since=3600)] == [new]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"state": "sleeping"},
        {"priority": "urgent"},
        {"limit": 0},
        {"limit": 10_001},
        {"queue": "a b"},
        {"job_type": "x;drop"},
    ],
)
def test_list_rejects_a_bad_filter(ops, kwargs):
    with pytest.raises(InvalidInput):
        ops.list_jobs(**kwargs)


# -- retry, cancel, purge -------------------------------------------------------------------------


def test_a_failing_handler_ends_dead_with_its_attempt_recorded(ops, start_worker):
    job_id = ops.submit(
        "send_email", {**VALID_PAYLOADS["send_email"], "failure_rate": 1}, max_retries=0
    )
    start_worker()
    job = wait_for(lambda: (j := ops.get(job_id))["state"] == "dead" and j, what="job dead")
    assert job["attempts"] == 1
    assert [a["outcome"] for a in job["attempt_history"]] == ["failed"]
    assert "simulated SMTP failure" in job["last_error"]
    assert "DeliveryFailed" in job["attempt_history"][0]["traceback"]
    assert [j["id"] for j in ops.dead_letters()] == [job_id]


def test_retry_of_a_dead_job_queues_it_with_attempts_reset_and_history_kept(ops, store):
    job_id = dead_job(ops, store, error="first failure")
    report = ops.retry([job_id])
    assert report.ok and report.changed == {job_id: "queued"}
    job = ops.get(job_id)
    assert job["state"] == "queued"
    assert job["attempts"] == 0
    assert job["finished_at"] is None
    assert [(a["number"], a["outcome"], a["error"]) for a in job["attempt_history"]] == [
        (1, "failed", "first failure")
    ]
    # The fresh attempt is numbered after the kept one.
    claimed = store.job_claim([job_id], "test-worker", 30)
    assert claimed[0].run_count == 2 and claimed[0].attempts == 1


def test_retried_dead_job_runs_again_on_a_worker(ops, store, start_worker):
    job_id = dead_job(ops, store)
    ops.retry([job_id])
    start_worker()
    job = wait_for(
        lambda: (j := ops.get(job_id))["state"] == "completed" and j, what="retried job completed"
    )
    assert [a["outcome"] for a in job["attempt_history"]] == ["failed", "completed"]


def test_retry_refuses_completed_queued_and_missing_jobs(ops, store):
    done = completed_job(ops, store)
    queued = ops.submit("noop")
    dead = dead_job(ops, store)
    report = ops.retry([done, queued, dead, 999_999])
    assert report.changed == {dead: "queued"}
    assert (
        isinstance(report.refused[done], InvalidTransition)
        and "is completed" in report.refused[done].message
    )
    assert (
        isinstance(report.refused[queued], InvalidTransition)
        and "is queued" in report.refused[queued].message
    )
    assert isinstance(report.refused[999_999], NotFound)
    assert ops.get(done)["state"] == "completed" and ops.get(queued)["state"] == "queued"


def test_retry_matching_dry_run_changes_nothing(ops, store):
    dead = [dead_job(ops, store) for _ in range(3)]
    assert ops.retry_matching(state="dead", dry_run=True) == len(dead)
    assert count_jobs(store, state="dead") == 3
    assert ops.retry_matching(state="dead") == len(dead)
    assert count_jobs(store, state="queued") == 3


def test_retry_matching_filters_by_type_and_refuses_active_states(ops, store):
    email = dead_job(ops, store, "send_email")
    dead_job(ops, store, "noop")
    assert ops.retry_matching(state="dead", job_type="send_email") == 1
    assert ops.get(email)["state"] == "queued"
    assert count_jobs(store, state="dead") == 1
    with pytest.raises(InvalidInput):
        ops.retry_matching(state="queued")


def test_cancelled_queued_job_never_runs(ops, store, start_worker):
    job_id = ops.submit("noop")
    assert ops.cancel([job_id]).changed == {job_id: "cancelled"}
    worker = start_worker()
    # The worker receives the cancelled job's message and drops it as stale.
    wait_for(
        lambda: worker.worker.duplicates >= 1, what="worker dropped the cancelled job's message"
    )
    job = ops.get(job_id)
    assert job["state"] == "cancelled"
    assert job["attempts"] == 0 and job["attempt_history"] == []
    assert job["finished_at"] is not None


def test_cancel_refuses_terminal_jobs_and_reports_missing_ones(ops, store):
    done = completed_job(ops, store)
    report = ops.cancel([done, 424242])
    assert not report.changed
    assert isinstance(report.refused[done], InvalidTransition)
    assert isinstance(report.refused[424242], NotFound)
    assert ops.get(done)["state"] == "completed"


def test_cancelling_a_running_job_twice_is_not_an_error_but_a_terminal_one_is(ops, store):
    running = ops.submit("noop")
    assert [r.id for r in store.job_claim([running], "w-test", 60)] == [running]
    assert ops.cancel([running]).changed == {running: "cancelling"}
    done = completed_job(ops, store)
    # The second cancel changes no row: the running job is reported as still cancelling, while
    # the completed one is refused with the state it was found in.
    report = ops.cancel([running, done])
    assert report.changed == {running: "cancelling"}
    assert list(report.refused) == [done]
    refusal = report.refused[done]
    assert isinstance(refusal, InvalidTransition) and refusal.state == "completed"


def test_cancel_of_a_scheduled_job_cancels_it(ops):
    job_id = ops.submit("noop", delay="1h")
    assert ops.cancel([job_id]).changed == {job_id: "cancelled"}
    assert ops.get(job_id)["state"] == "cancelled"


def test_purge_deletes_only_terminal_jobs_of_the_state_with_their_attempts(ops, store):
    done = [completed_job(ops, store) for _ in range(2)]
    dead = dead_job(ops, store)
    queued = ops.submit("noop")
    scheduled = ops.submit("noop", delay="1h")
    assert count_attempts(store) == 3
    assert ops.purge(state="completed", dry_run=True) == 2
    assert count_jobs(store) == 5
    assert ops.purge(state="completed") == 2
    remaining = {j["id"] for j in ops.list_jobs()}
    assert remaining == {dead, queued, scheduled}
    assert not remaining & set(done)
    assert (
        count_attempts(store) == 1
    )  # the dead job's attempt; the completed ones went with their jobs


@pytest.mark.parametrize("state", ["queued", "running", "scheduled", "retrying", "bogus"])
def test_purge_refuses_a_non_terminal_state(ops, store, state):
    ops.submit("noop")
    with pytest.raises(InvalidInput):
        ops.purge(state=state)
    assert count_jobs(store) == 1


def test_purge_older_than_spares_recent_jobs(ops, store):
    old, new = completed_job(ops, store), completed_job(ops, store)
    store._run("UPDATE jobs SET finished_at = now() - interval '3 days' WHERE id = %s", (old,))
    assert ops.purge(state="completed", older_than=86400) == 1
    assert [j["id"] for j in ops.list_jobs()] == [new]


# -- stats ----------------------------------------------------------------------------------------


def test_stats_counts_match_the_database(ops, store):
    ops.submit("noop", priority="high")
    ops.submit("noop", priority="low", queue="other")
    ops.submit("noop", priority="low", queue="other")
    ops.submit("noop", delay="1h")
    dead_job(ops, store)
    completed_job(ops, store)
    stats = ops.stats()
    truth = {
        r["state"]: r["n"]
        for r in store._all("SELECT state, count(*) AS n FROM jobs GROUP BY state")
    }
    assert {s: n for s, n in stats["by_state"].items() if n} == truth
    assert truth == {"queued": 3, "scheduled": 1, "dead": 1, "completed": 1}
    assert stats["queued_by_priority"] == {"high": 1, "medium": 0, "low": 2}
    assert stats["queues"]["default"]["queued"] == 1 and stats["queues"]["other"]["queued"] == 2
    assert stats["broker_error"] is None and stats["telemetry_error"] is None
    # The broker holds one message per published job (the delayed one is not published yet).
    wait_for(
        lambda: ops.stats()["queues"]["other"]["broker_ready"] == 2, what="broker depth of 'other'"
    )


def test_doctor_reports_every_service_ok(ops):
    checks = ops.doctor()
    assert [c.name for c in checks] == ["postgresql", "schema", "rabbitmq", "redis"]
    assert all(c.ok for c in checks), checks


def test_doctor_reports_a_down_service_without_raising(settings):
    down = settings.model_copy(update={"redis_url": "redis://:s3cret@127.0.0.1:1/0"})
    with Client(down) as o:
        checks = {c.name: c for c in o.doctor()}
    assert not checks["redis"].ok and checks["postgresql"].ok
    assert "s3cret" not in checks["redis"].detail and "***" in checks["redis"].detail


def test_migrate_twice_applies_nothing_the_second_time():
    ns = f"t{uuid.uuid4().hex[:12]}"
    o = Client(make_settings(ns))
    try:
        assert o.schema_status()[0] == 0
        _, applied, version = o.migrate()
        assert applied and version == o.schema_status()[1]
        assert o.migrate() == (False, [], version)
    finally:
        o.close()
        store = Store(o.settings.database_url, ns)
        store.drop_namespace()
        store.close()


def test_stats_with_the_broker_and_redis_down_still_counts_from_postgres(settings, ops):
    ops.submit("noop")
    down = settings.model_copy(
        update={
            "rabbitmq_url": "amqp://guest:pw@127.0.0.1:1/",
            "redis_url": "redis://127.0.0.1:1/0",
        }
    )
    with Client(down) as o:
        stats = o.stats()
    assert stats["by_state"]["queued"] == 1
    assert stats["queues"]["default"] == {"queued": 1, "broker_ready": None, "paused": False}
    assert "RabbitMQ unavailable" in stats["broker_error"] and ":pw@" not in stats["broker_error"]
    assert stats["workers"] is None and "Redis unavailable" in stats["telemetry_error"]
