"""Jobs from the outside: submit (one, or many in one transaction) and read; operator actions
are in bulk.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from jq_cli.errors import Conflict, NotFound
from jq_cli.store.base import StoreBase
from jq_cli.store.enqueue import enqueue_steps, run_steps
from jq_cli.store.keys import check_same_request
from jq_cli.store.records import Inserted, NewJob
from jq_cli.store.rows import AttemptRow, JobCounts, JobRow, JobSummary, QueuedCount

_FINISHED = ("completed", "dead", "cancelled")


JOB_TYPE_NAMES = "SELECT name FROM job_types ORDER BY name"  # query: job_type_names


class JobQueries(StoreBase):
    def job_insert(self, job: NewJob) -> Inserted:
        """Insert one job (one round trip, in autocommit: no transaction of its own) by the one
        enqueue routine (store/enqueue.py); an idempotency key that exists returns that job when
        the request is the same, else raises Conflict."""
        with self._errors(), self.conn.cursor() as cur:
            return run_steps(cur, enqueue_steps(self.namespace, [job]))[0]

    def job_insert_many(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        """Insert many jobs in one statement and one transaction: all of them or none.
        Returns one Inserted per input, in input order."""
        if not jobs:
            return []
        if all(j.idempotency_key is None and j.delay is None and j.run_at is None for j in jobs):
            return self._job_copy_many(jobs)
        first: dict[str, NewJob] = {}
        for j in jobs:  # one key twice in one batch must name the same request too
            if j.idempotency_key is None:
                continue
            seen = first.setdefault(j.idempotency_key, j)
            if (seen.job_type, json.loads(seen.payload_json)) != (
                j.job_type,
                json.loads(j.payload_json),
            ):
                raise Conflict(
                    f"idempotency key {j.idempotency_key!r} is given twice with another type or "
                    "payload in this batch"
                )
        cols = {
            "job_type": [j.job_type for j in jobs],
            "queue": [j.queue for j in jobs],
            "priority": [j.priority for j in jobs],
            "payload": [j.payload_json for j in jobs],
            "max_retries": [j.max_retries for j in jobs],
            "delay": [j.delay for j in jobs],
            "run_at": [j.run_at for j in jobs],
            "key": [j.idempotency_key for j in jobs],
            "base": [j.retry_base_delay for j in jobs],
            "max": [j.retry_max_delay for j in jobs],
            "jitter": [j.retry_jitter for j in jobs],
            "time_limit": [j.time_limit for j in jobs],
        }
        with self._errors(), self.conn.transaction():
            rows = self.conn.execute(
                # query: job_insert_many. Rows go in input order (ORDER BY ord), so the identity
                # values they draw ascend with it and map back to the inputs.
                """
                INSERT INTO jobs (job_type, queue, priority, state, payload, max_retries, run_at,
                                  idempotency_key, retry_base_delay, retry_max_delay, retry_jitter, published_at,
                                  time_limit)
                SELECT job_type, queue, priority,
                       CASE WHEN due > now() THEN 'scheduled' ELSE 'queued' END,
                       payload::jsonb, max_retries, due, key, base, max, jitter,
                       CASE WHEN due > now() THEN NULL ELSE now() END, time_limit
                FROM (
                    SELECT u.*, coalesce(u.run_at, now() + make_interval(secs => coalesce(u.delay, 0))) AS due
                    FROM unnest(%(job_type)s::text[], %(queue)s::text[], %(priority)s::int2[],
                                %(payload)s::text[], %(max_retries)s::int[], %(delay)s::float8[],
                                %(run_at)s::timestamptz[], %(key)s::text[], %(base)s::float8[],
                                %(max)s::float8[], %(jitter)s::float8[], %(time_limit)s::float8[])
                         WITH ORDINALITY AS u(job_type, queue, priority, payload, max_retries, delay,
                                              run_at, key, base, max, jitter, time_limit, ord)
                    ORDER BY u.ord
                ) t
                ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING id, state, queue, priority, idempotency_key
                """,
                cols,
            ).fetchall()
            by_key = {r["idempotency_key"]: r for r in rows if r["idempotency_key"] is not None}
            missing = sorted(
                {
                    j.idempotency_key
                    for j in jobs
                    if j.idempotency_key and j.idempotency_key not in by_key
                }
            )
            existing: dict[str, dict[str, Any]] = {}
            if missing:
                existing = {
                    r["idempotency_key"]: r
                    for r in self.conn.execute(
                        # query: job_by_keys
                        "SELECT id, state, queue, priority, idempotency_key, job_type, payload"
                        " FROM jobs WHERE idempotency_key = ANY(%s)",
                        (missing,),
                    )
                }
            # Inside the transaction: a conflict rolls back the whole batch (all or none).
            for j in jobs:
                if j.idempotency_key in existing:
                    found = existing[j.idempotency_key]
                    same = found["payload"] == json.loads(j.payload_json)
                    check_same_request(j, {**found, "same_payload": same})
        unkeyed = iter(
            sorted((r for r in rows if r["idempotency_key"] is None), key=lambda r: r["id"])
        )
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
            row = (
                self.conn.cursor(binary=True)
                .execute(
                    # query: job_id_reserve. The sequence is looked up once (a sub-select, not a call
                    # per row: pg_get_serial_sequence per row cost more than the nextval calls), and
                    # the ids come back as one binary array, not a row each.
                    "SELECT array_agg(nextval((SELECT pg_get_serial_sequence('jobs', 'id')::regclass)))"
                    " AS ids FROM generate_series(1, %s)",
                    (len(jobs),),
                )
                .fetchone()
            )
            assert row is not None  # an aggregate without GROUP BY returns one row
            ids: list[int] = row["ids"]
            # Most batches set none of the per-job retry settings or time limits: their columns are
            # then left out of the COPY (NULL, as written), which spares the server four fields a
            # row to parse, about a tenth of its time per row.
            tuned = any(
                j.retry_base_delay is not None
                or j.retry_max_delay is not None
                or j.retry_jitter is not None
                or j.time_limit is not None
                for j in jobs
            )
            columns = "id, job_type, queue, priority, state, payload, max_retries"
            if tuned:
                columns += ", retry_base_delay, retry_max_delay, retry_jitter, time_limit"
            # query: job_copy
            with self.conn.cursor().copy(f"COPY jobs ({columns}) FROM STDIN") as copy:
                for job_id, j in zip(ids, jobs, strict=False):
                    values: tuple[Any, ...] = (
                        job_id,
                        j.job_type,
                        j.queue,
                        j.priority,
                        "queued",
                        j.payload_json,
                        j.max_retries,
                    )
                    if tuned:
                        values += (
                            j.retry_base_delay,
                            j.retry_max_delay,
                            j.retry_jitter,
                            j.time_limit,
                        )
                    copy.write_row(values)
        return [
            Inserted(job_id, "queued", j.queue, j.priority, True)
            for job_id, j in zip(ids, jobs, strict=False)
        ]

    # -- read ---------------------------------------------------------------------------------

    def job_get(self, job_id: int) -> JobRow:
        """The job with its attempts, oldest first. Raises NotFound."""
        row = self._one("SELECT * FROM jobs WHERE id = %s", (job_id,))  # query: job_get
        if row is None:
            raise NotFound(f"job {job_id} not found")
        job = cast(JobRow, row)
        job["attempt_history"] = cast(
            list[AttemptRow],
            self._all(
                "SELECT * FROM attempts WHERE job_id = %s ORDER BY number",  # query: attempt_list
                (job_id,),
            ),
        )
        # A worker lets go of a job it finished (jobs.worker is the current holder); the one
        # that ran it is the last attempt's.
        if job["worker"] is None and job["state"] in _FINISHED and job["attempt_history"]:
            job["worker"] = job["attempt_history"][-1]["worker"]
        return job

    def job_type_names(self) -> list[str]:
        """Every type a worker registered (for a "did you mean" on an unknown type)."""
        return [r["name"] for r in self._all(JOB_TYPE_NAMES)]

    def job_states(self, ids: Sequence[int]) -> dict[int, str]:
        rows = self._all(
            "SELECT id, state FROM jobs WHERE id = ANY(%s)", (list(ids),)
        )  # query: job_states
        return {r["id"]: r["state"] for r in rows}

    def job_list(
        self,
        *,
        states: Sequence[str] | None = None,
        job_types: Sequence[str] | None = None,
        priorities: Sequence[int] | None = None,
        queues: Sequence[str] | None = None,
        since_seconds: float | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[JobSummary]:
        """Newest first, filtered (each list means "any of"); `before_id` pages through older rows."""
        where, params = ["true"], dict[str, Any]()
        for column, values in (
            ("state", states),
            ("job_type", job_types),
            ("priority", priorities),
            ("queue", queues),
        ):
            if values:
                where.append(f"{column} = ANY(%({column})s)")
                params[column] = list(values)
        if since_seconds is not None:
            where.append("created_at >= now() - make_interval(secs => %(since)s)")
            params["since"] = since_seconds
        if before_id is not None:
            where.append("id < %(before)s")
            params["before"] = before_id
        params["limit"] = limit
        query = (
            "SELECT id, job_type, queue, priority, state, attempts, max_retries, progress, last_error,"
            " run_at, created_at, started_at, finished_at,"
            # A finished job shows the worker that ran it: its last attempt's (one index probe
            # per row shown, bounded by the limit).
            " CASE WHEN worker IS NULL AND state IN ('completed', 'dead', 'cancelled') THEN"
            " (SELECT a.worker FROM attempts a WHERE a.job_id = jobs.id ORDER BY a.number DESC LIMIT 1)"
            " ELSE worker END AS worker"
            f" FROM jobs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %(limit)s"  # query: job_list
        )
        return cast(list[JobSummary], self._all(query, params))

    def job_counts(self) -> JobCounts:
        """Counts by state, and queued counts by priority and by queue: exact, and read from the
        job_counts summary (a few dozen rows kept by triggers, migration 011), never by counting
        jobs, so the cost is the same with a thousand finished jobs or ten million."""
        rows = self._all(
            # query: job_count_summary. Sum of the per-session shards and the base.
            """
            SELECT state, queue, priority, sum(n)::bigint AS n FROM job_counts
            GROUP BY state, queue, priority HAVING sum(n) <> 0
            """
        )
        by_state: dict[str, int] = {}
        queued: list[QueuedCount] = []
        for r in rows:
            by_state[r["state"]] = by_state.get(r["state"], 0) + r["n"]
            if r["state"] == "queued":
                queued.append({"queue": r["queue"], "priority": r["priority"], "n": r["n"]})
        return {"by_state": by_state, "queued": queued}

    def now(self) -> datetime:
        """The database's clock: every due time is compared with it (docs/design.md, Invariant 4)."""
        row = self._one("SELECT now() AS now")  # query: now
        assert row is not None  # a SELECT without FROM returns one row
        return cast(datetime, row["now"])
