"""Submitting through the full insert path (jq_cli.store.enqueue): into an application's own
psycopg connection and transaction, unique jobs, dependencies, trace contexts. A mixin of
jq_cli.client.Client; a plain submit keeps the plain, faster path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from jq_cli.errors import InvalidInput
from jq_cli.model.unique import unique_key
from jq_cli.model.workflows import Node, compile_workflow
from jq_cli.observe import tracing
from jq_cli.ops.core import OperationsCore
from jq_cli.store import Inserted, NewJob
from jq_cli.store.enqueue import Links, job_enqueue
from jq_cli.store.workflows import job_workflow

if TYPE_CHECKING:
    from jq_cli.model.jobspec import JobRequest


def full_job(core: OperationsCore, request: JobRequest) -> NewJob:
    """A validated NewJob with its unique key (from the request or its handler's @job defaults)
    and the caller's trace context. Raises InvalidInput."""
    new = core._prepare(request)
    handler = core.registry.get(request.job_type)
    period = new.unique_for or (handler.unique_for if handler else None)
    on = request.unique_on or (handler.unique_on if handler else None)
    if request.unique_on and not period:
        raise InvalidInput("unique_on: give unique_for too (how long a job stays unique)")
    key = unique_key(request.job_type, request.payload, on) if period else None
    trace = tracing.current_context_json()
    if key is None and period is None and trace is None:
        return new  # the common case: a frozen dataclass copied for nothing costs microseconds
    return replace(new, unique_key=key, unique_for=period, trace_context=trace)


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
    def _submit_requests(
        self,
        requests: Sequence[JobRequest],
        *,
        connection: Any = None,
        links: Links | None = None,
    ) -> list[Inserted] | None:
        """Insert through the full path when it is needed: returns the Inserted (published, or, in
        the application's transaction, left to the doorbell), or None when the plain path will do."""
        jobs = [full_job(self, r) for r in requests]
        if connection is None and links is None and not any(j.needs_enqueue_path for j in jobs):
            return None
        return self._submit_full(jobs, connection=connection, links=links)

    def _submit_full(
        self, jobs: Sequence[NewJob], *, connection: Any = None, links: Links | None = None
    ) -> list[Inserted]:
        """Insert prepared jobs (full_job) through the full insert path: returns the Inserted
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
        for n, request in enumerate(requests, 1):
            try:
                full_job(self, request)
            except InvalidInput as exc:
                raise InvalidInput(f"step {n}: {exc.message}") from None
        inserted = self._submit_requests(requests, connection=connection, links=compiled.links)
        return [i.id for i in inserted or []]

    def workflow(self, job_id: int) -> dict[str, Any]:
        """The workflow `job_id` belongs to: its jobs (id, type, state) and edges (parent, child).
        Raises NotFound."""
        return dict(job_workflow(self.store, job_id))
