"""The scheduler's maintenance queries: leadership (a lease row), due jobs, lease rescue,
lost-message sweeps. Each walks a partial index of active jobs, never the finished ones."""

from __future__ import annotations

from typing import cast

from jq_cli.store.base import StoreBase
from jq_cli.store.rows import JobRef


class MaintenanceQueries(StoreBase):
    def leader_acquire(self, holder: str, lease: float, role: str = "scheduler") -> float | None:
        """Take the leader lease, or renew it if `holder` has it: leadership is a row whose
        leader_until is the database's now() plus `lease`, so it needs no session to stay open and a
        leader cut off from the database loses it after one lease. Returns the seconds of lease left
        (measured by the database), or None when another holder's lease has not expired."""
        row = self._one(
            # query: leader_acquire. One statement: the conditional upsert is the election.
            """
            INSERT INTO leaders AS l (role, holder, leader_until)
            VALUES (%(role)s, %(holder)s, now() + make_interval(secs => %(lease)s))
            ON CONFLICT (role) DO UPDATE
                SET holder = excluded.holder, leader_until = excluded.leader_until,
                    since = CASE WHEN l.holder = excluded.holder THEN l.since ELSE now() END
                WHERE l.holder = excluded.holder OR l.leader_until < now()
            RETURNING extract(epoch FROM leader_until - now())::float8 AS left
            """,
            {"role": role, "holder": holder, "lease": lease},
        )
        return float(row["left"]) if row else None

    def leader_release(self, holder: str, role: str = "scheduler") -> None:
        """Give the lease up at a clean stop, so a standby leads at its next pass."""
        self._run(
            # query: leader_release
            "UPDATE leaders SET leader_until = now() - interval '1 microsecond'"
            " WHERE role = %(role)s AND holder = %(holder)s",
            {"role": role, "holder": holder},
        )

    def leader_current(self, role: str = "scheduler") -> str | None:
        """The holder of an unexpired lease (jq doctor, tests, chaos), or None."""
        row = self._one(
            # query: leader_current
            "SELECT holder FROM leaders WHERE role = %s AND leader_until >= now()",
            (role,),
        )
        return str(row["holder"]) if row else None

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

    def job_republish_claim(self, queue: str, older_than: float, limit: int) -> list[JobRef]:
        """Pick up to `limit` jobs of a queue whose last publish is older than `older_than` seconds,
        longest waiting first, and stamp them published now. The walk is jobs_queued (queue,
        published_at) in its own order and stops at `limit`: its cost does not grow with the
        number of queued jobs. A re-published job goes to the back, so successive passes cycle
        through every stale job instead of re-publishing the same ones."""
        rows = self._all(
            # query: job_republish_claim
            """
            WITH stale AS (
                SELECT id FROM jobs
                WHERE state = 'queued' AND queue = %(queue)s
                  AND published_at < now() - make_interval(secs => %(age)s)
                ORDER BY published_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
            )
            UPDATE jobs SET published_at = now() FROM stale
            WHERE jobs.id = stale.id AND jobs.state = 'queued'
            RETURNING jobs.id, jobs.queue, jobs.priority
            """,
            {"queue": queue, "age": older_than, "limit": limit},
        )
        return cast(list[JobRef], rows)
