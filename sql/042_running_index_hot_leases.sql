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
-- Room on each page for the HOT versions of its rows. A renewal statement rewrites every running
-- row of a page at once, and the versions it replaces become free only after it commits, so a
-- page needs room for a second copy of its running rows. Measured on 1,000 held jobs renewed in
-- two batches of 500 (jobs claimed side by side, the worst case), the share of HOT renewals:
-- fillfactor 100, under 30 % in every round; 90, 40 % in the first round, 78 % by the eighth; 80,
-- 63 % rising to 96 %; 70, 81, 90 and 98 % in rounds 1, 2 and 4, then all. The price: pages of
-- new rows are filled to 70 %, though the claim's and the outcome's versions of a job use that
-- room too. Applies to pages filled from now on; its lock (SHARE UPDATE EXCLUSIVE) lets submits
-- and claims through.
ALTER TABLE jobs SET (fillfactor = 70);
