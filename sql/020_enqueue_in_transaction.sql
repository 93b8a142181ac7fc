-- 020: jobs enqueued in an application's own transaction (the outbox its doorbell drains),
-- unique jobs, and the trace context a job was submitted under.

-- A job inserted in an application's transaction cannot be published by the application: the
-- broker would hear of it before (or without) the commit. Its id goes here in the same
-- transaction, with a NOTIFY that PostgreSQL delivers only on commit. The doorbell (a listener
-- beside every scheduler) deletes the rows it publishes, so each job is published by exactly one
-- doorbell; a row left by a crash between commit and publish is drained by the next pass.
CREATE TABLE job_outbox (
    job_id     bigint      PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Unique jobs: the key is the job type and a digest of its payload (or of chosen payload
-- keys), computed by the client; unique_until ends the period in which a second submit returns
-- the first job. Submits of one key serialise on an advisory transaction lock, so two concurrent
-- submits cannot both miss each other.
ALTER TABLE jobs ADD COLUMN unique_key text;
ALTER TABLE jobs ADD COLUMN unique_until timestamptz;
-- Its index, jobs_unique, is built concurrently by 040.

-- W3C trace context (traceparent, tracestate) of the submitter, when OpenTelemetry is in use.
ALTER TABLE jobs ADD COLUMN trace_context jsonb;
