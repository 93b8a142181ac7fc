"""The cancel listener's queries: LISTEN for cancel requests of running jobs, and read the ones a
worker has pending (after a reconnect: PostgreSQL keeps no notification for a session that was
not listening). The NOTIFY itself is sent by the cancel statement (store/bulk.py, JOB_CANCEL)."""

from __future__ import annotations

from psycopg import sql

from jq_cli.store.base import StoreBase


def cancel_channel(namespace: str) -> str:
    """The channel a cancel of a running job is announced on, its job id as the payload (JOB_CANCEL
    builds the same name from its connection's schema, which is the namespace)."""
    return f"{namespace}_cancel"


class CancelQueries(StoreBase):
    """A connection of its own: LISTEN belongs to the session, and a listener blocked waiting must
    not hold up the dispatcher's queries."""

    def cancel_listen(self) -> None:
        """LISTEN on the namespace's cancel channel (again after a reconnect: a new session
        listens to nothing)."""
        self._run(sql.SQL("LISTEN {}").format(sql.Identifier(cancel_channel(self.namespace))))

    def cancel_wait(self, timeout: float) -> list[int]:
        """Wait up to `timeout` seconds for cancel notifications; returns the job ids they carry
        (those that came together with the first one too), or [] when none came."""
        with self._errors():
            found = self.conn.notifies(timeout=timeout, stop_after=1)
            return [int(n.payload) for n in found if n.payload.isdigit()]

    def job_cancels_pending(self, worker: str) -> list[int]:
        """The running jobs of `worker` whose cancel was requested (along jobs_running)."""
        rows = self._all(
            # query: job_cancels_pending
            "SELECT id FROM jobs WHERE state = 'running' AND worker = %(worker)s"
            " AND cancel_requested",
            {"worker": worker},
        )
        return [r["id"] for r in rows]
