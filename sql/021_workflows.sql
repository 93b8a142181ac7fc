-- 021: workflows. A job may depend on others: it waits in state 'waiting' until every parent
-- completed, and is released by the transaction that completes its last parent (docs/design.md, Invariant 8).

ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check CHECK (state IN
    ('waiting', 'scheduled', 'queued', 'running', 'retrying', 'completed', 'dead', 'cancelled'))
    NOT VALID;  -- validated by 040, without a scan of jobs under this statement's lock

-- Parents not completed yet. Each parent's completion decrements it with a conditional UPDATE
-- of the child row; two parents completing at once on two workers serialise on that row lock,
-- and only the UPDATE that takes it to 0 moves the child to queued: it is released once.
ALTER TABLE jobs ADD COLUMN pending_parents integer NOT NULL DEFAULT 0;
-- cancel (the default): a parent ending dead or cancelled cancels the child; run: the child
-- counts such a parent as done and runs anyway.
ALTER TABLE jobs ADD COLUMN on_parent_failure text NOT NULL DEFAULT 'cancel';
ALTER TABLE jobs ADD CONSTRAINT jobs_on_parent_failure_check
    CHECK (on_parent_failure IN ('cancel', 'run')) NOT VALID;
-- True on a job some other job depends on, so that the trigger below fires for parents only
-- and an ordinary job's state changes cost nothing more.
ALTER TABLE jobs ADD COLUMN has_dependants boolean NOT NULL DEFAULT false;
-- A job cancelled because a parent ended dead or cancelled; `jq retry` of that parent brings it
-- back to waiting (the workflow resumes).
ALTER TABLE jobs ADD COLUMN settled_by_parent boolean NOT NULL DEFAULT false;
-- The first job of the workflow a job belongs to (NULL for a job that depends on nothing), so
-- `jq show` finds the whole graph with one index scan.
ALTER TABLE jobs ADD COLUMN workflow_id bigint;
-- The parents' results ([{"id": parent id, "result": its result}] in the order the parents
-- were given), written when the child is released, so that the
-- handler receives them without a query of its own.
ALTER TABLE jobs ADD COLUMN parent_results jsonb;
-- Its index, jobs_workflow, is built concurrently by 040.

CREATE TABLE job_dependencies (
    parent_id bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    child_id  bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- the order of parents as given (a group's members), for the results handed to the child
    position  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX job_dependencies_child ON job_dependencies (child_id);

-- Settle the dependants of a parent whose state just changed, in the parent's own transaction:
-- completed releases (or counts down) its waiting children; dead or cancelled cancels those whose
-- policy is cancel and counts down those whose policy is run; back to queued (jq retry) turns the
-- children it had cancelled back into waiting ones. A child changed here fires this trigger in
-- turn, so a whole chain settles in the one transaction. Released children go to the outbox with
-- a NOTIFY: the doorbell publishes them once the transaction commits.
CREATE FUNCTION job_settle_dependants() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    released bigint[];
BEGIN
    IF NEW.state = 'completed' OR NEW.state IN ('dead', 'cancelled') THEN
        WITH counted AS (
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
            FROM job_dependencies d
            WHERE d.parent_id = NEW.id AND c.id = d.child_id AND c.state = 'waiting'
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
        -- that has not completed (this one is queued again, so at least one); their own
        -- children follow through this trigger, as they went.
        UPDATE jobs c SET
            state = 'waiting', settled_by_parent = false, finished_at = NULL, last_error = NULL,
            pending_parents = (SELECT count(*) FROM job_dependencies d2 JOIN jobs p ON p.id = d2.parent_id
                               WHERE d2.child_id = c.id AND p.state <> 'completed'),
            updated_at = now()
        FROM job_dependencies d
        WHERE d.parent_id = NEW.id AND c.id = d.child_id AND c.state = 'cancelled'
          AND c.settled_by_parent;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_settle_dependants
    AFTER UPDATE OF state ON jobs
    FOR EACH ROW
    WHEN (NEW.has_dependants AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION job_settle_dependants();
