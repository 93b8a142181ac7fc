"""Submitting through the full insert path (jq_cli.store.enqueue): into an application's own
psycopg connection and transaction, unique jobs, dependencies, trace contexts. A mixin of
jq_cli.client.Client; a plain submit keeps the plain, faster path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jq_cli.errors import InvalidInput
from jq_cli.model.workflows import Node, compile_workflow
from jq_cli.ops.core import OperationsCore
from jq_cli.store import Inserted, NewJob
from jq_cli.store.enqueue import Links, job_enqueue
from jq_cli.store.workflows import job_workflow


def psycopg_connection(connection: Any) -> Any:
    """The psycopg connection under what an application passed: a psycopg Connection as it is, or
    anything with an adapter in jq_cli.adapters (a SQLAlchemy Session or Connection, Django's
    connection). Raises InvalidInput for anything else."""
    import psycopg

    if isinstance(connection, psycopg.Connection | psycopg.AsyncConnection):
        return connection
    from jq_cli.adapters import unwrap

    return unwrap(connection)


class EnqueueOperations(OperationsCore):
    def _submit_full(
        self, jobs: Sequence[NewJob], *, connection: Any = None, links: Links | None = None
    ) -> list[Inserted]:
        """Insert prepared jobs (OperationsCore._prepare) through the full insert path: returns the Inserted
        (published, or, in the application's transaction, left to the doorbell)."""
        ns = self.settings.namespace
        if connection is None:
            inserted = job_enqueue(self.store.conn, ns, jobs, links=links, outbox=False)
            self._publish(inserted)
            return inserted
        conn = psycopg_connection(connection)
        import psycopg

        if isinstance(conn, psycopg.AsyncConnection):
            raise InvalidInput("an async connection needs jq_cli.AsyncClient, not Client")
        return job_enqueue(conn, ns, jobs, links=links, outbox=True)

    def submit_workflow(self, flow: Node, *, connection: Any = None) -> list[int]:
        """Submit a chain, group or step (jq_cli.model.workflows) in one transaction; returns the job ids
        in the order the steps are written. With `connection`, in the application's transaction.
        Raises InvalidInput (naming the step), ServiceUnavailable."""
        from jq_cli.model.jobspec import JobRequest

        compiled = compile_workflow(flow)
        requests = [JobRequest.parse(j, f"step {n}") for n, j in enumerate(compiled.jobs, 1)]
        jobs = []
        for n, request in enumerate(requests, 1):
            try:
                jobs.append(self._prepare(request))
            except InvalidInput as exc:
                raise InvalidInput(f"step {n}: {exc.message}") from None
        return [i.id for i in self._submit_full(jobs, connection=connection, links=compiled.links)]

    def workflow(self, job_id: int) -> dict[str, Any]:
        """The workflow `job_id` belongs to: its jobs (id, type, state) and edges (parent, child).
        Raises NotFound."""
        return dict(job_workflow(self.store, job_id))
