-- 011: job counts by state, queue and priority, kept by triggers in the statements that change
-- them, so that jq stats, jq top, /metrics and the scheduler read a few dozen rows instead of
-- counting a table that holds every finished job of the retention window.
--
-- Counter rows are sharded by the writing session (pg_backend_pid() % 16): workers committing at
-- once update different rows instead of queueing on one hot row. A count is the sum of its shards.
-- Statement-level triggers with transition tables add one row per (state, queue, priority) a
-- statement touched, not one per job: a group commit of 100 finishes costs two upserts.
CREATE TABLE job_counts (
    state    text     NOT NULL,
    queue    text     NOT NULL,
    priority smallint NOT NULL,
    -- -1: the base counted when this migration ran (012); 0..15: changes since, per session shard.
    shard    smallint NOT NULL,
    n        bigint   NOT NULL,
    PRIMARY KEY (state, queue, priority, shard)
);

CREATE FUNCTION job_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Keys in one order, so two statements upserting the same shard never deadlock.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_counts AS c (state, queue, priority, shard, n)
        SELECT state, queue, priority, pg_backend_pid() % 16, count(*)
        FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (state, queue, priority, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO job_counts AS c (state, queue, priority, shard, n)
        SELECT state, queue, priority, pg_backend_pid() % 16, -count(*)
        FROM old_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (state, queue, priority, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        -- Most updates (lease renewals, progress) change no state: their +1 and -1 cancel out and
        -- nothing is written.
        INSERT INTO job_counts AS c (state, queue, priority, shard, n)
        SELECT state, queue, priority, pg_backend_pid() % 16, sum(d)
        FROM (SELECT state, queue, priority, 1 AS d FROM new_rows
              UNION ALL
              SELECT state, queue, priority, -1 AS d FROM old_rows) AS changes
        GROUP BY 1, 2, 3 HAVING sum(d) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (state, queue, priority, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION job_counts_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_counts;
    RETURN NULL;
END
$$;

CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_counts_apply();
CREATE TRIGGER job_counts_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_apply();
CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION job_counts_apply();
CREATE TRIGGER job_counts_truncate AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_reset();
