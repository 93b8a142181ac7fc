"""The statements of a worker's hot path as text: the claim, the outcomes (finish), and both in one
statement. Each is built from named common table expressions so that the three share one text of
each step. The claim's RETURNING list is in the order of ClaimedJob's fields (store/work.py), so a
row becomes a ClaimedJob without a dictionary in between."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jq_cli.store.records import Finish

# A concurrent claim of the same row waits for the first one's commit, then re-checks
# state = 'queued' and finds it running: exactly one claim wins. {gate} is empty for the plain claim.
_CLAIM_CTES = """
claimed AS (
    UPDATE jobs
    SET state = 'running', attempts = attempts + 1, run_count = run_count + 1,
        worker = %(worker)s, started_at = now(), updated_at = now(),
        lease_expires_at = now() + make_interval(secs => %(ttl)s),
        progress = NULL, progress_message = NULL
    WHERE id = ANY(%(claim_ids)s) AND state = 'queued'{gate}
    RETURNING id, job_type, queue, priority, payload, attempts, run_count, max_retries,
              retry_base_delay, retry_max_delay, retry_jitter, cancel_requested,
              extract(epoch FROM now() - run_at)::float8 AS waited,
              time_limit, hand_backs,
              parent_results, trace_context  -- workflows, tracing
), opened AS (
    INSERT INTO attempts (job_id, number, worker)
    SELECT id, run_count, %(worker)s FROM claimed
)"""
CLAIMED_COLUMNS = 17  # the RETURNING list above: ClaimedJob's fields

# The gates in the claim itself: a job of a paused queue stays queued (read from
# committed rows: a claim that starts after a pause commits takes nothing of that queue), and while
# any limit exists this claims nothing: the worker then takes the limited claim
# (store/limits.py), which counts under locks.
_GATES = """
      AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = jobs.queue AND q.paused)
      AND NOT EXISTS (SELECT 1 FROM limits)"""

# A cancel request turns a failure into cancelled (never retried); a completed handler's result
# stands even if a cancel arrived late. Only the attempts of the jobs whose guard let the outcome
# in are closed: a report the guard refused (another worker's, a stale run's) must not close the
# holder's.
_FINISH_CTES = """
o AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(runs)s::int[], %(outcomes)s::text[],
                         %(results)s::text[], %(errors)s::text[], %(tracebacks)s::text[],
                         %(retry_in)s::float8[])
             AS o(id, run, outcome, result, error, tb, retry_in)
), kids AS MATERIALIZED (
    -- The waiting children of this batch, locked in id order before any parent changes: the
    -- trigger that settles them (sql/043) would lock them parent by parent, and two batches
    -- settling the same children in opposite orders would deadlock (docs/design.md,
    -- Invariant 8). An ordinary job has no row in job_dependencies: one probe of its primary
    -- key per outcome, on a table that is empty unless workflows are used. The children's ids
    -- come first (ARRAY(...), an InitPlan) and are looked up by primary key: the state test is
    -- written so that no index serves it (|| ''), or a plan might read every waiting job.
    SELECT c.id FROM jobs c
    WHERE c.id = ANY(ARRAY(SELECT d.child_id FROM job_dependencies d
                           WHERE d.parent_id = ANY(%(ids)s::bigint[])))
      AND c.state || '' = 'waiting'
    ORDER BY c.id
    FOR UPDATE
), j AS (
    UPDATE jobs SET
        state = CASE
            WHEN o.outcome = 'completed' THEN 'completed'
            WHEN o.outcome = 'cancelled' OR jobs.cancel_requested THEN 'cancelled'
            -- snoozed: asked to run later, spending no attempt (attempts below)
            WHEN o.outcome = 'snoozed' THEN 'scheduled'
            WHEN o.retry_in IS NOT NULL THEN 'retrying'
            ELSE 'dead' END,
        attempts = CASE WHEN o.outcome = 'snoozed' AND NOT jobs.cancel_requested
                        THEN jobs.attempts - 1 ELSE jobs.attempts END,
        result = CASE WHEN o.outcome = 'completed' THEN o.result::jsonb ELSE jobs.result END,
        last_error = CASE WHEN o.outcome IN ('completed', 'snoozed') THEN jobs.last_error
                          ELSE o.error END,
        progress = CASE WHEN o.outcome = 'completed' THEN 100 ELSE jobs.progress END,
        run_at = CASE WHEN o.outcome IN ('failed', 'timeout', 'snoozed') AND o.retry_in IS NOT NULL
                           AND NOT jobs.cancel_requested
                      THEN now() + make_interval(secs => o.retry_in) ELSE jobs.run_at END,
        finished_at = CASE WHEN o.outcome NOT IN ('failed', 'timeout', 'snoozed')
                             OR o.retry_in IS NULL OR jobs.cancel_requested
                           THEN now() END,
        hand_backs = 0,
        worker = NULL, lease_expires_at = NULL, updated_at = now()
    FROM o
    WHERE jobs.id = o.id AND jobs.state = 'running' AND jobs.run_count = o.run
      AND jobs.worker = %(worker)s
      AND (SELECT count(*) FROM kids) >= 0  -- an InitPlan: the children are locked first
    RETURNING jobs.id, jobs.state
), a AS (
    UPDATE attempts SET finished_at = now(), outcome = o.outcome, error = o.error, traceback = o.tb
    FROM o JOIN j ON j.id = o.id
    WHERE attempts.job_id = o.id AND attempts.number = o.run AND attempts.outcome = 'running'
)"""

# query: job_claim
JOB_CLAIM = f"WITH {_CLAIM_CTES.format(gate='')}\nSELECT * FROM claimed"
# query: job_claim_gated
JOB_CLAIM_GATED = f"WITH {_CLAIM_CTES.format(gate=_GATES)}\nSELECT * FROM claimed"
# query: job_finish
JOB_FINISH = f"WITH {_FINISH_CTES}\nSELECT id, state FROM j"
# query: job_finish_and_claim. One statement, so one commit: the claimed rows, then the finished
# jobs' (id, state) in two more columns. The two updates of jobs touch different rows (a claim
# takes queued jobs, an outcome running ones), and the job_counts trigger sees both.
JOB_FINISH_AND_CLAIM = f"""WITH {_FINISH_CTES}, {_CLAIM_CTES.format(gate=_GATES)}
SELECT *, NULL::bigint AS finished_id, NULL::text AS finished_state FROM claimed
UNION ALL
SELECT {", ".join(["NULL"] * CLAIMED_COLUMNS)}, j.id, j.state FROM j"""


def claim_params(ids: Sequence[int], worker: str, lease_ttl: float) -> dict[str, Any]:
    return {"claim_ids": list(ids), "worker": worker, "ttl": lease_ttl}


def finish_params(finishes: Sequence[Finish], worker: str) -> dict[str, Any]:
    return {
        "ids": [f.job_id for f in finishes],
        "runs": [f.run for f in finishes],
        "outcomes": [f.outcome for f in finishes],
        "results": [f.result_json for f in finishes],
        "errors": [f.error for f in finishes],
        "tracebacks": [f.traceback for f in finishes],
        "retry_in": [f.retry_in for f in finishes],
        "worker": worker,
    }
