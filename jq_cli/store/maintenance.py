"""The scheduler's maintenance queries: leadership, due jobs, lease rescue, lost-message sweeps."""

from __future__ import annotations

from typing import cast

from jq_cli.store.base import StoreBase
from jq_cli.store.rows import JobRef


class MaintenanceQueries(StoreBase):
    def leader_try_lock(self) -> bool:
        """Take (or keep) the scheduler leader lock: a session advisory lock that dies with the
        connection, so a crashed leader frees it at once."""
        row = self._one(
            "SELECT pg_try_advisory_lock(hashtext(%s)) AS ok", (f"{self.namespace}:scheduler",)
        )
        return bool(row and row["ok"])

    def leader_unlock(self) -> None:
        self._one("SELECT pg_advisory_unlock(hashtext(%s)) AS ok", (f"{self.namespace}:scheduler",))

    def job_promote_due(self, limit: int) -> list[JobRef]:
        """Move scheduled and retrying jobs whose run_at has come to queued. Returns them, to publish."""
        rows = self._all(
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
        return cast(list[JobRef], rows)

    def job_rescue_expired(self, limit: int) -> list[JobRef]:
        """Take back running jobs whose lease expired (their worker died or was cut off). The lost
        attempt counts, so a job that kills its worker every time ends dead instead of looping."""
        rows = self._all(
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
        return cast(list[JobRef], rows)

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

    def job_republish_claim(self, queue: str, older_than: float, limit: int) -> list[JobRef]:
        """Pick up to `limit` long-queued jobs of a queue and stamp them published now."""
        rows = self._all(
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
        return cast(list[JobRef], rows)
