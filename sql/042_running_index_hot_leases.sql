-- jq: no-transaction
-- 042: a lease renewal is a HOT update. An UPDATE is HOT (a new row version on the same page, no
-- new index entries) only when it changes no indexed column, and jobs_lease indexed the very
-- column a renewal writes: every renewal of every running job wrote a new entry into each index
-- of jobs. Running jobs are indexed here by their worker instead, which a renewal leaves alone
-- (the claim sets it with the state, and every way out of running clears it); the rescue reads
-- lease_expires_at from the heap rows of that small set, so its cost follows the number of
-- running jobs, never the finished ones.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_running ON jobs (worker) WHERE state = 'running';
DROP INDEX CONCURRENTLY IF EXISTS jobs_lease;
-- Room on each page for the HOT versions of its rows (renewals, progress), so that a renewal
-- finds space beside the version it replaces. Applies to pages filled from now on; the lock
-- (SHARE UPDATE EXCLUSIVE) lets submits and claims through.
ALTER TABLE jobs SET (fillfactor = 90);
