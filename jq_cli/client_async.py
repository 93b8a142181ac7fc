"""AsyncClient: jq's Python API on psycopg's async connections, for asyncio applications.

    async with AsyncClient() as client:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            async with conn.transaction():
                await conn.execute("INSERT INTO orders ...")
                await client.submit("ship_order", {"order": 42}, connection=conn)

The same operations as Client (submit, submit_many, get/show, wait, cancel, retry), validated by
the same code. It speaks no AMQP: what it queues goes to the outbox, and the scheduler's doorbell
publishes it right after the commit, so the event loop never waits on the broker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any, Self

from jq_cli.config import Settings, load_settings
from jq_cli.errors import InvalidInput, NotFound
from jq_cli.handlers.registry import Registry, load_builtins
from jq_cli.model.audit import Actor
from jq_cli.model.jobspec import JobRequest
from jq_cli.model.states import TERMINAL_STATES, JobState, Priority
from jq_cli.model.workflows import Node, compile_workflow
from jq_cli.ops.actions import ActionReport, cancel_report, ids_scope, retry_report, unchanged
from jq_cli.ops.audit import audit_entry
from jq_cli.ops.core import present_job
from jq_cli.ops.enqueue import psycopg_connection
from jq_cli.ops.prepare import JobTypes, TypeRules, prepare, request_of
from jq_cli.store import Inserted, NewJob
from jq_cli.store.async_jobs import AsyncStore
from jq_cli.store.enqueue import Links, job_enqueue_async


class AsyncClient:
    """One async connection, opened on first use. Not for concurrent use by several tasks: give
    each task its own client (they are cheap until they connect)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        registry: Registry | None = None,
        actor: Actor | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings or load_settings(**overrides)
        self.registry = registry or load_builtins()
        # Who retry and cancel are recorded as in the audit log, as Client's (ops/core.py).
        self.actor = actor or Actor.local("api")
        self.store = AsyncStore(self.settings.database_url, self.settings.namespace)
        self.types = JobTypes(lambda: self.registry)
        self._checked_schema = False

    async def close(self) -> None:
        await self.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- submit -------------------------------------------------------------------------------

    async def _rules(self, job_type: str) -> TypeRules:
        """The rules of `job_type`, as OperationsCore._rules reads them. Raises InvalidInput."""
        rules = self.types.cached(job_type)
        if rules is None:
            rules = self.types.learn(job_type, await self.store.job_type_info(job_type))
        if rules is None:
            raise self.types.unknown(job_type, await self.store.job_type_names())
        return rules

    async def _prepare(self, request: JobRequest) -> NewJob:
        """The one preparation of a job (ops/prepare.py), as Client's. Raises InvalidInput."""
        if not self._checked_schema:
            await self.store.require_schema()
            self._checked_schema = True
        return prepare(request, await self._rules(request.job_type), self.settings)

    async def _insert(
        self,
        requests: Sequence[JobRequest],
        connection: Any,
        links: Links | None = None,
        where: str = "job",
    ) -> list[Inserted]:
        jobs = []
        for n, request in enumerate(requests, 1):
            try:
                jobs.append(await self._prepare(request))
            except InvalidInput as exc:
                if len(requests) == 1:
                    raise
                raise InvalidInput(f"{where} {n}: {exc.message}") from None
        conn = await self.store.conn() if connection is None else psycopg_connection(connection)
        import psycopg

        if not isinstance(conn, psycopg.AsyncConnection):
            raise InvalidInput(
                "AsyncClient takes a psycopg AsyncConnection (Client takes sync ones)"
            )
        return await job_enqueue_async(
            conn, self.settings.namespace, jobs, links=links, outbox=True
        )

    async def submit(
        self,
        job_type: str,
        payload: dict[str, Any] | None = None,
        *,
        priority: str | Priority | None = None,
        connection: Any = None,
        **options: Any,
    ) -> int:
        """Submit one job; returns its id once committed (or, with `connection`, once inserted in
        the application's transaction, which commits it). Options as Client.submit; those left
        out fall to the type's @job defaults, then jq's. Raises InvalidInput, Conflict,
        ServiceUnavailable, SchemaNotMigrated."""
        request = request_of(job_type, payload, {"priority": priority, **options})
        return (await self._insert([request], connection))[0].id

    async def submit_many(
        self, jobs: Iterable[dict[str, Any] | JobRequest], *, connection: Any = None
    ) -> list[int]:
        """Submit many jobs in one transaction: all or none. Returns their ids in order."""
        requests = [
            j if isinstance(j, JobRequest) else JobRequest.parse(j, f"job {n}")
            for n, j in enumerate(jobs, 1)
        ]
        return [i.id for i in await self._insert(requests, connection)]

    async def submit_workflow(self, flow: Node, *, connection: Any = None) -> list[int]:
        """Submit a chain, group or step in one transaction, as Client.submit_workflow."""
        compiled = compile_workflow(flow)
        requests = [JobRequest.parse(j, f"step {n}") for n, j in enumerate(compiled.jobs, 1)]
        inserted = await self._insert(requests, connection, compiled.links, where="step")
        return [i.id for i in inserted]

    # -- read ---------------------------------------------------------------------------------

    async def get(self, job_id: int) -> dict[str, Any]:
        """The job with every attempt. Raises NotFound."""
        return present_job(await self.store.job_get(job_id))

    show = get

    async def wait(
        self, job_id: int, timeout: float | None = None, poll: float = 0.1
    ) -> dict[str, Any]:
        """Until the job is terminal (or `timeout` seconds pass); returns the job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            states = await self.store.job_states([job_id])
            if job_id not in states:
                raise NotFound(f"job {job_id} not found")
            done = JobState(states[job_id]) in TERMINAL_STATES
            if done or (deadline is not None and time.monotonic() >= deadline):
                return await self.get(job_id)
            await asyncio.sleep(poll)

    # -- actions ------------------------------------------------------------------------------

    async def _states_of(self, ids: Sequence[int]) -> dict[int, str]:
        return await self.store.job_states(ids) if ids else {}

    async def retry(self, ids: Sequence[int]) -> ActionReport:
        """Dead or cancelled jobs back to queued, as Client.retry, recorded in the audit log as
        self.actor. Raises ServiceUnavailable."""
        async with self.store.audited(
            audit_entry(self.actor, "job.retry", **ids_scope(ids))
        ) as entry:
            rows = await self.store.job_retry(list(ids))
            entry.jobs = len(rows)
        rest = unchanged(ids, [r["id"] for r in rows])
        states = await self._states_of(rest)
        held = [i for i, s in states.items() if s in ("dead", "cancelled")]
        waiting_on = await self.store.job_parents_unsettled(held) if held else {}
        return retry_report(ids, rows, states, waiting_on)

    async def cancel(self, ids: Sequence[int]) -> ActionReport:
        """Cancel jobs, as Client.cancel, recorded in the audit log as self.actor. Raises
        ServiceUnavailable."""
        async with self.store.audited(
            audit_entry(self.actor, "job.cancel", **ids_scope(ids))
        ) as entry:
            changed = await self.store.job_cancel(list(ids))
            entry.jobs = len(changed)
        return cancel_report(ids, changed, await self._states_of(unchanged(ids, changed)))
