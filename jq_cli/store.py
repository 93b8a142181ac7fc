"""All SQL of jq: the one module that speaks to PostgreSQL, and the only owner of job state.

Queries are named noun_verb and commented with why. Every state change is a conditional
UPDATE (DESIGN invariant 2); every time comparison uses the database's now() (invariant 4).
Driver errors are translated here, once, into jq's error tree.
"""
from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from jq_cli.errors import NotFound, SchemaNotMigrated, ServiceUnavailable

SERVICE = "PostgreSQL"
MIGRATION_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class NewJob:
    """A validated job ready to insert (see jq_cli.jobspec for the validation)."""

    job_type: str
    payload_json: str
    queue: str
    priority: int
    max_retries: int
    delay: float | None = None
    run_at: datetime | None = None
    idempotency_key: str | None = None
    retry_base_delay: float | None = None
    retry_max_delay: float | None = None
    retry_jitter: float | None = None


@dataclass(frozen=True)
class Inserted:
    id: int
    state: str
    queue: str
    priority: int
    created: bool  # False when an idempotency key matched an existing job


@dataclass(frozen=True)
class Finish:
    """The outcome of one attempt, as a worker reports it."""

    job_id: int
    run: int  # the attempt number (run_count) the worker claimed
    outcome: str  # completed | failed | cancelled
    result_json: str | None = None
    error: str | None = None
    traceback: str | None = None
    # Seconds until the retry when the failure may be retried; None means the job is dead.
    retry_in: float | None = None


def migrations_dir() -> Path:
    """sql/ inside the installed wheel, or beside the package in a source checkout."""
    packaged = resources.files("jq_cli") / "sql"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "sql"


def available_migrations() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(migrations_dir().glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path.stem, path))
    return found


def latest_version() -> int:
    migrations = available_migrations()
    return migrations[-1][0] if migrations else 0


def _database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


class Store:
    """One PostgreSQL connection (autocommit; explicit transactions where several statements
    must commit together). Not thread-safe: each thread that needs SQL owns a Store."""

    def __init__(self, url: str, namespace: str, *, application_name: str = "jq", connect_timeout: float = 5.0):
        self.url = url
        self.namespace = namespace
        self.application_name = application_name
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection | None = None

    # -- connection ---------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=max(1, int(self.connect_timeout)),
                application_name=self.application_name,
                # Every table lives in the namespace's schema, so SQL stays unqualified and test
                # runs in their own namespaces never see each other's rows.
                options=f"-c search_path={self.namespace}",
            )
        except psycopg.OperationalError as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "does not exist" in detail and "database" in detail:
                raise SchemaNotMigrated(
                    f"{SERVICE} database {_database_name(self.url)!r} does not exist: run `jq db migrate`"
                ) from None
            raise ServiceUnavailable(SERVICE, self.url, detail) from None
        return conn

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def has_session(self) -> bool:
        """True while the connection (and so its session-level advisory locks) is open."""
        return self._conn is not None and not self._conn.closed

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate driver errors into ours; drop a broken connection so the next call reconnects."""
        try:
            yield
        except psycopg.errors.UndefinedTable:
            raise SchemaNotMigrated(
                f"the jq schema {self.namespace!r} is missing in {_database_name(self.url)!r}: run `jq db migrate`"
            ) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ServiceUnavailable(SERVICE, self.url, detail) from None

    def _all(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        with self._errors():
            return self.conn.execute(query, params).fetchall()

    def _one(self, query: str, params: Any = None) -> dict[str, Any] | None:
        with self._errors():
            return self.conn.execute(query, params).fetchone()

    def _run(self, query: str, params: Any = None) -> int:
        with self._errors():
            return self.conn.execute(query, params).rowcount

    # -- schema -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The applied migration version, 0 for none. Raises ServiceUnavailable."""
        try:
            row = self._one(
                "SELECT coalesce(max(version), 0) AS v FROM schema_migrations"  # query: schema_version
            )
        except SchemaNotMigrated:
            return 0
        return int(row["v"]) if row else 0

    def require_schema(self) -> None:
        """Raise SchemaNotMigrated unless every migration this code knows has been applied."""
        have, want = self.schema_version(), latest_version()
        if have < want:
            raise SchemaNotMigrated(
                f"the database schema is at version {have}, this jq needs {want}: run `jq db migrate`"
            )

    def ensure_database(self) -> bool:
        """Create the database named in the URL when it is missing (trust-auth fresh machines).
        Returns True when it was created."""
        parts = urlsplit(self.url)
        name = _database_name(self.url)
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))) as admin:
                exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
                if exists:
                    return False
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                return True
        except psycopg.errors.DuplicateDatabase:
            return False
        except psycopg.OperationalError as exc:
            raise ServiceUnavailable(SERVICE, self.url, str(exc).strip().splitlines()[0]) from None

    def migrate(self) -> list[str]:
        """Apply pending migrations in order, each in its own transaction. Returns their names.
        A migration lock makes two concurrent `jq db migrate` runs safe."""
        applied: list[str] = []
        schema = sql.Identifier(self.namespace)
        with self._errors():
            conn = self.conn
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.namespace}:migrate",))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                        " version integer PRIMARY KEY, name text NOT NULL,"
                        " applied_at timestamptz NOT NULL DEFAULT now())"
                    ).format(schema)
                )
            for version, name, path in available_migrations():
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.namespace}:migrate",))
                    done = conn.execute(
                        "SELECT 1 FROM schema_migrations WHERE version = %s", (version,)
                    ).fetchone()
                    if done:
                        continue
                    conn.execute(path.read_text(encoding="utf-8"))
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
                    applied.append(name)
        return applied

    def drop_namespace(self) -> None:
        """Drop the namespace's schema and everything in it (tests clean up with this)."""
        with self._errors():
            self.conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.namespace)))

    # -- submit -------------------------------------------------------------------------------

    def job_insert(self, job: NewJob) -> Inserted:
        """Insert one job (one round trip); an idempotency key that exists returns that job."""
        row = self._one(
            # query: job_insert. A job due now is queued and counted as published at once; a
            # delayed one waits as scheduled until the scheduler promotes it.
            """
            WITH t AS (
                SELECT coalesce(%(run_at)s::timestamptz,
                                now() + make_interval(secs => coalesce(%(delay)s::float8, 0))) AS due
            )
            INSERT INTO jobs (job_type, queue, priority, state, payload, max_retries, run_at,
                              idempotency_key, retry_base_delay, retry_max_delay, retry_jitter, published_at)
            SELECT %(job_type)s, %(queue)s, %(priority)s,
                   CASE WHEN t.due > now() THEN 'scheduled' ELSE 'queued' END,
                   %(payload)s::jsonb, %(max_retries)s, t.due, %(key)s,
                   %(base)s, %(max)s, %(jitter)s,
                   CASE WHEN t.due > now() THEN NULL ELSE now() END
            FROM t
            ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING id, state, queue, priority
            """,
            {
                "run_at": job.run_at, "delay": job.delay, "job_type": job.job_type, "queue": job.queue,
                "priority": job.priority, "payload": job.payload_json, "max_retries": job.max_retries,
                "key": job.idempotency_key, "base": job.retry_base_delay, "max": job.retry_max_delay,
                "jitter": job.retry_jitter,
            },
        )
        if row is not None:
            return Inserted(row["id"], row["state"], row["queue"], row["priority"], True)
        existing = self._one(
            "SELECT id, state, queue, priority FROM jobs WHERE idempotency_key = %s",  # query: job_by_key
            (job.idempotency_key,),
        )
        if existing is None:  # the first job was purged between the two statements
            return self.job_insert(job)
        return Inserted(existing["id"], existing["state"], existing["queue"], existing["priority"], False)

    def job_insert_many(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        """Insert many jobs in one statement and one transaction: all of them or none.
        Returns one Inserted per input, in input order."""
        if not jobs:
            return []
        if all(j.idempotency_key is None and j.delay is None and j.run_at is None for j in jobs):
            return self._job_copy_many(jobs)
        cols = {
            "job_type": [j.job_type for j in jobs], "queue": [j.queue for j in jobs],
            "priority": [j.priority for j in jobs], "payload": [j.payload_json for j in jobs],
            "max_retries": [j.max_retries for j in jobs], "delay": [j.delay for j in jobs],
            "run_at": [j.run_at for j in jobs], "key": [j.idempotency_key for j in jobs],
            "base": [j.retry_base_delay for j in jobs], "max": [j.retry_max_delay for j in jobs],
            "jitter": [j.retry_jitter for j in jobs],
        }
        with self._errors(), self.conn.transaction():
            rows = self.conn.execute(
                # query: job_insert_many. Rows go in input order (ORDER BY ord), so the identity
                # values they draw ascend with it and map back to the inputs.
                """
                INSERT INTO jobs (job_type, queue, priority, state, payload, max_retries, run_at,
                                  idempotency_key, retry_base_delay, retry_max_delay, retry_jitter, published_at)
                SELECT job_type, queue, priority,
                       CASE WHEN due > now() THEN 'scheduled' ELSE 'queued' END,
                       payload::jsonb, max_retries, due, key, base, max, jitter,
                       CASE WHEN due > now() THEN NULL ELSE now() END
                FROM (
                    SELECT u.*, coalesce(u.run_at, now() + make_interval(secs => coalesce(u.delay, 0))) AS due
                    FROM unnest(%(job_type)s::text[], %(queue)s::text[], %(priority)s::int2[],
                                %(payload)s::text[], %(max_retries)s::int[], %(delay)s::float8[],
                                %(run_at)s::timestamptz[], %(key)s::text[], %(base)s::float8[],
                                %(max)s::float8[], %(jitter)s::float8[])
                         WITH ORDINALITY AS u(job_type, queue, priority, payload, max_retries, delay,
                                              run_at, key, base, max, jitter, ord)
                    ORDER BY u.ord
                ) t
                ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING id, state, queue, priority, idempotency_key
                """,
                cols,
            ).fetchall()
            by_key = {r["idempotency_key"]: r for r in rows if r["idempotency_key"] is not None}
            missing = sorted({j.idempotency_key for j in jobs if j.idempotency_key and j.idempotency_key not in by_key})
            existing = {}
            if missing:
                existing = {
                    r["idempotency_key"]: r
                    for r in self.conn.execute(
                        "SELECT id, state, queue, priority, idempotency_key FROM jobs WHERE idempotency_key = ANY(%s)",
                        (missing,),
                    )
                }
        unkeyed = iter(sorted((r for r in rows if r["idempotency_key"] is None), key=lambda r: r["id"]))
        out: list[Inserted] = []
        seen_keys: set[str] = set()
        for job in jobs:
            if job.idempotency_key is None:
                r = next(unkeyed)
                out.append(Inserted(r["id"], r["state"], r["queue"], r["priority"], True))
            elif job.idempotency_key in by_key:
                r = by_key[job.idempotency_key]
                created = job.idempotency_key not in seen_keys
                seen_keys.add(job.idempotency_key)
                out.append(Inserted(r["id"], r["state"], r["queue"], r["priority"], created))
            else:
                r = existing[job.idempotency_key]
                out.append(Inserted(r["id"], r["state"], r["queue"], r["priority"], False))
        return out

    def _job_copy_many(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        """The bulk fast path for jobs due now with no idempotency key: ids drawn from the sequence
        in one statement, rows streamed with COPY (several times faster than a parameterised
        INSERT for thousands of rows); run_at and published_at take their default, now()."""
        with self._errors(), self.conn.transaction():
            ids = [r["id"] for r in self.conn.execute(
                # query: job_id_reserve
                "SELECT nextval(pg_get_serial_sequence('jobs', 'id')) AS id FROM generate_series(1, %s)",
                (len(jobs),),
            )]
            with self.conn.cursor().copy(
                # query: job_copy
                "COPY jobs (id, job_type, queue, priority, state, payload, max_retries,"
                " retry_base_delay, retry_max_delay, retry_jitter) FROM STDIN"
            ) as copy:
                for job_id, j in zip(ids, jobs):
                    copy.write_row((job_id, j.job_type, j.queue, j.priority, "queued", j.payload_json,
                                    j.max_retries, j.retry_base_delay, j.retry_max_delay, j.retry_jitter))
        return [Inserted(job_id, "queued", j.queue, j.priority, True) for job_id, j in zip(ids, jobs)]

    # -- read ---------------------------------------------------------------------------------

    def job_get(self, job_id: int) -> dict[str, Any]:
        """The job with its attempts, oldest first. Raises NotFound."""
        job = self._one("SELECT * FROM jobs WHERE id = %s", (job_id,))  # query: job_get
        if job is None:
            raise NotFound(f"job {job_id} not found")
        job["attempt_history"] = self._all(
            "SELECT * FROM attempts WHERE job_id = %s ORDER BY number",  # query: attempt_list
            (job_id,),
        )
        return job

    def job_states(self, ids: Sequence[int]) -> dict[int, str]:
        rows = self._all("SELECT id, state FROM jobs WHERE id = ANY(%s)", (list(ids),))  # query: job_states
        return {r["id"]: r["state"] for r in rows}

    def job_list(
        self,
        *,
        states: Sequence[str] | None = None,
        job_type: str | None = None,
        priority: int | None = None,
        queue: str | None = None,
        since_seconds: float | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first, filtered; `before_id` pages through older rows."""
        where, params = ["true"], {}
        if states:
            where.append("state = ANY(%(states)s)")
            params["states"] = list(states)
        if job_type:
            where.append("job_type = %(job_type)s")
            params["job_type"] = job_type
        if priority is not None:
            where.append("priority = %(priority)s")
            params["priority"] = priority
        if queue:
            where.append("queue = %(queue)s")
            params["queue"] = queue
        if since_seconds is not None:
            where.append("created_at >= now() - make_interval(secs => %(since)s)")
            params["since"] = since_seconds
        if before_id is not None:
            where.append("id < %(before)s")
            params["before"] = before_id
        params["limit"] = limit
        query = (
            "SELECT id, job_type, queue, priority, state, attempts, max_retries, progress, last_error,"
            " run_at, created_at, started_at, finished_at, worker"
            f" FROM jobs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %(limit)s"  # query: job_list
        )
        return self._all(query, params)

    def job_counts(self) -> dict[str, Any]:
        """Counts by state, and queued counts by priority and by queue."""
        by_state = {r["state"]: r["n"] for r in self._all(
            "SELECT state, count(*) AS n FROM jobs GROUP BY state"  # query: job_count_by_state
        )}
        queued = self._all(
            # query: job_count_queued. The partial index jobs_queued keeps this cheap.
            "SELECT queue, priority, count(*) AS n FROM jobs WHERE state = 'queued' GROUP BY queue, priority"
        )
        return {"by_state": by_state, "queued": queued}

    # -- worker: claim, finish, lease ---------------------------------------------------------

    def job_claim(self, ids: Sequence[int], worker: str, lease_ttl: float) -> list[dict[str, Any]]:
        """Claim the queued jobs among `ids` for `worker` in one statement, opening an attempt for
        each. Jobs in any other state are left alone: that is how duplicates lose."""
        return self._all(
            # query: job_claim. A concurrent claim of the same row waits for the first one's commit,
            # then re-checks state = 'queued' and finds it running: exactly one claim wins.
            """
            WITH claimed AS (
                UPDATE jobs
                SET state = 'running', attempts = attempts + 1, run_count = run_count + 1,
                    worker = %(worker)s, started_at = now(), updated_at = now(),
                    lease_expires_at = now() + make_interval(secs => %(ttl)s),
                    progress = NULL, progress_message = NULL
                WHERE id = ANY(%(ids)s) AND state = 'queued'
                RETURNING id, job_type, queue, priority, payload, attempts, run_count, max_retries,
                          retry_base_delay, retry_max_delay, retry_jitter, cancel_requested,
                          extract(epoch FROM now() - run_at)::float8 AS waited
            ), opened AS (
                INSERT INTO attempts (job_id, number, worker)
                SELECT id, run_count, %(worker)s FROM claimed
            )
            SELECT * FROM claimed
            """,
            {"ids": list(ids), "worker": worker, "ttl": lease_ttl},
        )

    def job_finish(self, finishes: Sequence[Finish], worker: str) -> dict[int, str]:
        """Record many attempt outcomes in one statement (group commit). Only jobs still running
        this very attempt change; returns {job id: new state} for those."""
        if not finishes:
            return {}
        rows = self._all(
            # query: job_finish. A cancel request turns a failure into cancelled (never retried);
            # a completed handler's result stands even if a cancel arrived late.
            """
            WITH o AS (
                SELECT * FROM unnest(%(ids)s::bigint[], %(runs)s::int[], %(outcomes)s::text[],
                                     %(results)s::text[], %(errors)s::text[], %(tracebacks)s::text[],
                                     %(retry_in)s::float8[])
                         AS o(id, run, outcome, result, error, tb, retry_in)
            ), j AS (
                UPDATE jobs SET
                    state = CASE
                        WHEN o.outcome = 'completed' THEN 'completed'
                        WHEN o.outcome = 'cancelled' OR jobs.cancel_requested THEN 'cancelled'
                        WHEN o.retry_in IS NOT NULL THEN 'retrying'
                        ELSE 'dead' END,
                    result = CASE WHEN o.outcome = 'completed' THEN o.result::jsonb ELSE jobs.result END,
                    last_error = CASE WHEN o.outcome = 'completed' THEN jobs.last_error ELSE o.error END,
                    progress = CASE WHEN o.outcome = 'completed' THEN 100 ELSE jobs.progress END,
                    run_at = CASE WHEN o.outcome = 'failed' AND o.retry_in IS NOT NULL AND NOT jobs.cancel_requested
                                  THEN now() + make_interval(secs => o.retry_in) ELSE jobs.run_at END,
                    finished_at = CASE WHEN o.outcome <> 'failed' OR o.retry_in IS NULL OR jobs.cancel_requested
                                       THEN now() END,
                    worker = NULL, lease_expires_at = NULL, updated_at = now()
                FROM o
                WHERE jobs.id = o.id AND jobs.state = 'running' AND jobs.run_count = o.run
                  AND jobs.worker = %(worker)s
                RETURNING jobs.id, jobs.state
            ), a AS (
                UPDATE attempts SET finished_at = now(), outcome = o.outcome, error = o.error, traceback = o.tb
                FROM o
                WHERE attempts.job_id = o.id AND attempts.number = o.run AND attempts.outcome = 'running'
            )
            SELECT id, state FROM j
            """,
            {
                "ids": [f.job_id for f in finishes], "runs": [f.run for f in finishes],
                "outcomes": [f.outcome for f in finishes], "results": [f.result_json for f in finishes],
                "errors": [f.error for f in finishes], "tracebacks": [f.traceback for f in finishes],
                "retry_in": [f.retry_in for f in finishes], "worker": worker,
            },
        )
        return {r["id"]: r["state"] for r in rows}

    def job_lease_renew(self, ids: Sequence[int], worker: str, lease_ttl: float) -> dict[int, bool]:
        """Extend the leases of this worker's running jobs. Returns {id: cancel_requested} for the
        jobs still ours; a job missing from it was rescued while we were cut off."""
        if not ids:
            return {}
        rows = self._all(
            # query: job_lease_renew
            """
            UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %(ttl)s)
            WHERE id = ANY(%(ids)s) AND state = 'running' AND worker = %(worker)s
            RETURNING id, cancel_requested
            """,
            {"ids": list(ids), "worker": worker, "ttl": lease_ttl},
        )
        return {r["id"]: r["cancel_requested"] for r in rows}

    def job_progress(self, updates: dict[int, tuple[float, str | None]], worker: str) -> None:
        """Store the latest progress of running jobs (coalesced by the worker, one statement)."""
        if not updates:
            return
        ids = list(updates)
        self._run(
            # query: job_progress
            """
            UPDATE jobs SET progress = u.pct, progress_message = u.msg, updated_at = now()
            FROM unnest(%(ids)s::bigint[], %(pct)s::real[], %(msg)s::text[]) AS u(id, pct, msg)
            WHERE jobs.id = u.id AND jobs.state = 'running' AND jobs.worker = %(worker)s
            """,
            {"ids": ids, "pct": [updates[i][0] for i in ids], "msg": [updates[i][1] for i in ids], "worker": worker},
        )

    def job_hand_back(self, ids: Sequence[int], worker: str) -> list[dict[str, Any]]:
        """Return running jobs to the queue at shutdown. The interrupted attempt is kept in the
        history but gives its retry back. Returns the jobs queued again, to publish."""
        if not ids:
            return []
        return self._all(
            # query: job_hand_back
            """
            WITH j AS (
                UPDATE jobs SET
                    state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                    attempts = CASE WHEN cancel_requested THEN attempts ELSE attempts - 1 END,
                    finished_at = CASE WHEN cancel_requested THEN now() END,
                    published_at = now(), worker = NULL, lease_expires_at = NULL, updated_at = now()
                WHERE id = ANY(%(ids)s) AND state = 'running' AND worker = %(worker)s
                RETURNING id, state, queue, priority, run_count
            ), a AS (
                UPDATE attempts SET finished_at = now(), outcome = 'interrupted',
                                    error = 'worker shut down before the job finished'
                FROM j WHERE attempts.job_id = j.id AND attempts.number = j.run_count
                         AND attempts.outcome = 'running'
            )
            SELECT id, state, queue, priority FROM j
            """,
            {"ids": list(ids), "worker": worker},
        )

    def job_type_register(self, names: Sequence[str], worker: str) -> None:
        self._run(
            # query: job_type_register
            """
            INSERT INTO job_types (name, registered_by) SELECT unnest(%(names)s::text[]), %(worker)s
            ON CONFLICT (name) DO UPDATE SET registered_by = excluded.registered_by, updated_at = now()
            """,
            {"names": list(names), "worker": worker},
        )

    def job_type_exists(self, name: str) -> bool:
        return self._one("SELECT 1 AS x FROM job_types WHERE name = %s", (name,)) is not None

    # -- scheduler ----------------------------------------------------------------------------

    def leader_try_lock(self) -> bool:
        """Take (or keep) the scheduler leader lock: a session advisory lock that dies with the
        connection, so a crashed leader frees it at once."""
        row = self._one("SELECT pg_try_advisory_lock(hashtext(%s)) AS ok", (f"{self.namespace}:scheduler",))
        return bool(row and row["ok"])

    def leader_unlock(self) -> None:
        self._one("SELECT pg_advisory_unlock(hashtext(%s)) AS ok", (f"{self.namespace}:scheduler",))

    def job_promote_due(self, limit: int) -> list[dict[str, Any]]:
        """Move scheduled and retrying jobs whose run_at has come to queued. Returns them, to publish."""
        return self._all(
            # query: job_promote_due. SKIP LOCKED lets a slow worker's UPDATE of one row not stall the
            # scheduler; the due time is the database's clock.
            """
            WITH due AS (
                SELECT id FROM jobs
                WHERE state IN ('scheduled', 'retrying') AND run_at <= now()
                ORDER BY run_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
            )
            UPDATE jobs SET state = 'queued', published_at = now(), updated_at = now()
            FROM due WHERE jobs.id = due.id AND jobs.state IN ('scheduled', 'retrying')
            RETURNING jobs.id, jobs.queue, jobs.priority
            """,
            {"limit": limit},
        )

    def job_rescue_expired(self, limit: int) -> list[dict[str, Any]]:
        """Take back running jobs whose lease expired (their worker died or was cut off). The lost
        attempt counts, so a job that kills its worker every time ends dead instead of looping."""
        return self._all(
            # query: job_rescue_expired
            """
            WITH expired AS (
                SELECT id FROM jobs
                WHERE state = 'running' AND lease_expires_at < now()
                ORDER BY lease_expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
            ), j AS (
                UPDATE jobs SET
                    state = CASE WHEN cancel_requested THEN 'cancelled'
                                 WHEN attempts > max_retries THEN 'dead' ELSE 'queued' END,
                    last_error = 'worker ' || coalesce(worker, '?') || ' lost its lease (it died or was cut off)',
                    finished_at = CASE WHEN cancel_requested OR attempts > max_retries THEN now() END,
                    published_at = now(), worker = NULL, lease_expires_at = NULL, updated_at = now()
                FROM expired WHERE jobs.id = expired.id AND jobs.state = 'running'
                RETURNING jobs.id, jobs.state, jobs.queue, jobs.priority, jobs.run_count
            ), a AS (
                UPDATE attempts SET finished_at = now(), outcome = 'lost',
                                    error = 'lease expired: the worker died or was cut off'
                FROM j WHERE attempts.job_id = j.id AND attempts.number = j.run_count
                         AND attempts.outcome = 'running'
            )
            SELECT id, state, queue, priority FROM j
            """,
            {"limit": limit},
        )

    def job_count_unpublished(self, older_than: float) -> dict[str, int]:
        """Per queue, how many jobs have stayed queued longer than `older_than` seconds since
        their last publish."""
        rows = self._all(
            # query: job_count_unpublished
            """
            SELECT queue, count(*) AS n FROM jobs
            WHERE state = 'queued' AND published_at < now() - make_interval(secs => %(age)s)
            GROUP BY queue
            """,
            {"age": older_than},
        )
        return {r["queue"]: r["n"] for r in rows}

    def job_republish_claim(self, queue: str, older_than: float, limit: int) -> list[dict[str, Any]]:
        """Pick up to `limit` long-queued jobs of a queue and stamp them published now."""
        return self._all(
            # query: job_republish_claim. Highest priority and oldest first: those are the jobs a
            # missing message hurts most.
            """
            WITH stale AS (
                SELECT id FROM jobs
                WHERE state = 'queued' AND queue = %(queue)s
                  AND published_at < now() - make_interval(secs => %(age)s)
                ORDER BY priority DESC, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
            )
            UPDATE jobs SET published_at = now() FROM stale
            WHERE jobs.id = stale.id AND jobs.state = 'queued'
            RETURNING jobs.id, jobs.queue, jobs.priority
            """,
            {"queue": queue, "age": older_than, "limit": limit},
        )

    # -- schedules (issue 4) ------------------------------------------------------------------

    SCHEDULE_COLUMNS = ("job_type", "cron", "timezone", "payload", "priority", "max_retries", "queue",
                        "misfire", "enabled", "next_fire_at")

    def schedule_insert(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """Insert a schedule; None when the name exists. `row` has every SCHEDULE_COLUMNS key and
        name; payload as JSON text."""
        return self._one(
            # query: schedule_insert. ON CONFLICT rather than a look-up first: two adds of one name race.
            """
            INSERT INTO schedules (name, job_type, cron, timezone, payload, priority, max_retries, queue,
                                   misfire, enabled, next_fire_at)
            VALUES (%(name)s, %(job_type)s, %(cron)s, %(timezone)s, %(payload)s::jsonb, %(priority)s,
                    %(max_retries)s, %(queue)s, %(misfire)s, %(enabled)s, %(next_fire_at)s)
            ON CONFLICT (name) DO NOTHING
            RETURNING *
            """,
            row,
        )

    def schedule_get(self, name: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM schedules WHERE name = %s", (name,))  # query: schedule_get

    def schedule_list(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM schedules ORDER BY name")  # query: schedule_list

    def _schedule_set(self, conn: psycopg.Connection, name: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        unknown = set(changes) - set(self.SCHEDULE_COLUMNS)
        if unknown:
            raise ValueError(f"not schedule columns: {sorted(unknown)}")
        sets = [sql.SQL("{} = {}").format(sql.Identifier(c), sql.SQL("%({})s::jsonb" if c == "payload" else "%({})s")
                                          .format(sql.SQL(c))) for c in changes]
        query = sql.SQL(
            # query: schedule_update. Only the columns given: an edit of the payload leaves the
            # next_fire_at a concurrent tick just advanced alone.
            "UPDATE schedules SET {}, updated_at = now() WHERE name = %(name)s RETURNING *"
        ).format(sql.SQL(", ").join(sets))
        return conn.execute(query, {**changes, "name": name}).fetchone()

    def schedule_update(self, name: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Set some columns of a schedule; None when it does not exist."""
        with self._errors():
            return self._schedule_set(self.conn, name, changes)

    def schedule_delete(self, name: str) -> bool:
        return self._run("DELETE FROM schedules WHERE name = %s", (name,)) == 1  # query: schedule_delete

    def schedule_apply(self, inserts: Sequence[dict[str, Any]], updates: Sequence[tuple[str, dict[str, Any]]],
                       deletes: Sequence[str]) -> None:
        """Make several schedule changes in one transaction: a file is applied whole or not at all."""
        with self._errors(), self.conn.transaction():
            conn = self.conn
            for row in inserts:
                conn.execute(
                    # query: schedule_apply_insert
                    """
                    INSERT INTO schedules (name, job_type, cron, timezone, payload, priority, max_retries, queue,
                                           misfire, enabled, next_fire_at)
                    VALUES (%(name)s, %(job_type)s, %(cron)s, %(timezone)s, %(payload)s::jsonb, %(priority)s,
                            %(max_retries)s, %(queue)s, %(misfire)s, %(enabled)s, %(next_fire_at)s)
                    """,
                    row,
                )
            for name, changes in updates:
                self._schedule_set(conn, name, changes)
            if deletes:
                conn.execute("DELETE FROM schedules WHERE name = ANY(%s)", (list(deletes),))  # query: schedule_apply_delete

    def schedule_jobs_recent(self, name: str, limit: int) -> list[dict[str, Any]]:
        return self._all(
            # query: schedule_jobs_recent. Served by jobs_schedule_recent.
            """
            SELECT id, state, created_at, fire_time FROM jobs
            WHERE schedule_name = %s ORDER BY id DESC LIMIT %s
            """,
            (name, limit),
        )

    def schedule_job_insert(self, name: str, default_max_retries: int) -> dict[str, Any] | None:
        """One job from the schedule now, outside its ticks (no fire time). None if it does not exist."""
        return self._one(
            # query: schedule_job_insert
            """
            INSERT INTO jobs (job_type, queue, priority, state, payload, max_retries, run_at, published_at,
                              schedule_name)
            SELECT job_type, queue, priority, 'queued', payload, coalesce(max_retries, %(retries)s), now(), now(), name
            FROM schedules WHERE name = %(name)s
            RETURNING id, state, queue, priority
            """,
            {"name": name, "retries": default_max_retries},
        )

    def schedule_fire_due(self, limit: int, planner: Callable[[dict[str, Any], datetime], Any],
                          default_max_retries: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Fire the due schedules, in one transaction: lock up to `limit` enabled schedules whose
        next_fire_at has passed the database clock, ask `planner(row, now)` for a plan (fire_time,
        next_fire_at; None leaves the row alone), insert one job per fired tick and advance each
        timer. Returns (jobs created, the rows planned, each with its "plan")."""
        with self._errors(), self.conn.transaction():
            conn = self.conn
            rows = conn.execute(
                # query: schedule_lock_due. SKIP LOCKED: a second scheduler (or an edit in progress)
                # never waits here; the row it skips is fired by whoever holds it.
                """
                SELECT *, now() AS db_now FROM schedules
                WHERE enabled AND next_fire_at <= now()
                ORDER BY next_fire_at LIMIT %s FOR UPDATE SKIP LOCKED
                """,
                (limit,),
            ).fetchall()
            planned = []
            for row in rows:
                row["plan"] = planner(row, row["db_now"])
                if row["plan"] is not None:
                    planned.append(row)
            if not planned:
                return [], []
            fired = [r for r in planned if r["plan"].fire_time is not None]
            jobs = conn.execute(
                # query: schedule_job_fire. The unique (schedule_name, fire_time) key makes a tick
                # fired twice (two schedulers, a retried transaction) create one job.
                """
                INSERT INTO jobs (job_type, queue, priority, state, payload, max_retries, run_at, published_at,
                                  schedule_name, fire_time)
                SELECT s.job_type, s.queue, s.priority, 'queued', s.payload, coalesce(s.max_retries, %(retries)s),
                       now(), now(), s.name, f.fire_time
                FROM unnest(%(names)s::text[], %(times)s::timestamptz[]) AS f(name, fire_time)
                JOIN schedules s ON s.name = f.name
                ON CONFLICT (schedule_name, fire_time) WHERE fire_time IS NOT NULL DO NOTHING
                RETURNING id, state, queue, priority, schedule_name, fire_time
                """,
                {"names": [r["name"] for r in fired], "times": [r["plan"].fire_time for r in fired],
                 "retries": default_max_retries},
            ).fetchall() if fired else []
            conn.execute(
                # query: schedule_advance. last_fire_at is the tick fired, not when it was fired.
                """
                UPDATE schedules SET next_fire_at = a.next_at, last_fire_at = coalesce(a.fired, last_fire_at)
                FROM unnest(%(names)s::text[], %(next)s::timestamptz[], %(fired)s::timestamptz[])
                     AS a(name, next_at, fired)
                WHERE schedules.name = a.name
                """,
                {"names": [r["name"] for r in planned], "next": [r["plan"].next_fire_at for r in planned],
                 "fired": [r["plan"].fire_time for r in planned]},
            )
        return jobs, planned

    def job_prune(self, state: str, older_than: float, limit: int) -> int:
        """Delete up to `limit` jobs in terminal `state` that finished more than `older_than`
        seconds ago (their attempts go with them). One short statement: a large prune is many of
        these, so it never holds many locks or blocks the queue for long."""
        return self._run(
            # query: job_prune. Oldest first along jobs_finished; SKIP LOCKED leaves a row someone
            # else holds (a purge by hand) for the next batch.
            """
            WITH doomed AS (
                SELECT id FROM jobs
                WHERE state = %(state)s AND finished_at < now() - make_interval(secs => %(age)s)
                ORDER BY finished_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
            )
            DELETE FROM jobs USING doomed
            WHERE jobs.id = doomed.id AND jobs.state IN ('completed', 'dead', 'cancelled')
            """,
            {"state": state, "age": older_than, "limit": limit},
        )

    # -- end of schedules (issue 4) -----------------------------------------------------------

    # -- operator actions ---------------------------------------------------------------------

    def job_retry(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Dead or cancelled jobs back to queued with a fresh set of attempts (history kept)."""
        return self._all(
            # query: job_retry
            """
            UPDATE jobs SET state = 'queued', attempts = 0, cancel_requested = false, finished_at = NULL,
                            run_at = now(), published_at = now(), updated_at = now()
            WHERE id = ANY(%(ids)s) AND state IN ('dead', 'cancelled')
            RETURNING id, queue, priority
            """,
            {"ids": list(ids)},
        )

    def job_ids_matching(self, state: str, job_type: str | None, limit: int | None = None,
                         older_than: float | None = None) -> list[int]:
        where, params = ["state = %(state)s"], {"state": state}
        if job_type:
            where.append("job_type = %(type)s")
            params["type"] = job_type
        if older_than is not None:
            where.append("coalesce(finished_at, updated_at) < now() - make_interval(secs => %(age)s)")
            params["age"] = older_than
        query = f"SELECT id FROM jobs WHERE {' AND '.join(where)} ORDER BY id"  # query: job_ids_matching
        if limit is not None:
            query += " LIMIT %(limit)s"
            params["limit"] = limit
        return [r["id"] for r in self._all(query, params)]

    def job_cancel(self, ids: Sequence[int]) -> dict[int, str]:
        """Cancel jobs: not started ones end cancelled now; running ones are asked to stop and end
        cancelled when their worker sees it. Returns {id: state after} for those that changed."""
        rows = self._all(
            # query: job_cancel
            """
            UPDATE jobs SET
                state = CASE WHEN state = 'running' THEN 'running' ELSE 'cancelled' END,
                cancel_requested = true,
                finished_at = CASE WHEN state = 'running' THEN NULL ELSE now() END,
                updated_at = now()
            WHERE id = ANY(%(ids)s) AND state IN ('scheduled', 'queued', 'running', 'retrying')
              AND NOT (state = 'running' AND cancel_requested)
            RETURNING id, state
            """,
            {"ids": list(ids)},
        )
        return {r["id"]: r["state"] for r in rows}

    def job_purge(self, ids: Sequence[int]) -> int:
        """Delete terminal jobs (their attempts go with them). Never touches an active job."""
        return self._run(
            # query: job_purge
            "DELETE FROM jobs WHERE id = ANY(%(ids)s) AND state IN ('completed', 'dead', 'cancelled')",
            {"ids": list(ids)},
        )

    def now(self) -> datetime:
        return self._one("SELECT now() AS now")["now"]


def payload_json(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def hostname() -> str:
    return socket.gethostname()


# -- dashboard (jq top) -------------------------------------------------------------------------
# The dashboard's own queries, kept together at the end of the module.

CREATED_SCAN_FIRST = 1000  # rows read by the first step: enough for a quiet queue's whole window
CREATED_SCAN_LIMIT = 200_000  # never read more than this many rows per refresh, however busy


def job_count_created_per_second(store: Store, first: int, last: int) -> tuple[dict[int, int], int]:
    """Jobs created in each epoch second from `first` to `last` (inclusive), for the submitted rate.

    Submits are not counted in Redis (the submit path must not pay a round trip for telemetry), and
    jobs.created_at has no index, so this walks the primary key backwards (ids grow with
    created_at) in growing steps and stops at the first row older than the window or after
    CREATED_SCAN_LIMIT rows. Returns (counts, covered_from): seconds before covered_from were not
    reached within the limit and are unknown, not zero."""
    counts: dict[int, int] = {}
    before: int | None = None
    step, scanned = CREATED_SCAN_FIRST, 0
    while True:
        rows = store._all(
            # query: job_count_created_per_second. One step of the backward walk, aggregated here so
            # that a busy second costs one row on the wire, not thousands.
            """
            WITH step AS (
                SELECT id, created_at FROM jobs
                WHERE %(before)s::bigint IS NULL OR id < %(before)s::bigint
                ORDER BY id DESC LIMIT %(step)s
            )
            SELECT floor(extract(epoch FROM created_at))::bigint AS second, count(*) AS n, min(id) AS low
            FROM step GROUP BY 1
            """,
            {"before": before, "step": step},
        )
        read = sum(r["n"] for r in rows)
        scanned += read
        for r in rows:
            if first <= r["second"] <= last:
                counts[r["second"]] = counts.get(r["second"], 0) + r["n"]
        if read < step or not rows or min(r["second"] for r in rows) < first:
            return counts, first  # reached the table's start or the window's: every second is known
        if scanned >= CREATED_SCAN_LIMIT:
            oldest = min(r["second"] for r in rows)
            counts.pop(oldest, None)  # partly read: unknown rather than too low
            return counts, oldest + 1
        before = min(r["low"] for r in rows)
        step = min(step * 4, CREATED_SCAN_LIMIT - scanned)
