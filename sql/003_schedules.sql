-- 003: cron schedules, the jobs they create, and the index the retention pruner walks.

-- One row per schedule. next_fire_at is the timer: the scheduler fires a schedule when the
-- database clock passes it and advances it in the same transaction, so a restart of any
-- scheduler loses no tick and no tick is computed from a host's clock (docs/design.md, Invariant 4).
CREATE TABLE schedules (
    name         text        PRIMARY KEY,
    job_type     text        NOT NULL,
    cron         text        NOT NULL,
    timezone     text        NOT NULL DEFAULT 'UTC',
    payload      jsonb       NOT NULL DEFAULT '{}',
    -- 1 low, 2 medium, 3 high, as on jobs.
    priority     smallint    NOT NULL DEFAULT 2 CHECK (priority BETWEEN 1 AND 3),
    -- NULL: JQ_DEFAULT_MAX_RETRIES as it is when the job is created.
    max_retries  integer     CHECK (max_retries >= 0),
    queue        text        NOT NULL DEFAULT 'default',
    misfire      text        NOT NULL DEFAULT 'once' CHECK (misfire IN ('skip', 'once')),
    enabled      boolean     NOT NULL DEFAULT true,
    last_fire_at timestamptz,
    next_fire_at timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- The scheduler's scan: enabled schedules whose next tick has come.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE enabled;

-- A job a schedule created names it and the tick it is for; `jq schedule run-now` jobs have a
-- schedule but no fire time. Plain text, not a foreign key: the jobs outlive a removed schedule.
ALTER TABLE jobs ADD COLUMN schedule_name text;
ALTER TABLE jobs ADD COLUMN fire_time timestamptz;

-- Its indexes on jobs (one job per tick, a schedule's recent jobs, the retention pruner's walk) are
-- built by 010 with CREATE INDEX CONCURRENTLY: built here, in this file's transaction, they locked
-- every job write out for as long as the builds took on a big table.
