"""Cost independent of history: on a table of a million jobs, almost all finished, every
query of the scheduler's duty loop, `jq stats`, `jq top`'s refresh and the /metrics gauges is served
by an index or the job_counts summary. Checked twice: EXPLAIN shows no sequential scan of jobs, and
each query's median time stays within a bound set against a primary-key lookup in the same run (a
ratio, never an absolute time; a scan of a million rows is some thousand times a key lookup)."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from jq_cli.scheduler.daemon import Scheduler
from jq_cli.store import Store, job_count_created_per_second, latest_version
from jq_cli.store.base import Timeouts
from jq_cli.store.cancels import CancelQueries

# `make scale` runs this module at ten million rows (JQ_SCALE_ROWS) and prints the figures.
ROWS = int(os.environ.get("JQ_SCALE_ROWS", "1000000"))
RATIO = 60  # a query may cost this many key lookups; a scan of the table costs thousands
ROUNDS = 7


def fill(store: Store, rows: int, *, first_id: int = 1) -> None:
    """`rows` jobs in one INSERT … SELECT: 98% completed (finished days ago, in 5 job types and 3
    priorities), the rest spread over the active and other terminal states; the scheduled and
    retrying ones due in an hour (set in the INSERT: an UPDATE would leave dead index entries
    that the first scan has to step over)."""
    store._run(
        """
        INSERT INTO jobs (id, job_type, queue, priority, state, payload, max_retries, attempts,
                          run_count, run_at, published_at, created_at, started_at, finished_at,
                          updated_at, worker, lease_expires_at)
        SELECT i, 'type' || (i %% 5), CASE WHEN i %% 7 = 0 THEN 'other' ELSE 'default' END,
               1 + i %% 3, s.state, '{}'::jsonb, 3, 1, 1,
               CASE WHEN s.state IN ('scheduled', 'retrying') THEN now() + interval '1 hour'
                    ELSE now() - interval '3 days' END, now() - interval '3 days',
               now() - interval '3 days' + i * interval '1 ms', now() - interval '3 days',
               CASE WHEN s.state IN ('completed', 'dead', 'cancelled')
                    THEN now() - interval '3 days' + i * interval '1 ms' END,
               now(), CASE WHEN s.state = 'running' THEN 'w' END,
               CASE WHEN s.state = 'running' THEN now() + interval '1 hour' END
        FROM generate_series(%(first)s, %(last)s) AS i,
             LATERAL (SELECT CASE WHEN i %% 100 < 98 THEN 'completed'
                                  WHEN i %% 100 = 98 THEN (ARRAY['dead', 'cancelled', 'queued',
                                      'running', 'retrying'])[1 + (i / 100) %% 5]
                                  ELSE 'scheduled' END AS state) AS s
        """,
        {"first": first_id, "last": first_id + rows - 1},
    )
    store._run("SELECT setval(pg_get_serial_sequence('jobs', 'id'), %s)", (first_id + rows,))
    store._run("ANALYZE jobs")


def median_ms(fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(plan_nodes(child))
    return out


def seq_scans_of_jobs(store: Store, query: str, params: dict[str, Any]) -> list[str]:
    """The sequential scans of jobs in the plan of `query` (run in a transaction rolled back)."""
    with store.conn.transaction(force_rollback=True):
        row = store.conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()
    assert row is not None
    plan = (
        row["QUERY PLAN"] if isinstance(row["QUERY PLAN"], list) else json.loads(row["QUERY PLAN"])
    )
    return [
        n["Node Type"]
        for n in plan_nodes(plan[0]["Plan"])
        if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "jobs"
    ]


class Upgrade:
    """What the online upgrade of the big table measured (test_migrations_...)."""

    applied: list[str]
    submits: list[float]  # seconds each submit took while the migrations ran
    errors: list[str]
    claimed: int
    ended: float  # epoch seconds when the upgrade (and its load) ended


@pytest.fixture(scope="module")
def big():
    """One namespace with a million jobs for the whole module, filled at schema version 3 and then
    upgraded to the latest while a submitter and a claimer work on it (Upgrade)."""
    import uuid

    from conftest import make_settings

    settings = make_settings(f"t{uuid.uuid4().hex[:12]}")
    # No statement timeout: filling ten million rows (make scale) takes minutes.
    store = Store(settings.database_url, settings.namespace, timeouts=Timeouts(statement=0))
    store.migrate(up_to=3)
    t0 = time.monotonic()
    fill(store, ROWS)
    print(f"filled {ROWS} rows in {time.monotonic() - t0:.1f}s")
    t0 = time.monotonic()
    upgrade = upgrade_under_load(settings, store)
    print(f"upgraded in {time.monotonic() - t0:.1f}s, slowest submit {max(upgrade.submits):.3f}s")
    store._run("ANALYZE jobs")
    yield settings, store, upgrade
    store.drop_namespace()
    store.close()


def upgrade_under_load(settings, store: Store) -> Upgrade:
    """Apply every pending migration while one thread submits jobs and another claims and
    completes them, as a deployment upgrading in place would."""
    import threading

    done = threading.Event()
    result = Upgrade()
    result.submits, result.errors, result.claimed = [], [], 0

    # The load is the statements of the version the upgrade starts from (schema 3), written out
    # here: during an in-place upgrade the old code is what runs, and the new code starts once
    # the migrations are in. What this measures is whether a migration's locks stall them.
    def submitter() -> None:
        s = Store(settings.database_url, settings.namespace)
        try:
            while not done.is_set():
                t0 = time.monotonic()
                s._one(
                    "INSERT INTO jobs (job_type, queue, priority, state, payload, max_retries,"
                    " run_at, published_at) VALUES ('noop', 'default', 2, 'queued', '{}', 3,"
                    " now(), now()) RETURNING id"
                )
                result.submits.append(time.monotonic() - t0)
                time.sleep(0.02)
        except Exception as exc:
            result.errors.append(repr(exc))
        finally:
            s.close()

    def worker() -> None:
        s = Store(settings.database_url, settings.namespace)
        try:
            while not done.is_set():
                claimed = s._all(
                    # the claim of schema 3: conditional on queued, an attempt opened with it
                    """
                    WITH c AS (
                        UPDATE jobs SET state = 'running', worker = 'upgrader',
                               attempts = attempts + 1, run_count = run_count + 1,
                               lease_expires_at = now() + interval '30 seconds', started_at = now()
                        WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND id > %s
                                     ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED)
                          AND state = 'queued'
                        RETURNING id, run_count
                    )
                    INSERT INTO attempts (job_id, number, worker)
                    SELECT id, run_count, 'upgrader' FROM c RETURNING job_id, number
                    """,
                    (ROWS,),
                )
                for job in claimed:
                    s._run(
                        "WITH j AS (UPDATE jobs SET state = 'completed', finished_at = now(),"
                        " worker = NULL, lease_expires_at = NULL WHERE id = %(id)s"
                        " AND state = 'running' AND run_count = %(run)s RETURNING id)"
                        " UPDATE attempts SET outcome = 'completed', finished_at = now()"
                        " FROM j WHERE attempts.job_id = j.id AND attempts.number = %(run)s",
                        {"id": job["job_id"], "run": job["number"]},
                    )
                    result.claimed += 1
                time.sleep(0.02)
        except Exception as exc:
            result.errors.append(repr(exc))
        finally:
            s.close()

    threads = [threading.Thread(target=f, daemon=True) for f in (submitter, worker)]
    for t in threads:
        t.start()
    try:
        result.applied = store.migrate()
    finally:
        done.set()
        for t in threads:
            t.join(30)
        result.ended = time.time()
    return result


DUTY_QUERIES = {
    # name: (SQL, params), the statements of the duty loop and the dashboards, verbatim in effect
    "job_count_summary": (
        "SELECT state, queue, priority, sum(n)::bigint AS n FROM job_counts"
        " GROUP BY state, queue, priority HAVING sum(n) <> 0",
        {},
    ),
    "job_promote_due": (
        "SELECT id FROM jobs WHERE state IN ('scheduled', 'retrying') AND run_at <= now()"
        " ORDER BY run_at LIMIT 1000 FOR UPDATE SKIP LOCKED",
        {},
    ),
    "job_rescue_expired": (
        "SELECT id FROM jobs WHERE state = 'running' AND lease_expires_at < now()"
        " ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED",
        {},
    ),
    "job_cancels_pending": (  # a worker's cancel listener, on every (re)connect
        "SELECT id FROM jobs WHERE state = 'running' AND worker = 'w' AND cancel_requested",
        {},
    ),
    "job_count_running_by_queue": (  # jq queue list, the claim's queue limits
        "SELECT queue, count(*) AS n FROM jobs WHERE state = 'running' GROUP BY queue",
        {},
    ),
    "job_republish_claim": (
        "SELECT id FROM jobs WHERE state = 'queued' AND queue = 'default'"
        " AND published_at < now() - interval '15 seconds'"
        " ORDER BY published_at LIMIT 5000 FOR UPDATE SKIP LOCKED",
        {},
    ),
    "job_prune": (
        "SELECT id FROM jobs WHERE state = 'completed' AND finished_at < now() - interval '7 days'"
        " ORDER BY finished_at LIMIT 1000 FOR UPDATE SKIP LOCKED",
        {},
    ),
    "job_purge_batch_by_type": (
        "SELECT id FROM jobs WHERE state = 'dead' AND job_type = 'type1'"
        " AND finished_at < now() - interval '1 day' ORDER BY finished_at LIMIT 2000",
        {},
    ),
    "job_count_created_per_second": (
        "SELECT id, created_at FROM jobs ORDER BY id DESC LIMIT 1000",
        {},
    ),
}


@pytest.mark.parametrize("name", sorted(DUTY_QUERIES))
def test_no_query_of_the_duty_loop_or_the_dashboards_scans_jobs(big, name):
    _, store, _ = big
    query, params = DUTY_QUERIES[name]
    assert seq_scans_of_jobs(store, query, params) == []
    if os.environ.get("JQ_SCALE_EXPLAIN"):
        with store.conn.transaction(force_rollback=True):
            plan = store.conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {query}", params).fetchall()
        print(f"\n-- {name} at {ROWS} rows\n" + "\n".join(r["QUERY PLAN"] for r in plan))


def test_counts_are_exact_and_cost_a_few_key_lookups_at_a_million_rows(big):
    settings, store, upgrade = big
    exact = {
        r["state"]: r["n"]
        for r in store._all("SELECT state, count(*) AS n FROM jobs GROUP BY state")
    }
    assert store.job_counts()["by_state"] == exact
    assert sum(exact.values()) >= ROWS
    trivial = median_ms(lambda: store._one("SELECT id FROM jobs WHERE id = 12345"))
    scheduler = Scheduler(settings, name="scale", store=store)
    now = int(time.time())
    # The dashboard's submitted-rate walk costs what the window's own submits cost; the window
    # starts after the upgrade's load so that it measures a quiet queue over a big table.
    first = max(now - 120, int(upgrade.ended) + 1)
    costs = {
        "job_counts (jq stats, /metrics, jq top)": median_ms(store.job_counts),
        "job_promote_due": median_ms(lambda: store.job_promote_due(1000)),
        "job_rescue_expired": median_ms(lambda: store.job_rescue_expired(1000)),
        "job_cancels_pending": median_ms(lambda: CancelQueries.job_cancels_pending(store, "w")),
        # Older than any queued job: the walk without the write (a commit costs a WAL flush,
        # whatever the table holds; writes are not what this compares).
        "job_republish_claim": median_ms(
            lambda: store.job_republish_claim("other", 30 * 86400.0, 10)
        ),
        "job_prune": median_ms(lambda: store.job_prune("completed", 7 * 86400.0, 1000)),
        "schedule_due": median_ms(scheduler.cron.run_once),
        "jq top submitted rate": median_ms(
            lambda: job_count_created_per_second(store, first, max(first, now))
        ),
    }
    print(f"key lookup {trivial:.3f} ms;", {k: round(v, 3) for k, v in costs.items()})
    slow = {k: round(v, 2) for k, v in costs.items() if v > RATIO * max(trivial, 0.1)}
    assert not slow, f"key lookup {trivial:.3f} ms; over {RATIO}x: {slow}"


def test_migrations_apply_to_a_million_rows_while_jobs_are_submitted_and_worked(big):
    _, store, upgrade = big
    assert not upgrade.errors
    assert upgrade.applied[0].startswith("004_")
    assert store.schema_version() == latest_version()
    assert upgrade.submits and upgrade.claimed
    # No submit waited on a lock the upgrade held: CONCURRENTLY builds, brief trigger DDL.
    assert max(upgrade.submits) < 1.0, sorted(upgrade.submits)[-5:]
    invalid = store._all(
        "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND NOT i.indisvalid",
        (store.namespace,),
    )
    assert invalid == []


def test_counts_follow_every_kind_of_change(ops, store):
    """The summary is kept in the statements that change jobs: insert, COPY, claim, finish,
    rescue, retry, cancel, prune, purge, and a TRUNCATE."""

    def exact() -> dict[str, int]:
        rows = store._all("SELECT state, count(*) AS n FROM jobs GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    ops.submit("noop", {})
    ops.submit("noop", {}, delay="1h")
    ops.submit_many([{"job_type": "noop", "payload": {"i": i}} for i in range(5)])
    assert store.job_counts()["by_state"] == exact() == {"queued": 6, "scheduled": 1}
    ids = [r["id"] for r in store._all("SELECT id FROM jobs WHERE state = 'queued' ORDER BY id")]
    store.job_claim(ids[:3], "w", 30)
    store._run("UPDATE jobs SET state = 'completed', finished_at = now() WHERE id = %s", (ids[0],))
    store._run("UPDATE jobs SET state = 'dead', finished_at = now() WHERE id = %s", (ids[1],))
    ops.cancel([ids[3]])
    assert store.job_counts()["by_state"] == exact()
    assert ops.retry_matching(state="dead") == 1
    assert ops.purge(state="completed") == 1
    assert store.job_counts()["by_state"] == exact()
    queued = {(q["queue"], q["priority"]): q["n"] for q in store.job_counts()["queued"]}
    assert sum(queued.values()) == exact()["queued"]
    store._run("TRUNCATE jobs CASCADE")
    assert store.job_counts()["by_state"] == {}
