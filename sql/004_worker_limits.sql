-- 004: time limits per job, the attempt outcomes `timeout` and `snoozed`, and the job types
-- each live worker can run (rolling deploys, submit-time payload schemas).

-- Seconds an attempt may run before the worker stops it (outcome `timeout`); NULL means the
-- handler's declared limit or the worker's default (JQ_WORKER_TIME_LIMIT).
-- The checks are added NOT VALID (new rows are checked at once, without a scan of the table under
-- its lock) and validated by 040, which takes no lock that blocks job writes.
ALTER TABLE jobs ADD COLUMN time_limit double precision;
ALTER TABLE jobs ADD CONSTRAINT jobs_time_limit_check CHECK (time_limit > 0) NOT VALID;

ALTER TABLE attempts DROP CONSTRAINT attempts_outcome_check;
ALTER TABLE attempts ADD CONSTRAINT attempts_outcome_check CHECK (outcome IN
    ('running', 'completed', 'failed', 'timeout', 'lost', 'interrupted', 'cancelled', 'snoozed'))
    NOT VALID;

-- Consecutive hand-backs of a job no receiving worker could run (an unknown type, a shutdown):
-- each one costs no attempt, so this bounds them (the worker dead-letters past the bound).
ALTER TABLE jobs ADD COLUMN hand_backs integer NOT NULL DEFAULT 0;

-- The payload schema (JSON Schema of the handler's pydantic model) a worker registered for a
-- type, checked at submit where the handler's module is not imported.
ALTER TABLE job_types ADD COLUMN payload_schema jsonb;
-- The type's @job defaults (queue, priority, max_retries, time limit, back-off), applied at
-- submit where the handler's module is not imported.
ALTER TABLE job_types ADD COLUMN defaults jsonb;

-- Which live worker has which type: a worker refreshes its rows with its heartbeat, so a type
-- counts as runnable while some worker's row is recent.
CREATE TABLE worker_types (
    worker    text        NOT NULL,
    job_type  text        NOT NULL,
    seen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_type, worker)
);
CREATE INDEX worker_types_seen ON worker_types (seen_at);
