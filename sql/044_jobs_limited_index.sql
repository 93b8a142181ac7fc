-- jq: no-transaction
-- 044: the jobs a limit holds back (scheduled with limited_by), in id order, for the limited
-- claim that takes the oldest of a key first (store/limits.py, job_limit_older; docs/design.md,
-- Invariant 8). Partial: only held jobs have an entry, so an ordinary job's writes never touch it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_limited ON jobs (id)
    WHERE state = 'scheduled' AND limited_by IS NOT NULL;
