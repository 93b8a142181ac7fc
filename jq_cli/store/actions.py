"""Operator actions on jobs: selection by filter (state, type, queue, priority,
age), retry with an edited payload, replay as a new linked job, and what `jq show` adds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from jq_cli.store.base import StoreBase
from jq_cli.store.bulk import PARENTS_SETTLED
from jq_cli.store.rows import JobRef


class ActionQueries(StoreBase):
    def job_ids_filtered(
        self,
        *,
        states: Sequence[str],
        job_type: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        older_than: float | None = None,
        limit: int | None = None,
    ) -> list[int]:
        """Ids of the jobs in `states` that match every filter given, oldest first."""
        rows = self._all(
            # query: job_ids_filtered. One fixed text with optional filters; jobs_state_id serves
            # the state and the order.
            """
            SELECT id FROM jobs
            WHERE state = ANY(%(states)s)
              AND (%(type)s::text IS NULL OR job_type = %(type)s)
              AND (%(queue)s::text IS NULL OR queue = %(queue)s)
              AND (%(priority)s::int2 IS NULL OR priority = %(priority)s)
              AND (%(age)s::float8 IS NULL
                   OR coalesce(finished_at, updated_at) < now() - make_interval(secs => %(age)s::float8))
            ORDER BY id
            LIMIT %(limit)s
            """,
            {
                "states": list(states),
                "type": job_type,
                "queue": queue,
                "priority": priority,
                "age": older_than,
                "limit": limit,
            },
        )
        return [r["id"] for r in rows]

    def job_retry_edited(self, job_id: int, payload_json: str) -> JobRef | None:
        """A dead job back to queued with a new payload and a fresh set of attempts (history
        kept); None when it is not dead (any more)."""
        row = self._one(
            # query: job_retry_edited. Conditional on dead, like every state change, and on its
            # parents (store/bulk.py, PARENTS_SETTLED).
            f"""
            UPDATE jobs SET payload = %(payload)s::jsonb, state = 'queued', attempts = 0,
                            cancel_requested = false, finished_at = NULL, run_at = now(),
                            published_at = now(), updated_at = now()
            WHERE id = %(id)s AND state = 'dead' AND {PARENTS_SETTLED}
            RETURNING id, queue, priority
            """,
            {"id": job_id, "payload": payload_json},
        )
        return cast(JobRef | None, row)

    def job_replay(self, job_id: int) -> JobRef | None:
        """A new queued job with the type, queue, priority, payload and retry settings of the
        finished job `job_id`, naming it in replay_of; None when that job is not finished."""
        row = self._one(
            # query: job_replay. The original is untouched: its history stays as it was.
            """
            INSERT INTO jobs (job_type, queue, priority, state, payload, max_retries,
                              retry_base_delay, retry_max_delay, retry_jitter, replay_of)
            SELECT job_type, queue, priority, 'queued', payload, max_retries,
                   retry_base_delay, retry_max_delay, retry_jitter, id
            FROM jobs WHERE id = %(id)s AND state IN ('completed', 'dead', 'cancelled')
            RETURNING id, queue, priority
            """,
            {"id": job_id},
        )
        return cast(JobRef | None, row)

    def job_replays_of(self, job_id: int) -> list[int]:
        """The ids of the replays of `job_id`, oldest first (along jobs_replay_of)."""
        rows = self._all(
            "SELECT id FROM jobs WHERE replay_of = %s ORDER BY id",  # query: job_replays_of
            (job_id,),
        )
        return [r["id"] for r in rows]
