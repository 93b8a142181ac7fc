-- 032: `jq replay ID` runs a finished job again as a new job that names the original. Plain
-- bigint, not a foreign key: the original may be purged before its replay, or the other way.
ALTER TABLE jobs ADD COLUMN replay_of bigint;
-- Its index, jobs_replay_of, is built concurrently by 040.
