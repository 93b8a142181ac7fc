"""Operator actions on jobs: retry, cancel and purge, by id or in batches by filter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from jq_cli.store.base import StoreBase
from jq_cli.store.cancels import cancel_channel
from jq_cli.store.rows import JobRef

# A job is retried only once every parent it depends on has settled as its policy says
# (completed; or dead or cancelled under on_parent_failure = 'run'): queued before, it would run
# without its parents' results (docs/design.md, Invariant 8). Every retry statement carries it;
# JOB_PARENTS_UNSETTLED names the parents of a job it refused. `jobs` is the retried row.
PARENTS_SETTLED = """NOT EXISTS (
    SELECT 1 FROM job_dependencies d JOIN jobs p ON p.id = d.parent_id
    WHERE d.child_id = jobs.id AND NOT (p.state = 'completed'
        OR (jobs.on_parent_failure = 'run' AND p.state IN ('dead', 'cancelled'))))"""
# query: job_parents_unsettled. The parents (id, state) that keep each of `ids` from a retry.
JOB_PARENTS_UNSETTLED = """
SELECT jobs.id, p.id AS parent_id, p.state AS parent_state
FROM jobs JOIN job_dependencies d ON d.child_id = jobs.id JOIN jobs p ON p.id = d.parent_id
WHERE jobs.id = ANY(%(ids)s) AND NOT (p.state = 'completed'
    OR (jobs.on_parent_failure = 'run' AND p.state IN ('dead', 'cancelled')))
ORDER BY jobs.id, d.position
"""
# query: job_retry. Dead or cancelled jobs back to queued with a fresh budget of attempts; the
# async store (store/async_jobs.py) runs the same text.
JOB_RETRY = f"""
UPDATE jobs SET state = 'queued', attempts = 0, cancel_requested = false, finished_at = NULL,
                run_at = now(), published_at = now(), updated_at = now()
WHERE id = ANY(%(ids)s) AND state IN ('dead', 'cancelled') AND {PARENTS_SETTLED}
RETURNING id, queue, priority
"""


def parents_by_job(rows: Sequence[Any]) -> dict[int, list[tuple[int, str]]]:
    """JOB_PARENTS_UNSETTLED's rows as {job id: [(parent id, its state)]}."""
    found: dict[int, list[tuple[int, str]]] = {}
    for r in rows:
        found.setdefault(r["id"], []).append((r["parent_id"], r["parent_state"]))
    return found


# query: job_cancel. Not started jobs end cancelled; a running one is asked to stop (once), and
# its worker hears of it at once: a NOTIFY on the namespace's cancel channel (store/cancels.py)
# carrying the job id, which PostgreSQL delivers when this statement's transaction commits.
JOB_CANCEL = """
WITH asked AS (
    UPDATE jobs SET
        state = CASE WHEN state = 'running' THEN 'running' ELSE 'cancelled' END,
        cancel_requested = true,
        finished_at = CASE WHEN state = 'running' THEN NULL ELSE now() END,
        updated_at = now()
    WHERE id = ANY(%(ids)s) AND state IN ('waiting', 'scheduled', 'queued', 'running', 'retrying')
      AND NOT (state = 'running' AND cancel_requested)
    RETURNING id, state
)
SELECT id, state,
       CASE WHEN state = 'running' THEN pg_notify(%(channel)s, id::text) END AS told
FROM asked
"""


class BulkQueries(StoreBase):
    def job_retry(self, ids: Sequence[int]) -> list[JobRef]:
        """Dead or cancelled jobs back to queued with a fresh set of attempts (history kept)."""
        rows = self._all(
            JOB_RETRY,
            {"ids": list(ids)},
        )
        return cast(list[JobRef], rows)

    def job_parents_unsettled(self, ids: Sequence[int]) -> dict[int, list[tuple[int, str]]]:
        """{job id: [(parent id, state)]} of the parents that keep each of `ids` from a retry."""
        return parents_by_job(self._all(JOB_PARENTS_UNSETTLED, {"ids": list(ids)}))

    @staticmethod
    def _terminal_filter(
        state: str,
        job_type: str | None,
        older_than: float | None,
        queue: str | None = None,
        priority: int | None = None,
        job_id: int | None = None,
        finished_by: datetime | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """The WHERE of a bulk action: state, type and age as jobs_finished(_type) index them
        (finished_at compared with a constant, so the index range serves it); queue, priority
        and id narrow the rows of that range."""
        where, params = ["state = %(state)s"], dict[str, Any](state=state)
        if queue:
            where.append("queue = %(queue)s")
            params["queue"] = queue
        if priority is not None:
            where.append("priority = %(priority)s")
            params["priority"] = priority
        if job_id is not None:
            where.append("id = %(id)s")
            params["id"] = job_id
        if job_type:
            where.append("job_type = %(type)s")
            params["type"] = job_type
        if older_than is not None:
            where.append("finished_at < now() - make_interval(secs => %(age)s)")
            params["age"] = older_than
        if finished_by is not None:
            # The jobs an operator confirmed: those finished by the time they were counted.
            where.append("finished_at <= %(finished_by)s")
            params["finished_by"] = finished_by
        return " AND ".join(where), params

    def job_count_matching(
        self, state: str, job_type: str | None, older_than: float | None = None, **narrow: Any
    ) -> int:
        """How many terminal jobs a bulk action would touch (dry runs): counted, never loaded."""
        where, params = self._terminal_filter(state, job_type, older_than, **narrow)
        row = self._one(
            f"SELECT count(*) AS n FROM jobs WHERE {where}",  # query: job_count_matching
            params,
        )
        return int(row["n"]) if row else 0

    def job_purge_batch(
        self, state: str, job_type: str | None, older_than: float | None, limit: int, **narrow: Any
    ) -> int:
        """Delete up to `limit` terminal jobs matching the filter, oldest finished first; one
        statement, so each batch is its own short transaction. Returns how many went."""
        where, params = self._terminal_filter(state, job_type, older_than, **narrow)
        params["limit"] = limit
        return self._run(
            # query: job_purge_batch. Along jobs_finished(_type); SKIP LOCKED leaves a row the
            # pruner holds for the next batch.
            f"""
            WITH doomed AS (
                SELECT id FROM jobs WHERE {where}
                ORDER BY finished_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
            )
            DELETE FROM jobs USING doomed
            WHERE jobs.id = doomed.id AND jobs.state IN ('completed', 'dead', 'cancelled')
            """,
            params,
        )

    def job_retry_batch(
        self, state: str, job_type: str | None, limit: int, **narrow: Any
    ) -> list[JobRef]:
        """Up to `limit` dead or cancelled jobs of the filter back to queued (as job_retry), oldest
        finished first; the retried leave the filter, so the next batch finds the next ones."""
        where, params = self._terminal_filter(state, job_type, None, **narrow)
        params["limit"] = limit
        rows = self._all(
            # query: job_retry_batch
            f"""
            WITH picked AS (
                SELECT id FROM jobs WHERE {where}
                ORDER BY finished_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
            )
            UPDATE jobs SET state = 'queued', attempts = 0, cancel_requested = false, finished_at = NULL,
                            run_at = now(), published_at = now(), updated_at = now()
            FROM picked WHERE jobs.id = picked.id AND jobs.state IN ('dead', 'cancelled')
              AND {PARENTS_SETTLED}
            RETURNING jobs.id, jobs.queue, jobs.priority
            """,
            params,
        )
        return cast(list[JobRef], rows)

    def job_cancel(self, ids: Sequence[int]) -> dict[int, str]:
        """Cancel jobs: not started ones end cancelled now; running ones are asked to stop and end
        cancelled when their worker sees it. Returns {id: state after} for those that changed."""
        rows = self._all(JOB_CANCEL, {"ids": list(ids), "channel": cancel_channel(self.namespace)})
        return {r["id"]: r["state"] for r in rows}

    def job_purge(self, ids: Sequence[int]) -> int:
        """Delete terminal jobs (their attempts go with them). Never touches an active job."""
        return self._run(
            # query: job_purge
            "DELETE FROM jobs WHERE id = ANY(%(ids)s) AND state IN ('completed', 'dead', 'cancelled')",
            {"ids": list(ids)},
        )
