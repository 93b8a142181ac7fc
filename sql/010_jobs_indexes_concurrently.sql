-- jq: no-transaction
-- 010: indexes on jobs, built without locking out job writes (each statement on its own, outside a
-- transaction). IF NOT EXISTS: a database that ran 003 before it moved its indexes here has them.

-- Exactly one job per tick (docs/design.md, Invariant 5): two schedulers, a restart or a retried transaction
-- insert with ON CONFLICT DO NOTHING against this key and create nothing the second time.
-- Partial, so the index holds only the scheduled jobs and costs ordinary submits nothing.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS jobs_schedule_tick
    ON jobs (schedule_name, fire_time) WHERE fire_time IS NOT NULL;
-- `jq schedule show`: a schedule's most recent jobs, run-now ones included.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_schedule_recent
    ON jobs (schedule_name, id) WHERE schedule_name IS NOT NULL;
-- Retention, jq purge and retry by filter: terminal jobs by state and age, oldest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_finished
    ON jobs (state, finished_at) WHERE state IN ('completed', 'dead', 'cancelled');
-- jq purge --type and retry by type: the same walk within one job type.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_finished_type
    ON jobs (state, job_type, finished_at) WHERE state IN ('completed', 'dead', 'cancelled');
