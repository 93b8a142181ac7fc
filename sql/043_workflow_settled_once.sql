-- 043: each parent settles its child once, however often it is retried (docs/design.md,
-- Invariant 8). 021 counted a child's parents down by one at every end of a parent, so a parent
-- that died (counted, under on_parent_failure = 'run'), was retried and then completed counted
-- twice, and released the child while another parent still ran. Now each dependency carries
-- whether it is settled: the countdown moves only when that flag turns true, and a parent back
-- from dead or cancelled turns it false again and counts up the children still waiting for it.

-- Whether the parent of this row has settled its child as the child's policy says (completed;
-- or dead or cancelled under 'run'). Changed only in the parent's transaction (which holds the
-- parent's row), or when the child is revived, so the countdown and the flags agree.
ALTER TABLE job_dependencies ADD COLUMN settled boolean NOT NULL DEFAULT false;

UPDATE job_dependencies d SET settled = true
FROM jobs p, jobs c
WHERE p.id = d.parent_id AND c.id = d.child_id
  AND (p.state = 'completed'
       OR (c.on_parent_failure = 'run' AND p.state IN ('dead', 'cancelled')));

CREATE OR REPLACE FUNCTION job_settle_dependants() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    released bigint[];
BEGIN
    IF NEW.state IN ('completed', 'dead', 'cancelled') THEN
        -- The dependencies this end settles for the first time: only those count down. The
        -- child's UPDATE below reads its counter from the row it locks (a concurrent parent's
        -- commit is seen through the lock), so exactly one transaction takes it to 0.
        WITH settled AS (
            UPDATE job_dependencies d SET settled = true
            WHERE d.parent_id = NEW.id AND NOT d.settled
            RETURNING d.child_id
        ), counted AS (
            UPDATE jobs c SET
                pending_parents = c.pending_parents - 1,
                state = CASE
                    WHEN NEW.state <> 'completed' AND c.on_parent_failure = 'cancel' THEN 'cancelled'
                    WHEN c.pending_parents - 1 = 0 THEN 'queued'
                    ELSE 'waiting' END,
                settled_by_parent = (NEW.state <> 'completed' AND c.on_parent_failure = 'cancel'),
                last_error = CASE WHEN NEW.state <> 'completed' AND c.on_parent_failure = 'cancel'
                                  THEN 'parent job ' || NEW.id || ' ended ' || NEW.state
                                  ELSE c.last_error END,
                finished_at = CASE WHEN NEW.state <> 'completed' AND c.on_parent_failure = 'cancel'
                                   THEN now() END,
                run_at = now(), published_at = now(), updated_at = now()
            FROM settled s
            WHERE c.id = s.child_id AND c.state = 'waiting'
            RETURNING c.id, c.state
        )
        SELECT array_agg(id) INTO released FROM counted WHERE state = 'queued';
        IF released IS NOT NULL THEN
            UPDATE jobs c SET parent_results = (
                SELECT jsonb_agg(jsonb_build_object('id', p.id, 'result', p.result) ORDER BY d.position)
                FROM job_dependencies d JOIN jobs p ON p.id = d.parent_id
                WHERE d.child_id = c.id)
            WHERE c.id = ANY(released);
            INSERT INTO job_outbox (job_id) SELECT unnest(released) ON CONFLICT DO NOTHING;
            PERFORM pg_notify(TG_TABLE_SCHEMA || '_enqueued', '');
        END IF;
    ELSIF NEW.state IN ('queued', 'waiting') AND OLD.state IN ('dead', 'cancelled') THEN
        -- jq retry: the children this parent's failure cancelled wait again, for every parent
        -- that has not completed (this one is queued again, so at least one), their flags
        -- set to match; their own children follow through this trigger, as they went.
        WITH revived AS (
            UPDATE jobs c SET
                state = 'waiting', settled_by_parent = false, finished_at = NULL, last_error = NULL,
                pending_parents = (SELECT count(*) FROM job_dependencies d2 JOIN jobs p ON p.id = d2.parent_id
                                   WHERE d2.child_id = c.id AND p.state <> 'completed'),
                updated_at = now()
            FROM job_dependencies d
            WHERE d.parent_id = NEW.id AND c.id = d.child_id AND c.state = 'cancelled'
              AND c.settled_by_parent
            RETURNING c.id
        )
        UPDATE job_dependencies d SET settled = (p.state = 'completed')
        FROM revived r, jobs p
        WHERE d.child_id = r.id AND p.id = d.parent_id;
        -- Children still waiting that counted this parent as settled (on_parent_failure = 'run')
        -- wait for it again: it runs once more, and its end settles them then.
        WITH unsettled AS (
            UPDATE job_dependencies d SET settled = false
            WHERE d.parent_id = NEW.id AND d.settled
            RETURNING d.child_id
        )
        UPDATE jobs c SET pending_parents = c.pending_parents + 1, updated_at = now()
        FROM unsettled u
        WHERE c.id = u.child_id AND c.state = 'waiting';
    END IF;
    RETURN NULL;
END;
$$;

-- CREATE OR REPLACE dropped 041's pinned search_path: pin it again.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION job_settle_dependants() SET search_path = %I', current_schema());
END
$$;
