-- 033: limits that hold across every worker, checked by the claim (store/limits.py) under a
-- transaction-scoped advisory lock per limit key: at most `concurrency` jobs running at once
-- and at most `rate_count` starts per `rate_period` seconds, per queue or per job type, and
-- with key_field per value of that payload field (e.g. host). Here rather than in Redis: the
-- count of running jobs is a fact of this database, and a limit that must never be exceeded
-- needs the count and the claim in one transaction.
CREATE TABLE limits (
    scope        text        NOT NULL CHECK (scope IN ('queue', 'type')),
    name         text        NOT NULL,
    concurrency  integer     CHECK (concurrency > 0),
    rate_count   integer     CHECK (rate_count > 0),
    rate_period  float8      CHECK (rate_period > 0),
    key_field    text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, name),
    CHECK ((rate_count IS NULL) = (rate_period IS NULL))
);

-- The starts of the last period per rate-limited key (pruned by the claim as it counts).
CREATE TABLE limit_starts (
    key         text        NOT NULL,
    started_at  timestamptz NOT NULL
);
CREATE INDEX limit_starts_key ON limit_starts (key, started_at);

-- Why a job waits: set when a claim held it back by a limit (it went back to scheduled, no
-- attempt spent). Meaningful while the job is scheduled; kept afterwards as the last reason.
ALTER TABLE jobs ADD COLUMN limited_by text;
