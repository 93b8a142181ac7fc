-- 031: queues as rows: a pause that every worker's claim obeys and that outlives any daemon
-- (it lives here, not in a worker's memory or the broker). A queue without a row is running.
CREATE TABLE queues (
    name        text        PRIMARY KEY,
    paused      boolean     NOT NULL DEFAULT false,
    -- Who paused it and when (the audit log has the whole history).
    paused_at   timestamptz,
    paused_by   text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
