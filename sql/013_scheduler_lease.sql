-- 013: scheduler leadership as a lease in the database's time. The leader renews leader_until on
-- every pass; a standby takes the row only once it has expired. Unlike a session advisory lock it
-- needs no session to stay open (PgBouncer, a half-open TCP connection), and a leader cut off from
-- the database loses it after one lease whatever the network does.
CREATE TABLE leaders (
    role         text        PRIMARY KEY,
    holder       text        NOT NULL,
    leader_until timestamptz NOT NULL,
    since        timestamptz NOT NULL DEFAULT now()
);
