"""The worker's queries: claim delivered jobs, record outcomes (group commit), renew leases,
store progress, hand back at shutdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jq_cli.store.base import StoreBase
from jq_cli.store.records import Finish


class WorkQueries(StoreBase):
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
                          extract(epoch FROM now() - run_at)::float8 AS waited,
                          parent_results, trace_context  -- issue 15: workflows, tracing
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
                "ids": [f.job_id for f in finishes],
                "runs": [f.run for f in finishes],
                "outcomes": [f.outcome for f in finishes],
                "results": [f.result_json for f in finishes],
                "errors": [f.error for f in finishes],
                "tracebacks": [f.traceback for f in finishes],
                "retry_in": [f.retry_in for f in finishes],
                "worker": worker,
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
            {
                "ids": ids,
                "pct": [updates[i][0] for i in ids],
                "msg": [updates[i][1] for i in ids],
                "worker": worker,
            },
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
