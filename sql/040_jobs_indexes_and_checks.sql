-- jq: no-transaction
-- 040: what 004, 020, 021 and 032 need on jobs and attempts, done without locking out job
-- writes: indexes built CONCURRENTLY, and the checks those migrations added NOT VALID validated
-- (VALIDATE CONSTRAINT takes a SHARE UPDATE EXCLUSIVE lock, which submits and claims pass).

-- A second submit of a unique job finds the first within its period (jq_cli.unique).
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_unique ON jobs (unique_key, unique_until)
    WHERE unique_key IS NOT NULL;
-- `jq show` finds a workflow's whole graph with one index scan.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_workflow ON jobs (workflow_id)
    WHERE workflow_id IS NOT NULL;
-- `jq show` of an original lists its replays; partial, so ordinary jobs cost it nothing.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_replay_of ON jobs (replay_of)
    WHERE replay_of IS NOT NULL;

ALTER TABLE jobs VALIDATE CONSTRAINT jobs_time_limit_check;
ALTER TABLE jobs VALIDATE CONSTRAINT jobs_state_check;
ALTER TABLE jobs VALIDATE CONSTRAINT jobs_on_parent_failure_check;
ALTER TABLE attempts VALIDATE CONSTRAINT attempts_outcome_check;
