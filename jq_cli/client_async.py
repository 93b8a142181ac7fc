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
from jq_cli.errors import InvalidInput, InvalidTransition, JqError, NotFound
from jq_cli.handlers.registry import Registry, load_builtins
from jq_cli.model.jobspec import JobRequest, encode_payload
from jq_cli.model.states import TERMINAL_STATES, JobState, Priority
from jq_cli.model.unique import unique_key
from jq_cli.model.workflows import Node, compile_workflow
from jq_cli.observe.tracing import current_context_json
from jq_cli.ops.actions import ActionReport
from jq_cli.ops.core import present_job
from jq_cli.ops.enqueue import psycopg_connection
from jq_cli.store import Inserted, NewJob
from jq_cli.store.async_jobs import AsyncStore
from jq_cli.store.enqueue import job_enqueue_async


class AsyncClient:
    """One async connection, opened on first use. Not for concurrent use by several tasks: give
    each task its own client (they are cheap until they connect)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        registry: Registry | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings or load_settings(**overrides)
        self.registry = registry or load_builtins()
        self.store = AsyncStore(self.settings.database_url, self.settings.namespace)
        self._known_types: set[str] = set()
        self._checked_schema = False

    async def close(self) -> None:
        await self.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- submit -------------------------------------------------------------------------------

    async def _prepare(self, request: JobRequest) -> NewJob:
        if not self._checked_schema:
            await self.store.require_schema()
            self._checked_schema = True
        handler = self.registry.get(request.job_type)
        if handler is not None:
            handler.validate(request.payload)
        elif request.job_type not in self._known_types:
            if not await self.store.job_type_exists(request.job_type):
                raise InvalidInput(
                    f"unknown job type {request.job_type!r} (built in: {', '.join(self.registry.names())};"
                    " others must be registered by a running `jq worker --import MODULE`)"
                )
            self._known_types.add(request.job_type)
        text = encode_payload(request.payload, self.settings.max_payload_bytes)
        new = request.to_new_job(text, self.settings.default_max_retries)
        period = new.unique_for or (handler.unique_for if handler else None)
        on = request.unique_on or (handler.unique_on if handler else None)
        if request.unique_on and not period:
            raise InvalidInput("unique_on: give unique_for too (how long a job stays unique)")
        from dataclasses import replace

        return replace(
            new,
            unique_key=unique_key(request.job_type, request.payload, on) if period else None,
            unique_for=period,
            trace_context=current_context_json(),
        )

    async def _insert(
        self,
        requests: Sequence[JobRequest],
        connection: Any,
        links: Sequence[Sequence[int]] | None = None,
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
        priority: str | Priority = "medium",
        connection: Any = None,
        **options: Any,
    ) -> int:
        """Submit one job; returns its id once committed (or, with `connection`, once inserted in
        the application's transaction, which commits it). Options as Client.submit. Raises
        InvalidInput, ServiceUnavailable, SchemaNotMigrated."""
        data = {
            "job_type": job_type,
            "payload": {} if payload is None else payload,
            "priority": priority.value if isinstance(priority, Priority) else priority,
            **options,
        }
        if "unique_on" in data and data["unique_on"] is not None:
            data["unique_on"] = list(data["unique_on"])
        return (await self._insert([JobRequest.parse(data)], connection))[0].id

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

    async def _refusals(
        self, ids: Sequence[int], changed: Iterable[int], verb: str, allowed: str
    ) -> dict[int, JqError]:
        rest = [i for i in ids if i not in set(changed)]
        states = await self.store.job_states(rest) if rest else {}
        refused: dict[int, JqError] = {}
        for job_id in rest:
            if job_id not in states:
                refused[job_id] = NotFound(f"job {job_id} not found")
            else:
                refused[job_id] = InvalidTransition(
                    f"job {job_id} is {states[job_id]}: only {allowed} jobs can be {verb}",
                    state=states[job_id],
                )
        return refused

    async def retry(self, ids: Sequence[int]) -> ActionReport:
        """Dead or cancelled jobs back to queued, as Client.retry. Raises ServiceUnavailable."""
        rows = await self.store.job_retry(list(ids))
        report = ActionReport(changed={r["id"]: "queued" for r in rows})
        report.refused = await self._refusals(ids, report.changed, "retried", "dead or cancelled")
        return report

    async def cancel(self, ids: Sequence[int]) -> ActionReport:
        """Cancel jobs, as Client.cancel. Raises ServiceUnavailable."""
        changed = await self.store.job_cancel(list(ids))
        report = ActionReport(
            changed={i: ("cancelling" if s == "running" else s) for i, s in changed.items()}
        )
        refused = await self._refusals(
            ids, changed, "cancelled", "waiting, scheduled, queued, retrying or running"
        )
        for job_id, err in list(refused.items()):
            if isinstance(err, InvalidTransition) and err.state == JobState.RUNNING:
                report.changed[job_id] = "cancelling"
                del refused[job_id]
        report.refused = refused
        return report
