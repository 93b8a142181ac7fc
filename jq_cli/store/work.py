"""The worker's queries: claim delivered jobs, record outcomes (group commit), renew leases,
store progress, hand back at shutdown."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import tuple_row

from jq_cli.errors import Conflict, StoreError
from jq_cli.store.base import StoreBase
from jq_cli.store.hot_sql import JOB_CLAIM, JOB_FINISH, claim_params, finish_params
from jq_cli.store.records import Finish

log = logging.getLogger("jq.store")
# Consecutive shutdown hand-backs that give their attempt back; later ones spend it.
MAX_FREE_HAND_BACKS = 3


def last_resort(finish: Finish, problem: str) -> Finish:
    """The outcome recorded when PostgreSQL refused an outcome on its own: a failed attempt with
    plain ASCII text, which the database can always store."""
    detail = problem.encode("ascii", "backslashreplace").decode("ascii")[:2000]
    return Finish(
        finish.job_id,
        finish.run,
        "failed",
        error=f"the outcome ({finish.outcome}) could not be recorded: {detail}",
        retry_in=finish.retry_in if finish.outcome != "completed" else None,
    )


# query: job_type_info
JOB_TYPE_INFO = "SELECT payload_schema, defaults FROM job_types WHERE name = %s"


def type_info(row: dict[str, Any] | None) -> tuple[bool, Any, dict[str, Any]]:
    """A JOB_TYPE_INFO row as (whether some worker registered the type, its payload JSON Schema
    or None, its @job defaults)."""
    if row is None:
        return False, None, {}
    return True, row["payload_schema"], row["defaults"] or {}


@dataclass(slots=True)
class ClaimedJob:
    """A job a worker has claimed: what it needs to run the attempt and report its outcome.
    Treat it as read-only. Not frozen: a frozen dataclass sets each of its fields through
    object.__setattr__, which the claim of a thousand jobs a second pays for. The fields are in
    the order of the claim's RETURNING list (store/hot_sql.py), so a row builds one directly."""

    id: int
    job_type: str
    queue: str
    priority: int
    payload: Any
    attempts: int  # of the current budget, this attempt included
    run_count: int  # the attempt number, which the outcome must name
    max_retries: int
    retry_base_delay: float | None
    retry_max_delay: float | None
    retry_jitter: float | None
    cancel_requested: bool
    waited: float  # seconds from due to claimed
    time_limit: float | None
    hand_backs: int
    parent_results: list[dict[str, Any]] | None  # a workflow step's parents and their results
    trace_context: str | None  # the submitter's W3C trace context (JSON), for the handler's span


@dataclass(frozen=True)
class HandedBack:
    id: int
    state: str
    queue: str
    priority: int


class WorkQueries(StoreBase):
    def job_claim(self, ids: Sequence[int], worker: str, lease_ttl: float) -> list[ClaimedJob]:
        """Claim the queued jobs among `ids` for `worker` in one statement, opening an attempt for
        each. Jobs in any other state are left alone: that is how duplicates lose."""
        return self._claimed_jobs(JOB_CLAIM, claim_params(ids, worker, lease_ttl))

    def _claimed_jobs(self, query: str, params: dict[str, Any]) -> list[ClaimedJob]:
        """Run a claim (store/hot_sql.py); its rows straight into ClaimedJob, by position."""
        with self._errors():
            cursor = self.conn.cursor(row_factory=tuple_row)
            return [ClaimedJob(*row) for row in cursor.execute(query, params).fetchall()]

    def job_finish(self, finishes: Sequence[Finish], worker: str) -> dict[int, str]:
        """Record many attempt outcomes in one statement (group commit). Only jobs still running
        this very attempt change; returns {job id: new state} for those.

        Should PostgreSQL refuse the batch for what one row holds (anything but a lost
        connection, which raises DatabaseUnavailable; store.base translates every driver error), the rows are recorded one by one, and a row
        refused on its own is recorded as a failed attempt naming the refusal: one outcome never
        fails another's."""
        if not finishes:
            return {}
        try:
            return self._job_finish_batch(finishes, worker)
        except (StoreError, Conflict) as exc:  # a refusal of the rows; an outage raises on
            log.warning(
                "event=outcome_batch_refused rows=%d error=%r action=row_by_row",
                len(finishes),
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
        states: dict[int, str] = {}
        for finish in finishes:
            try:
                states.update(self._job_finish_batch([finish], worker))
            except (StoreError, Conflict) as exc:
                problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                states.update(self._job_finish_batch([last_resort(finish, problem)], worker))
        return states

    def _job_finish_batch(self, finishes: Sequence[Finish], worker: str) -> dict[int, str]:
        params = finish_params(finishes, worker)
        rows = self.with_deadlock_retry("job_finish", lambda: self._all(JOB_FINISH, params))
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
            {
                "ids": ids,
                "pct": [updates[i][0] for i in ids],
                "msg": [updates[i][1] for i in ids],
                "worker": worker,
            },
        )

    def job_hand_back(self, ids: Sequence[int], worker: str) -> list[HandedBack]:
        """Return running jobs to the queue at shutdown. The interrupted attempt is kept in the
        history but gives its retry back. Returns the jobs queued again, to publish."""
        if not ids:
            return []
        rows = self._all(
            # query: job_hand_back
            """
            WITH j AS (
                UPDATE jobs SET
                    -- A hand-back gives the attempt back, but not forever: past MAX_FREE_HAND_BACKS
                    -- in a row (a job longer than every shutdown grace) it counts, and a job out of
                    -- attempts then ends dead instead of looping between deploys.
                    state = CASE WHEN cancel_requested THEN 'cancelled'
                                 WHEN hand_backs >= %(free)s AND attempts > max_retries THEN 'dead'
                                 ELSE 'queued' END,
                    attempts = CASE WHEN cancel_requested OR hand_backs >= %(free)s THEN attempts
                                    ELSE attempts - 1 END,
                    last_error = CASE WHEN hand_backs >= %(free)s AND attempts > max_retries
                                      THEN 'handed back at shutdown too many times' ELSE last_error END,
                    hand_backs = hand_backs + 1,
                    finished_at = CASE WHEN cancel_requested
                                         OR (hand_backs >= %(free)s AND attempts > max_retries)
                                       THEN now() END,
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
            {"ids": list(ids), "worker": worker, "free": MAX_FREE_HAND_BACKS},
        )
        return [HandedBack(r["id"], r["state"], r["queue"], r["priority"]) for r in rows]

    def job_type_register(
        self,
        names: Sequence[str],
        worker: str,
        schemas: Sequence[str | None] | None = None,
        defaults: Sequence[str | None] | None = None,
    ) -> None:
        """Record the types this worker runs (and each one's payload JSON Schema, for submit-time
        checks where the handler's module is not imported), and that this worker is live."""
        schema_list = list(schemas) if schemas is not None else [None] * len(names)
        default_list = list(defaults) if defaults is not None else [None] * len(names)
        with self._errors(), self.conn.transaction():
            self.conn.execute(
                # query: job_type_register. A schema stays as the last worker that had one left it.
                """
                INSERT INTO job_types (name, registered_by, payload_schema, defaults)
                SELECT n, %(worker)s, s::jsonb, d::jsonb
                FROM unnest(%(names)s::text[], %(schemas)s::text[], %(defaults)s::text[]) AS u(n, s, d)
                ON CONFLICT (name) DO UPDATE SET registered_by = excluded.registered_by,
                    payload_schema = coalesce(excluded.payload_schema, job_types.payload_schema),
                    defaults = coalesce(excluded.defaults, job_types.defaults),
                    updated_at = now()
                """,
                {
                    "names": list(names),
                    "worker": worker,
                    "schemas": schema_list,
                    "defaults": default_list,
                },
            )
            self.conn.execute(
                # query: worker_type_upsert
                """
                INSERT INTO worker_types (worker, job_type) SELECT %(worker)s, unnest(%(names)s::text[])
                ON CONFLICT (job_type, worker) DO UPDATE SET seen_at = now()
                """,
                {"names": list(names), "worker": worker},
            )

    def worker_types_refresh(self, worker: str) -> None:
        """The worker's heartbeat in PostgreSQL: its types stay runnable while this runs."""
        self._run(
            # query: worker_types_refresh
            "UPDATE worker_types SET seen_at = now() WHERE worker = %s",
            (worker,),
        )

    def worker_types_remove(self, worker: str) -> None:
        self._run(
            "DELETE FROM worker_types WHERE worker = %s", (worker,)
        )  # query: worker_types_remove

    def job_type_live_elsewhere(
        self, job_types: Sequence[str], worker: str, within: float
    ) -> set[str]:
        """Which of `job_types` some other worker, seen within `within` seconds, can run."""
        rows = self._all(
            # query: job_type_live_elsewhere
            """
            SELECT DISTINCT job_type FROM worker_types
            WHERE job_type = ANY(%(types)s) AND worker <> %(worker)s
              AND seen_at > now() - make_interval(secs => %(within)s)
            """,
            {"types": list(job_types), "worker": worker, "within": within},
        )
        return {r["job_type"] for r in rows}

    def job_hand_over(
        self, delays: dict[int, tuple[int, float]], worker: str, note: str
    ) -> list[HandedBack]:
        """Give back jobs this worker cannot run (a type it lacks) without spending an attempt:
        each waits `delay` seconds as scheduled (`{id: (run, delay)}`) with `note` as its last
        error, and counts one more hand-back. Returns the jobs changed."""
        if not delays:
            return []
        ids = list(delays)
        rows = self._all(
            # query: job_hand_over
            """
            WITH o AS (
                SELECT * FROM unnest(%(ids)s::bigint[], %(runs)s::int[], %(delays)s::float8[])
                         AS o(id, run, delay)
            ), j AS (
                UPDATE jobs SET state = 'scheduled', attempts = jobs.attempts - 1,
                    run_at = now() + make_interval(secs => o.delay), last_error = %(note)s,
                    hand_backs = jobs.hand_backs + 1, published_at = NULL,
                    worker = NULL, lease_expires_at = NULL, updated_at = now()
                FROM o
                WHERE jobs.id = o.id AND jobs.run_count = o.run AND jobs.state = 'running'
                  AND jobs.worker = %(worker)s
                RETURNING jobs.id, jobs.state, jobs.queue, jobs.priority, jobs.run_count
            ), a AS (
                UPDATE attempts SET finished_at = now(), outcome = 'interrupted', error = %(note)s
                FROM j WHERE attempts.job_id = j.id AND attempts.number = j.run_count
                         AND attempts.outcome = 'running'
            )
            SELECT id, state, queue, priority FROM j
            """,
            {
                "ids": ids,
                "runs": [delays[i][0] for i in ids],
                "delays": [delays[i][1] for i in ids],
                "worker": worker,
                "note": note,
            },
        )
        return [HandedBack(r["id"], r["state"], r["queue"], r["priority"]) for r in rows]

    def job_type_exists(self, name: str) -> bool:
        return self._one("SELECT 1 AS x FROM job_types WHERE name = %s", (name,)) is not None

    def job_type_schema(self, name: str) -> tuple[bool, Any]:
        """(whether some worker registered `name`, the payload JSON Schema it registered or None)."""
        known, schema, _ = self.job_type_info(name)
        return known, schema

    def job_type_info(self, name: str) -> tuple[bool, Any, dict[str, Any]]:
        """(whether some worker registered `name`, its payload JSON Schema or None, its @job
        defaults)."""
        return type_info(self._one(JOB_TYPE_INFO, (name,)))
