"""The insert path for jobs that need more than the plain one: jobs enqueued in an application's
own connection and transaction, unique jobs, jobs that depend on others, jobs carrying a trace
context. Every query names the namespace's schema, because an application's connection has its
own search_path. The routine is written once, as a generator of steps that does no I/O
(enqueue_steps: each step a statement, answered with its rows); two small runners drive it, one
on a sync connection and one on an async connection, so both kinds of client insert by the same
rules. The plain submit (Store.job_insert) runs the same steps outside a transaction.

In an application's transaction nothing here commits: the statements run inside a savepoint of
that transaction (so that a refused insert leaves the application's transaction usable), and the
jobs it queued go to the outbox with a NOTIFY that PostgreSQL delivers only on commit. On a
connection in autocommit mode the statements run in a transaction of their own.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import psycopg
from psycopg import pq, sql
from psycopg.rows import dict_row

from jq_cli.errors import InvalidInput
from jq_cli.store.base import translate
from jq_cli.store.keys import JOB_BY_KEY, by_key_params, check_same_request
from jq_cli.store.records import Inserted, NewJob

Links = Sequence[Sequence[int]]  # per job, the indexes (in the same batch) of its parents


def notify_channel(namespace: str) -> str:
    """The channel the doorbell listens on (the trigger of sql/021 builds the same name)."""
    return f"{namespace}_enqueued"


@lru_cache(maxsize=256)
def _q(namespace: str, text: str) -> sql.Composed:
    return sql.SQL(text).format(ns=sql.Identifier(namespace))


# query: job_unique_lock. Submits of one unique key wait for each other until the first one's
# transaction ends, so the second sees the first job (READ COMMITTED reads anew per statement).
UNIQUE_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%(lock)s, 0))"
# query: job_unique_find
UNIQUE_FIND = """
    SELECT id, state, queue, priority FROM {ns}.jobs
    WHERE unique_key = %(key)s AND unique_until > now() ORDER BY id DESC LIMIT 1
"""
# query: job_parents_lock. FOR UPDATE: a parent's finish waits for this transaction, so it either
# sees the dependency row (and counts the child down) or completed before we counted it.
PARENTS_LOCK = """
    SELECT id, state, result, workflow_id FROM {ns}.jobs WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE
"""
# query: job_insert_full. `state` is given for a dependant (waiting, cancelled, or NULL when its
# parents are done); otherwise the due time decides, as on the plain path.
INSERT = """
    WITH t AS (
        SELECT coalesce(%(run_at)s::timestamptz,
                        now() + make_interval(secs => coalesce(%(delay)s::float8, 0))) AS due
    ), s AS (
        SELECT t.due, coalesce(%(state)s::text,
                               CASE WHEN t.due > now() THEN 'scheduled' ELSE 'queued' END) AS state
        FROM t
    )
    INSERT INTO {ns}.jobs (job_type, queue, priority, state, payload, max_retries, run_at,
                           idempotency_key, retry_base_delay, retry_max_delay, retry_jitter,
                           published_at, unique_key, unique_until, trace_context, pending_parents,
                           on_parent_failure, settled_by_parent, workflow_id, parent_results,
                           last_error, finished_at, time_limit)
    SELECT %(job_type)s, %(queue)s, %(priority)s, s.state, %(payload)s::jsonb, %(max_retries)s,
           s.due, %(key)s, %(base)s, %(max)s, %(jitter)s,
           CASE WHEN s.state = 'queued' THEN now() END,
           %(unique_key)s,
           CASE WHEN %(unique_for)s::float8 IS NULL THEN NULL
                ELSE now() + make_interval(secs => %(unique_for)s::float8) END,
           %(trace)s::jsonb, %(pending)s, %(policy)s, %(settled)s, %(workflow)s,
           %(parent_results)s::jsonb, %(error)s,
           CASE WHEN s.state = 'cancelled' THEN now() END, %(time_limit)s
    FROM s
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, state, queue, priority
"""
# query: job_dependency_insert. A parent already settled for the child's policy (its parents are
# locked: PARENTS_LOCK) is marked so, and its later end counts nothing (sql/043).
DEPENDENCY_INSERT = """
    WITH d AS (
        INSERT INTO {ns}.job_dependencies (parent_id, child_id, position, settled)
        SELECT u.p, %(child)s, u.n - 1,
               j.state = 'completed' OR (%(policy)s = 'run' AND j.state IN ('dead', 'cancelled'))
        FROM unnest(%(parents)s::bigint[]) WITH ORDINALITY AS u(p, n)
        JOIN {ns}.jobs j ON j.id = u.p
        ON CONFLICT DO NOTHING
    )
    UPDATE {ns}.jobs SET has_dependants = true WHERE id = ANY(%(parents)s) AND NOT has_dependants
"""
# query: job_outbox_insert
OUTBOX_INSERT = "INSERT INTO {ns}.job_outbox (job_id) SELECT unnest(%(ids)s::bigint[])"
NOTIFY = "SELECT pg_notify(%(channel)s, '')"


@dataclass
class _Plan:
    """What one job's insert needs besides the NewJob: its resolved parents and their verdict."""

    state: str | None = None
    pending: int = 0
    settled: bool = False
    error: str | None = None
    workflow: int | None = None
    parent_results: str | None = None


def _plan(job: NewJob, parents: list[int], rows: list[dict[str, Any]]) -> _Plan:
    """The state a dependant starts in, from its locked parents. Raises InvalidInput."""
    import json

    found = {r["id"]: r for r in rows}
    missing = [p for p in parents if p not in found]
    if missing:
        raise InvalidInput(f"depends on job {missing[0]}, which does not exist")
    plan = _Plan(workflow=min(found[p]["workflow_id"] or p for p in parents))
    failed = [p for p in parents if found[p]["state"] in ("dead", "cancelled")]
    if failed and job.on_parent_failure == "cancel":
        plan.state, plan.settled = "cancelled", True
        plan.error = f"parent job {failed[0]} ended {found[failed[0]]['state']}"
        return plan
    done = ("completed", "dead", "cancelled") if job.on_parent_failure == "run" else ("completed",)
    plan.pending = sum(1 for p in parents if found[p]["state"] not in done)
    if plan.pending:
        plan.state = "waiting"
    else:
        plan.parent_results = json.dumps(
            [{"id": p, "result": found[p]["result"]} for p in parents], default=str
        )
    return plan


def _params(job: NewJob, plan: _Plan) -> dict[str, Any]:
    return {
        "run_at": job.run_at,
        "delay": job.delay,
        "state": plan.state,
        "job_type": job.job_type,
        "queue": job.queue,
        "priority": job.priority,
        "payload": job.payload_json,
        "max_retries": job.max_retries,
        "key": job.idempotency_key,
        "base": job.retry_base_delay,
        "max": job.retry_max_delay,
        "jitter": job.retry_jitter,
        "unique_key": job.unique_key,
        "unique_for": job.unique_for if job.unique_key else None,
        "trace": job.trace_context,
        "pending": plan.pending,
        "policy": job.on_parent_failure,
        "settled": plan.settled,
        "workflow": plan.workflow,
        "parent_results": plan.parent_results,
        "error": plan.error,
        "time_limit": job.time_limit,
    }


def _inserted(row: dict[str, Any], created: bool) -> Inserted:
    return Inserted(row["id"], row["state"], row["queue"], row["priority"], created)


def _parents_of(
    i: int, job: NewJob, links: Links | None, done: Sequence[Inserted | None]
) -> list[int]:
    parents = list(job.depends_on)
    for index in links[i] if links else ():
        earlier = done[index] if 0 <= index < i else None
        if earlier is None:
            raise ValueError(f"job {i} links to job {index}, which is not an earlier one")
        parents.append(earlier.id)
    return list(dict.fromkeys(parents))  # in order, once each


Fetch = Literal["one", "all", "none"]


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of the routine and what it answers with: a row, all rows, or nothing."""

    query: sql.Composed | str
    params: dict[str, Any]
    fetch: Fetch = "one"


Steps = Generator[Step, Any, list[Inserted]]
# Times a job is inserted again when the job its idempotency key named was purged between the
# insert that met the key and the read of that job.
KEY_RACE_TRIES = 3


def _insert_steps(namespace: str, job: NewJob, plan: _Plan) -> Generator[Step, Any, Inserted]:
    """Insert one job; an idempotency key that exists returns its job when the request is the same
    (store/keys.py), else raises Conflict."""
    for _ in range(KEY_RACE_TRIES):
        row = yield Step(_q(namespace, INSERT), _params(job, plan))
        if row is not None:
            return _inserted(row, True)
        existing = yield Step(_q(namespace, JOB_BY_KEY), by_key_params(job))
        if existing is not None:
            return check_same_request(job, existing)
    raise InvalidInput("an idempotency key's job vanished; submit again")


def enqueue_steps(
    namespace: str, jobs: Sequence[NewJob], *, links: Links | None = None, outbox: bool = False
) -> Steps:
    """The insert of `jobs` (unique keys, parents, idempotency keys, the outbox) as steps; returns
    one Inserted per job, in order. Raises InvalidInput (a parent that does not exist), Conflict
    (an idempotency key reused for another request)."""
    done: list[Inserted] = []
    by_unique: dict[str, Inserted] = {}
    root: int | None = None  # the workflow of a linked batch: its first job's
    for i, job in enumerate(jobs):
        found: Inserted | None = None
        plan = _Plan()
        if job.unique_key:
            found = by_unique.get(job.unique_key)
            if found is None:
                lock = f"{namespace}:unique:{job.unique_key}"
                yield Step(UNIQUE_LOCK, {"lock": lock}, "none")
                row = yield Step(_q(namespace, UNIQUE_FIND), {"key": job.unique_key})
                found = _inserted(row, False) if row else None
        if found is None:
            parents = _parents_of(i, job, links, done)
            if parents:
                rows = yield Step(_q(namespace, PARENTS_LOCK), {"ids": parents}, "all")
                plan = _plan(job, parents, rows)
            if links is not None and done:
                plan.workflow = root  # one workflow: the first job's
            found = yield from _insert_steps(namespace, job, plan)
            if found.created and parents:
                yield Step(
                    _q(namespace, DEPENDENCY_INSERT),
                    {"child": found.id, "parents": parents, "policy": job.on_parent_failure},
                    "none",
                )
        if job.unique_key:
            by_unique[job.unique_key] = found
        if not done:
            root = plan.workflow or found.id
        done.append(found)
    queued = [d.id for d in done if d.created and d.state == "queued"]
    if outbox and queued:
        yield Step(_q(namespace, OUTBOX_INSERT), {"ids": queued}, "none")
        yield Step(NOTIFY, {"channel": notify_channel(namespace)}, "none")
    return done


def run_steps(cur: psycopg.Cursor[Any], steps: Steps) -> list[Inserted]:
    """Drive `steps` on a sync cursor (rows as dicts)."""
    try:
        step = next(steps)
        while True:
            cur.execute(step.query, step.params)
            answer: Any = None
            if step.fetch == "one":
                answer = cur.fetchone()
            elif step.fetch == "all":
                answer = cur.fetchall()
            step = steps.send(answer)
    except StopIteration as end:
        result: list[Inserted] = end.value
        return result


async def run_steps_async(cur: psycopg.AsyncCursor[Any], steps: Steps) -> list[Inserted]:
    """Drive `steps` on an async cursor (rows as dicts): run_steps, awaited."""
    try:
        step = next(steps)
        while True:
            await cur.execute(step.query, step.params)
            answer: Any = None
            if step.fetch == "one":
                answer = await cur.fetchone()
            elif step.fetch == "all":
                answer = await cur.fetchall()
            step = steps.send(answer)
    except StopIteration as end:
        result: list[Inserted] = end.value
        return result


def _dsn(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> str:
    # info.dsn leaves the password out: safe to name in an error.
    return conn.info.dsn


@contextmanager
def _translated(dsn: str, namespace: str) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc, dsn, namespace) from exc


def job_enqueue(
    conn: psycopg.Connection[Any],
    namespace: str,
    jobs: Sequence[NewJob],
    *,
    links: Links | None = None,
    outbox: bool,
) -> list[Inserted]:
    """Insert `jobs` (with their unique keys, parents and trace contexts) through `conn` in one
    transaction (a savepoint of the application's); returns one Inserted per job, in order. With
    `outbox`, the queued ones are left for the doorbell to publish after the commit (the caller's
    transaction); without, the caller publishes them. Raises InvalidInput (a parent that does not
    exist), Conflict, ServiceUnavailable, StoreError."""
    with _translated(_dsn(conn), namespace):
        if not conn.autocommit and conn.info.transaction_status == pq.TransactionStatus.IDLE:
            conn.execute("SELECT 1")  # open the application's transaction, as its next query would
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            return run_steps(cur, enqueue_steps(namespace, jobs, links=links, outbox=outbox))


async def job_enqueue_async(
    conn: psycopg.AsyncConnection[Any],
    namespace: str,
    jobs: Sequence[NewJob],
    *,
    links: Links | None = None,
    outbox: bool,
) -> list[Inserted]:
    """job_enqueue on an async connection: the same steps, awaited."""
    with _translated(_dsn(conn), namespace):
        if not conn.autocommit and conn.info.transaction_status == pq.TransactionStatus.IDLE:
            await conn.execute("SELECT 1")
        async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            steps = enqueue_steps(namespace, jobs, links=links, outbox=outbox)
            return await run_steps_async(cur, steps)
