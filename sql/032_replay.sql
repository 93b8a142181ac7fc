-- 032: `jq replay ID` runs a finished job again as a new job that names the original. Plain
-- bigint, not a foreign key: the original may be purged before its replay, or the other way.
ALTER TABLE jobs ADD COLUMN replay_of bigint;
-- `jq show` of the original lists its replays; partial, so ordinary jobs cost it nothing.
CREATE INDEX jobs_replay_of ON jobs (replay_of) WHERE replay_of IS NOT NULL;
