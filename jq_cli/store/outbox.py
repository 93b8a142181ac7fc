"""The doorbell's queries: LISTEN for jobs committed in applications' transactions, and drain the
outbox those transactions (and released dependants) filled."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from psycopg import sql

from jq_cli.store.base import StoreBase
from jq_cli.store.enqueue import notify_channel
from jq_cli.store.rows import JobRef


class OutboxQueries(StoreBase):
    """A connection of its own: LISTEN belongs to the session, and a waiting listener must not
    hold up anyone else's queries."""

    def outbox_listen(self) -> None:
        """LISTEN on the namespace's channel (again after a reconnect: a new session listens to
        nothing)."""
        self._run(sql.SQL("LISTEN {}").format(sql.Identifier(notify_channel(self.namespace))))

    def outbox_wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a notification; True when one came. Several that
        came together count once: a drain takes whatever they announced."""
        with self._errors():
            return any(True for _ in self.conn.notifies(timeout=timeout, stop_after=1))

    def job_outbox_drain(self, limit: int, publish: Callable[[Sequence[JobRef]], None]) -> int:
        """Take up to `limit` committed outbox rows, stamp their jobs published, and call
        `publish` with the queued ones before the transaction commits: a failed publish rolls the
        rows back for the next drain, and a crash after a publish at worst publishes twice (the
        claim is conditional). Returns how many rows were taken."""
        with self._errors(), self.conn.transaction():
            rows = self.conn.execute(
                # query: job_outbox_drain. SKIP LOCKED: two doorbells share the rows, never both
                # publishing one; stamping published_at keeps the sweeper from sending it again.
                """
                WITH taken AS (
                    DELETE FROM job_outbox WHERE job_id IN (
                        SELECT job_id FROM job_outbox ORDER BY job_id
                        LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
                    RETURNING job_id
                ), stamped AS (
                    UPDATE jobs SET published_at = now() FROM taken
                    WHERE jobs.id = taken.job_id AND jobs.state = 'queued'
                    RETURNING jobs.id, jobs.queue, jobs.priority
                )
                SELECT (SELECT count(*) FROM taken) AS taken,
                       coalesce((SELECT jsonb_agg(stamped) FROM stamped), '[]') AS jobs
                """,
                {"limit": limit},
            ).fetchone()
            assert rows is not None  # an aggregate returns one row
            jobs = cast(list[JobRef], rows["jobs"])
            if jobs:
                publish(jobs)
            return int(rows["taken"])
