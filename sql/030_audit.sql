-- 030: the audit log: one row per operator action (retry, cancel, purge, dead-letter commands,
-- schedule changes, queue pause and resume, edits), written in the transaction of the change it
-- records, so a change and its record commit together or not at all.
CREATE TABLE audit_log (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    -- Who: cli and tui record the OS user and host; http the API key's name; api the process.
    actor_kind  text        NOT NULL CHECK (actor_kind IN ('cli', 'tui', 'http', 'api')),
    actor       text        NOT NULL,
    host        text,
    -- What: e.g. job.retry, job.purge, schedule.edit, queue.pause (see jq_cli.audit.ACTIONS).
    action      text        NOT NULL,
    -- What it was applied to: a job id, a schedule or queue name, or NULL for a filter.
    target      text,
    -- The filter an action by filter used (state, type, queue, age), or the ids it was given.
    filter      jsonb       NOT NULL DEFAULT '{}',
    jobs        integer     NOT NULL DEFAULT 0 CHECK (jobs >= 0),
    detail      jsonb       NOT NULL DEFAULT '{}'
);
-- `jq audit --since` and the retention pruner both walk by time; --action narrows it.
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_action_at ON audit_log (action, at);
-- A job's own actions (`jq show` puts them on its timeline): target is the job's id.
CREATE INDEX audit_log_target ON audit_log (target, at) WHERE target IS NOT NULL;
