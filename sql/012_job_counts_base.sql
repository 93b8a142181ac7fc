-- 012: the counts of the jobs that existed before 011's triggers did. One statement, so one
-- snapshot: the base is what it sees minus the trigger deltas it sees too, and every change it
-- does not see lands in a shard row afterwards. It reads jobs without blocking any writer.
INSERT INTO job_counts (state, queue, priority, shard, n)
SELECT coalesce(t.state, d.state), coalesce(t.queue, d.queue), coalesce(t.priority, d.priority), -1,
       coalesce(t.n, 0) - coalesce(d.n, 0)
FROM (SELECT state, queue, priority, count(*) AS n FROM jobs GROUP BY 1, 2, 3) AS t
FULL JOIN (SELECT state, queue, priority, sum(n) AS n FROM job_counts GROUP BY 1, 2, 3) AS d
    ON d.state = t.state AND d.queue = t.queue AND d.priority = t.priority
ON CONFLICT (state, queue, priority, shard) DO NOTHING;
